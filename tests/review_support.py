"""What the review tests share: writable copies of real data, a real server on loopback, real HTTP, a real browser."""
import contextlib
import http.client
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DSPREP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def writable_copy(src: Path, dst: Path) -> Path:
    """A copy of (read-only) shared data the tests may change."""
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


@contextlib.contextmanager
def serving(path, read_only=False, **options):
    """A real review server for ``path`` on 127.0.0.1 (a free port), serving from a thread; ``options`` go to
    :class:`~dsprep.review.session.Review` (``exif=``)."""
    from dsprep.review.server import ReviewServer
    from dsprep.review.session import Review
    server = ReviewServer(0, Review(path, read_only=read_only, **options))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        server.review.close()


class Client:
    """Plain HTTP against a server (http.client sends paths exactly as given: nothing is normalized)."""

    def __init__(self, server, token=True):
        self.port = server.port
        self.token = server.token if token is True else token

    def request(self, method, path, body=None, headers=None, query_token=False, raw_body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if self.token and not query_token:
            h.setdefault("X-Dsprep-Token", self.token)
        if query_token and self.token:
            path += ("&" if "?" in path else "?") + f"token={self.token}"
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        res = conn.getresponse()
        payload = res.read()
        conn.close()
        return res.status, dict(res.getheaders()), payload

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def json(self, method, path, body=None, status=200):
        code, _, payload = self.request(method, path, body=body)
        assert code == status, payload
        return json.loads(payload)


def chromium_or_skip():
    """The browser the tests drive, or a skip saying why there is none."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("browser tests need the 'playwright' Python package (pip install '.[test]')")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set DSPREP_CHROMIUM)")
    return CHROMIUM


@contextlib.contextmanager
def browser_page(width=1400, height=900):
    """A fresh headless Chromium (its own profile folder) and one page."""
    from playwright.sync_api import sync_playwright
    exe = chromium_or_skip()
    profile = tempfile.mkdtemp(prefix="dsprep-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=exe, headless=True,
                                                       args=CHROMIUM_ARGS, viewport={"width": width, "height": height})
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.set_default_timeout(10_000)
                yield page
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
