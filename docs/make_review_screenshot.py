"""Make docs/review.png: `dsprep review` on the DOTA example, an oriented box selected, in headless Chromium.

Uses the browser setup of the tests (tests/review_support.py: Debian's /usr/bin/chromium through Playwright) on a
writable copy of ../shared/data/dota_example (or the folder given).
Usage: python docs/make_review_screenshot.py [DOTA_FOLDER]
"""
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from review_support import browser_page, writable_copy  # noqa: E402

from dsprep.review.server import ReviewServer  # noqa: E402
from dsprep.review.session import Review  # noqa: E402


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[1] / "shared" / "data" / "dota_example"
    with tempfile.TemporaryDirectory() as tmp:
        root = writable_copy(src, Path(tmp) / src.name)
        review = Review(root)
        server = ReviewServer(0, review)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with browser_page(1400, 820) as page:
                page.goto(server.url)
                page.wait_for_selector("body[data-ready='1'] .card")
                page.click("#f-class li[data-value='large-vehicle']")
                page.click(".card[title='P1888']")
                page.wait_for_selector("#image-view:not([hidden]) #shapes .obj")
                page.click("#objects li[data-k='2']")
                page.keyboard.press("z")
                for _ in range(2):
                    page.keyboard.press("-")
                page.wait_for_timeout(1500)  # the image itself
                page.screenshot(path=str(HERE / "review.png"))
        finally:
            server.shutdown()
            server.server_close()
            review.close()
    print(HERE / "review.png")


if __name__ == "__main__":
    main()
