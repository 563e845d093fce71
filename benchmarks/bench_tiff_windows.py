"""Windowed tiling of a huge tiled TIFF: peak memory of the whole process tree, and the window reader's speed.

1. Writes a 40,000 x 40,000 RGB tiled TIFF (4.8 GB decoded; 256 x 256 deflate tiles made of 5 pre-compressed
   variants, so it is written in seconds and stays small on disk) with a DOTA label file, and runs
   `dsprep tile-dota` on it with --workers 1 (and 2), polling the resident memory of the dsprep process and all its
   children every 20 ms (psutil): the peak of their sum is printed.
2. Reads the same bands of windows (1024-px tiles, gap 200, bands of up to 16 tiles) from a realistic image (an
   8,000 x 8,000 mosaic of the real DOTA images, deflate and JPEG tiles) three ways: dsprep's reader (tifffile's
   segment decoder, only the segments a rectangle touches), tifffile's zarr store (zarr.open on
   TiffFile.aszarr()), and a whole-image tifffile.imread for reference.
Usage: python benchmarks/bench_tiff_windows.py [SIDE]   (default 40000)
"""
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import psutil
import tifffile

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DSPREP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def big_tiff(path: Path, side: int) -> None:
    variants = []
    for v in range(5):
        rng = np.random.default_rng(v)
        variants.append(np.kron(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), np.ones((16, 16, 1), np.uint8)))
    enc = [zlib.compress(t.tobytes(), 6) for t in variants]
    n = -(-side // 256)
    tifffile.imwrite(path, (enc[(3 * ty + 2 * tx) % 5] for ty in range(n) for tx in range(n)), shape=(side, side, 3),
                     dtype=np.uint8, tile=(256, 256), compression="zlib", photometric="rgb", bigtiff=True)


def peak_tree_rss(cmd, env) -> tuple:
    """Run ``cmd``; the peak of the summed RSS of the process and its descendants, sampled every 20 ms."""
    proc = psutil.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = [0]

    def poll():
        while proc.poll() is None:
            try:
                procs = [proc] + proc.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
            except psutil.Error:
                pass
            time.sleep(0.02)

    t = time.perf_counter()
    th = threading.Thread(target=poll)
    th.start()
    proc.wait()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{cmd} failed")
    return peak[0], time.perf_counter() - t


def band_rectangles(side: int, size: int = 1024, gap: int = 200, per: int = 16):
    from dsprep.ops.tiling import tile_grid
    rows = {}
    for left, up in tile_grid(side, side, size, gap):
        rows.setdefault(up, []).append(left)
    for up, lefts in sorted(rows.items()):
        lefts.sort()
        for i in range(0, len(lefts), per):
            yield lefts[i], up, min(lefts[i:i + per][-1] + size, side), min(up + size, side)


def reader_speeds(tmp: Path) -> None:
    from dsprep.rasters import TiffWindows, tiff_layout
    import zarr
    src = cv2.imread(str(SHARED / "dota_example" / "images" / "P0706.png"))[..., ::-1]
    side = 8000
    img = np.tile(src, (side // src.shape[0] + 1, side // src.shape[1] + 1, 1))[:side, :side].copy()
    for comp in ("zlib", "jpeg"):
        path = tmp / f"mosaic_{comp}.tif"
        tifffile.imwrite(path, img, tile=(256, 256), compression=comp, photometric="rgb")
        rects = list(band_rectangles(side))
        best, cpu = {}, {}

        def timed(label, fn):
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall, used = time.perf_counter() - t, time.process_time() - c
            if wall < best.get(label, 1e9):
                best[label], cpu[label] = wall, used

        def ours():
            with TiffWindows(str(path), tiff_layout(str(path))[0]) as r:
                for x0, y0, x1, y1 in rects:
                    r.read(x0, y0, x1, y1)

        def store():
            with tifffile.TiffFile(path) as tif:
                z = zarr.open(tif.pages[0].aszarr(), mode="r")
                for x0, y0, x1, y1 in rects:
                    cv2.cvtColor(z[y0:y1, x0:x1], cv2.COLOR_RGB2BGR)

        for _ in range(2):
            timed("dsprep reader", ours)
            timed("tifffile zarr store", store)
            timed("whole tifffile.imread", lambda: tifffile.imread(path, maxworkers=1))
        print(f"  {comp} tiles, 8000 x 8000, {len(rects)} band rectangles (wall / CPU seconds): " +
              ", ".join(f"{k} {best[k]:.2f} / {cpu[k]:.2f}" for k in best) +
              f"; CPU per window: dsprep reader {cpu['tifffile zarr store'] / cpu['dsprep reader']:.2f}x "
              f"less than the zarr store")


def main():
    side = int(sys.argv[1]) if len(sys.argv) > 1 else 40000
    print(f"load before: {os.getloadavg()[0]:.2f}")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "big"
        (root / "images").mkdir(parents=True)
        (root / "labelTxt").mkdir()
        big_tiff(root / "images" / "BIG.tif", side)
        rng = np.random.default_rng(0)
        xy = rng.uniform(0, side - 60, (20000, 2))
        (root / "labelTxt" / "BIG.txt").write_text("".join(
            f"{x:.1f} {y:.1f} {x + 50:.1f} {y:.1f} {x + 50:.1f} {y + 30:.1f} {x:.1f} {y + 30:.1f} car 0\n"
            for x, y in xy))
        decoded = side * side * 3
        print(f"{side} x {side} RGB tiled TIFF: {decoded / 1e9:.1f} GB decoded, "
              f"{os.path.getsize(root / 'images' / 'BIG.tif') / 1e6:.0f} MB on disk, 20,000 objects")
        for workers in (1, 2):
            peak, t = peak_tree_rss([sys.executable, "-m", "dsprep", "tile-dota", str(root), "--out",
                                     str(tmp / f"out{workers}"), "-q", "--workers", str(workers)], env)
            n = len(os.listdir(tmp / f"out{workers}" / "images"))
            print(f"  tile-dota --workers {workers}: {n} tiles in {t:.1f} s, peak RSS of the process tree "
                  f"{peak / 1e6:.0f} MB ({decoded / peak:.0f}x less than the decoded image)")
        print("window reading speed:")
        reader_speeds(tmp)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
