"""Colour correction speed on a 4000x4000x3 image, against one cv2.LUT pass over the same image (one run).

Two floors are printed: a LUT with one 256-entry table (the same mapping for all channels) and a LUT with a
per-channel table (256x1x3: what applying per-channel gains with a LUT costs).  Each method is timed best-of-5.
Also times a sort-based percentile (what copied code does) for comparison.
Usage: python benchmarks/bench_color.py
"""

import cv2
import numpy as np

from dsprep.ops import color
from timing import best as timing_best



def best(fn, n=5):
    return timing_best(fn, n)


def main():
    rng = np.random.default_rng(0)
    small = rng.integers(20, 200, (8, 8, 3)).astype(np.uint8)
    img = cv2.resize(small, (4000, 4000), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img * np.array([0.6, 0.8, 1.0]) + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    lut1 = (255 - np.arange(256)).astype(np.uint8)
    lut3 = np.repeat(lut1[:, None], 3, axis=1).reshape(256, 1, 3).copy()
    t1 = best(lambda: cv2.LUT(img, lut1))
    t3 = best(lambda: cv2.LUT(img, lut3))
    print("image 4000x4000x3 uint8")
    print(f"cv2.LUT, one table:          {t1 * 1000:7.1f} ms")
    print(f"cv2.LUT, per-channel table:  {t3 * 1000:7.1f} ms")
    for name in color.METHODS:
        fn = getattr(color, name.replace("-", "_"))
        t = best(lambda: fn(img))
        print(f"{name:<16} {t * 1000:7.1f} ms   ratio to LUT (per-channel table): {t / t3:.2f}x   "
              f"(one table: {t / t1:.2f}x)")
    y = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    t_sort = best(lambda: np.sort(y, axis=None)[int(0.95 * y.size)], n=2)
    print(f"for comparison, np.sort of the luma to find the 95th percentile: {t_sort * 1000:.1f} ms")


if __name__ == "__main__":
    main()
