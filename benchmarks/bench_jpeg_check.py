"""What reading libjpeg's warnings costs (dsprep.libjpeg), against plain decoding with OpenCV (one run).

For JPEGs of a few sizes (photo-like content, quality 90, 4:2:0), times best-of-N of:

* plain ``cv2.imdecode`` of the bytes (what decoding cost before the check: the floor);
* ``dsprep.images.decode_image`` (probe + completeness check + the decode with libjpeg's warnings captured);
* ``dsprep.images.verify_jpeg`` (the check alone, for packing encoded bytes: a 1/8-scale gray decode) against
  reading the file's bytes only.

Usage: python benchmarks/bench_jpeg_check.py   (figures on a shared machine are noisy: compare the ratios)
"""

import cv2
import numpy as np

from dsprep.images import decode_image, verify_jpeg
from timing import best




def photo(w, h, rng):
    small = rng.integers(0, 256, (max(h // 40, 2), max(w // 40, 2), 3)).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(0)
    print(f"{'image':>10} {'bytes':>9} {'cv2.imdecode':>13} {'decode_image':>13} {'ratio':>6}   "
          f"{'verify_jpeg':>12} {'ratio to imdecode':>18}")
    for w, h, n in ((320, 240, 200), (640, 480, 100), (1920, 1080, 20), (4000, 3000, 5)):
        ok, buf = cv2.imencode(".jpg", photo(w, h, rng), [cv2.IMWRITE_JPEG_QUALITY, 90])
        data = buf.copy()
        plain = best(lambda: cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION), n)
        checked = best(lambda: decode_image(data, "bench.jpg", "color", orient=False), n)
        verify = best(lambda: verify_jpeg(data, "bench.jpg"), n)
        print(f"{w:>5}x{h:<4} {len(data):>9} {plain * 1e3:>10.2f} ms {checked * 1e3:>10.2f} ms {checked / plain:>5.2f}x"
              f"   {verify * 1e3:>9.2f} ms {verify / plain:>17.2f}x")


if __name__ == "__main__":
    main()
