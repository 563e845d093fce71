"""What the untrusted-input guards cost, each against the unguarded step they wrap (one run, best of 3).

* the guarded pickle loader (Python unpickler, every dtype checked) against ``pickle.loads`` (C, no guard) on a
  pickle cache shaped like a 100,000-image annotations pack plus 2,000 images of 256x256;
* the JSON depth count (``inputs.json_depth``) against ``json.loads`` of the same COCO-like file (300,000
  annotations).
Usage: python benchmarks/bench_untrusted.py
"""
import io
import json
import pickle

import numpy as np

from dsprep.inputs import json_depth
from dsprep.pickles import _CacheUnpickler
from timing import best




def main():
    n = 100_000
    payload = {"format": "dsprep-detection", "classes": ["a"] * 20, "options": {},
               "splits": {"all": {"filenames": [f"{i:06d}.jpg" for i in range(n)],
                                  "paths": [f"/data/JPEGImages/{i:06d}.jpg" for i in range(n)],
                                  "boxes": np.zeros((3 * n, 4), np.float32), "labels": np.zeros(3 * n, np.int32),
                                  "images": np.zeros((2000, 256, 256, 3), np.uint8)}}}
    data = pickle.dumps(payload, protocol=5)
    plain = best(lambda: pickle.loads(data))
    guarded = best(lambda: _CacheUnpickler(io.BytesIO(data)).load())
    print(f"pickle cache {len(data) >> 20} MB: pickle.loads {plain * 1000:.0f} ms, guarded loader "
          f"{guarded * 1000:.0f} ms ({guarded / plain:.2f}x)")

    anns = [{"id": i, "image_id": i // 10, "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "area": 12.0,
             "iscrowd": 0, "segmentation": [[1, 2, 3, 4, 5, 6, 7, 8]]} for i in range(300_000)]
    text = json.dumps({"images": [], "annotations": anns, "categories": []}).encode()
    parse = best(lambda: json.loads(text))
    depth = best(lambda: json_depth(text))
    print(f"COCO-like JSON {len(text) >> 20} MB: json.loads {parse * 1000:.0f} ms, depth count "
          f"{depth * 1000:.0f} ms ({depth / parse:.2f} of the parse)")


if __name__ == "__main__":
    main()
