"""dsprep synth speed on 1024x512 canvases with 16 objects (elliptic RGBA crops 70-150 x 50-120 px, rotated),
with the defaults: --fit cover (the 1280x720 backgrounds are scaled by 0.8, and the objects with them) and feathered
edges (--blend feather --feather 2); measured in one run, against
  * the floor: decode one background and encode one output JPEG, nothing else;
  * a naive reference written here: the per-pixel Python paste loop that copied scripts use.
Also 1 vs 2 workers through the command.
Usage: python benchmarks/bench_synth.py [N]
"""
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner

from dsprep.cli import main as cli
from dsprep.images import encode_image, read_image
from dsprep.ops.synth import sprite_from_image, transform_sprite


def make_inputs(root: Path):
    rng = np.random.default_rng(0)
    (root / "bg").mkdir(parents=True)
    for i in range(4):
        small = rng.integers(0, 255, (8, 16, 3)).astype(np.uint8)
        bg = cv2.resize(small, (1280, 720), interpolation=cv2.INTER_CUBIC)
        bg = np.clip(bg + rng.normal(0, 12, bg.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "bg" / f"bg{i}.jpg"), bg, [cv2.IMWRITE_JPEG_QUALITY, 92])
    for cls in ("car", "bus", "plane"):
        (root / "objects" / cls).mkdir(parents=True)
        for k in range(5):
            w, h = int(rng.integers(70, 150)), int(rng.integers(50, 120))
            img = np.zeros((h, w, 4), np.uint8)
            img[..., :3] = rng.integers(30, 255, 3)
            alpha = np.zeros((h, w), np.uint8)
            cv2.ellipse(alpha, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 255, -1)
            img[..., 3] = alpha
            cv2.imwrite(str(root / "objects" / cls / f"{k}.png"), img)


def run_cli(root, out, n, workers):
    t = time.perf_counter()
    res = CliRunner().invoke(cli, ["synth", "--backgrounds", str(root / "bg"), "--objects", str(root / "objects"),
                                   "--out", str(out), "-n", str(n), "--canvas", "1024x512", "--per-image", "16",
                                   "--workers", str(workers), "--quiet"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return n / (time.perf_counter() - t)


def floor_rate(root, n):
    bgs = sorted((root / "bg").iterdir())
    t = time.perf_counter()
    for i in range(n):
        img = read_image(bgs[i % len(bgs)])[:512, :1024]
        encode_image(img, ".jpg", 95)
    return n / (time.perf_counter() - t)


def naive_rate(root, n):
    """The per-pixel loop: for every object pixel, test the mask and copy, in Python."""
    bgs = sorted((root / "bg").iterdir())
    objs = [sprite_from_image(read_image(p, cv2.IMREAD_UNCHANGED)) for p in sorted((root / "objects").rglob("*.png"))]
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for i in range(n):
        canvas = read_image(bgs[i % len(bgs)])[:512, :1024].copy()
        for _ in range(16):
            sp = transform_sprite(objs[int(rng.integers(len(objs)))], rng.uniform(0, 360), 1.0)
            a, color = sp.alpha.astype(np.float64) / 255.0, sp.color.astype(np.float64)
            oy, ox = int(rng.integers(0, 512 - a.shape[0])), int(rng.integers(0, 1024 - a.shape[1]))
            for y in range(a.shape[0]):
                for x in range(a.shape[1]):
                    if a[y, x] > 0:
                        for c in range(3):
                            canvas[oy + y, ox + x, c] = int(a[y, x] * color[y, x, c]
                                                            + (1 - a[y, x]) * canvas[oy + y, ox + x, c] + 0.5)
        encode_image(canvas, ".jpg", 95)
    return n / (time.perf_counter() - t)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root)
        # Interleaved, best of 3: this machine's speed drifts between runs, the ratio should not.
        floor = ours1 = ours2 = 0.0
        for k in range(3):
            floor = max(floor, floor_rate(root, n))
            ours1 = max(ours1, run_cli(root, root / f"o1_{k}", n, 1))
            ours2 = max(ours2, run_cli(root, root / f"o2_{k}", n, 2))
        naive = naive_rate(root, max(2, n // 50))
    print(f"1024x512 canvases, 16 objects, JPEG output, {n} images")
    print(f"floor (decode background + encode output): {floor:7.1f} images/s")
    print(f"dsprep synth, 1 worker:                    {ours1:7.1f} images/s   floor/ours = {floor / ours1:.2f}")
    print(f"dsprep synth, 2 workers:                   {ours2:7.1f} images/s   {ours2 / ours1:.2f}x of 1 worker")
    print(f"naive per-pixel reference:                 {naive:7.1f} images/s   ours/naive = {ours1 / naive:.0f}x")


if __name__ == "__main__":
    main()
