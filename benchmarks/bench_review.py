"""How fast `dsprep review` shows its first page on a large data set, measured in one run in headless Chromium.

Generates a VOC (or DOTA) data set of N images (default 10,000; 500 x 375 JPEGs, 1-8 objects each; every image a
separate file), then times:
  * start: dsprep.review.session.Review(path), i.e. everything the command does before it prints the URL;
  * page: navigation to the printed URL until the grid is drawn (its first cards are on screen);
  * thumbnails: until every thumbnail on the first screen is decoded and shown (made on demand, in parallel);
  * image: a click on a card until the image view shows the image with its boxes.
The browser is Debian's Chromium (/usr/bin/chromium), as in the tests.
Usage: python benchmarks/bench_review.py [N] [voc|dota]
"""
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dsprep.core import ImageRecord  # noqa: E402
from dsprep.dota import format_dota  # noqa: E402
from dsprep.voc import format_voc  # noqa: E402


def make_dataset(root: Path, n: int, fmt: str) -> None:
    rng = np.random.default_rng(0)
    classes = ["person", "car", "chair", "dog", "bus", "aeroplane"]
    bases = []
    for j in range(8):  # a few real-looking pictures; every file is its own copy
        img = np.full((375, 500, 3), 40 + 20 * j, np.uint8)
        for _ in range(12):
            x, y = rng.integers(0, 450), rng.integers(0, 330)
            cv2.rectangle(img, (int(x), int(y)), (int(x) + 60, int(y) + 40), rng.integers(0, 255, 3).tolist(), -1)
        bases.append(cv2.imencode(".jpg" if fmt == "voc" else ".png", img)[1].tobytes())
    ann = root / ("Annotations" if fmt == "voc" else "labelTxt")
    img_dir = root / ("JPEGImages" if fmt == "voc" else "images")
    ann.mkdir(parents=True)
    img_dir.mkdir()
    for i in range(n):
        k = int(rng.integers(1, 9))
        x0, y0 = rng.integers(1, 300, k), rng.integers(1, 200, k)
        boxes = np.stack([x0, y0, x0 + rng.integers(5, 190, k), y0 + rng.integers(5, 170, k)], 1).astype(float)
        rec = ImageRecord(f"{i:06d}.jpg", 500, 375, boxes=boxes, names=[classes[c] for c in rng.integers(0, 6, k)])
        if fmt == "voc":
            (ann / f"{i:06d}.xml").write_bytes(format_voc(rec))
            (img_dir / f"{i:06d}.jpg").write_bytes(bases[i % 8])
        else:
            (ann / f"{i:06d}.txt").write_text(format_dota(rec))
            (img_dir / f"{i:06d}.png").write_bytes(bases[i % 8])


THUMBS_SHOWN = """() => {
  const h = window.innerHeight;
  const imgs = [...document.querySelectorAll('#grid img')].filter((i) => i.getBoundingClientRect().top < h);
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0) ? imgs.length : 0;
}"""


def wait(page, js, timeout=60.0):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        value = page.evaluate(js)
        if value:
            return value
        time.sleep(0.005)
    raise TimeoutError(js)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    fmt = sys.argv[2] if len(sys.argv) > 2 else "voc"
    from dsprep.review.server import ReviewServer
    from dsprep.review.session import Review
    from review_support import browser_page
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        t0 = time.perf_counter()
        make_dataset(root, n, fmt)
        print(f"generated {n} {fmt} images in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        review = Review(root)
        start = time.perf_counter() - t0
        server = ReviewServer(0, review)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with browser_page() as page:
                page.goto("about:blank")
                page.goto(server.url, wait_until="commit")
                page.wait_for_selector("body[data-ready='1'] .card")
                # the browser's own clock, from the start of the navigation
                shown = page.evaluate("performance.getEntriesByName('dsprep-ready')[0].startTime") / 1000
                count = wait(page, THUMBS_SHOWN)
                thumbs = page.evaluate("performance.now()") / 1000
                cards = page.locator(".card").count()
                t1 = time.perf_counter()
                page.click(".card >> nth=5")
                page.wait_for_selector("#image-view:not([hidden]) #shapes .obj")
                wait(page, "() => { const i = new Image(); i.src = document.querySelector('#photo')"
                           ".getAttribute('href'); return i.complete && i.naturalWidth > 0; }")
                image = time.perf_counter() - t1
        finally:
            server.shutdown()
            server.server_close()
            review.close()
    print(f"start (load {n} annotations, ready to serve): {start:.2f} s")
    print(f"first page (navigation -> grid on screen, {cards} of {n} cards built): {shown:.2f} s")
    print(f"first screen of thumbnails shown ({count} made on demand): {thumbs:.2f} s")
    print(f"one image opened with its boxes: {image:.2f} s")


if __name__ == "__main__":
    main()
