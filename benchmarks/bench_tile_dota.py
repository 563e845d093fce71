"""tile-dota against its image-I/O floor, measured in one run.

Builds an 8x8 mosaic of the DOTA example image P0706 (1111x1182, 536 objects): 8888x9456 pixels, 34,304 objects,
132 tiles at size 1024 / gap 200 -- the size of image the devkit needs ~165 s of CPU for.  Then times:
  * floor:  decode the mosaic PNG and write the same 132 PNG tiles (no labels at all);
  * dsprep: `dsprep tile-dota` on it (decode, labels, tiles), 1 worker, then 2 workers;
and prints the ratios.  Needs ../shared/data/dota_example (or pass a DOTA folder holding P0706).
Usage: python benchmarks/bench_tile_dota.py [DOTA_FOLDER]
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from dsprep.cli import main as cli
from dsprep.dota import format_dota, read_dota
from dsprep.images import encode_image, read_image
from dsprep.tiling import crop_tile, tile_grid, tile_name


def build_mosaic(src: Path, out: Path, n: int = 8) -> None:
    img = read_image(src / "images" / "P0706.png")
    rec, _, _ = read_dota(src / "labelTxt" / "P0706.txt")
    h, w = img.shape[:2]
    (out / "images").mkdir(parents=True)
    (out / "labelTxt").mkdir()
    cv2.imwrite(str(out / "images" / "MOSAIC.png"), np.tile(img, (n, n, 1)))
    offsets = np.array([(i * w, j * h) for j in range(n) for i in range(n)], np.float64)
    polys = (rec.polygons[None] + offsets[:, None, None, :]).reshape(-1, 4, 2)
    rec.polygons = polys
    rec.boxes = np.concatenate([polys.min(1), polys.max(1)], 1)
    rec.names = rec.names * (n * n)
    rec.difficult = np.tile(rec.difficult, n * n)
    rec.truncated = np.tile(rec.truncated, n * n)
    (out / "labelTxt" / "MOSAIC.txt").write_text(format_dota(rec))


def floor(src: Path, out: Path) -> float:
    t = time.perf_counter()
    img = read_image(src / "images" / "MOSAIC.png")
    out.mkdir()
    h, w = img.shape[:2]
    for left, up in tile_grid(w, h, 1024, 200):
        (out / f"{tile_name('MOSAIC', 1, left, up)}.png").write_bytes(encode_image(crop_tile(img, left, up, 1024), ".png"))
    return time.perf_counter() - t


def ours(src: Path, out: Path, workers: int) -> float:
    t = time.perf_counter()
    res = CliRunner().invoke(cli, ["tile-dota", str(src), "--out", str(out), "--quiet", "--workers", str(workers)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return time.perf_counter() - t


def main():
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/dota_example"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_mosaic(data, tmp / "mosaic")
        n_obj = sum(1 for _ in open(tmp / "mosaic" / "labelTxt" / "MOSAIC.txt")) - 2
        t_floor = floor(tmp / "mosaic", tmp / "floor")
        t1 = ours(tmp / "mosaic", tmp / "ours1", 1)
        t2 = ours(tmp / "mosaic", tmp / "ours2", 2)
        n_tiles = len(os.listdir(tmp / "ours1" / "images"))
    print(f"image 8888x9456, {n_obj} objects, {n_tiles} tiles (size 1024, gap 200)")
    print(f"floor (decode + write tiles, no labels): {t_floor:7.2f} s")
    print(f"dsprep tile-dota, 1 worker:             {t1:7.2f} s   ratio to floor: {t1 / t_floor:.2f}x")
    print(f"dsprep tile-dota, 2 workers:            {t2:7.2f} s   ratio to floor: {t2 / t_floor:.2f}x   "
          f"speed-up over 1 worker: {t1 / t2:.2f}x")


if __name__ == "__main__":
    main()
