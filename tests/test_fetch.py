"""dsprep fetch: the pure parts table-driven, the rest against a real HTTP server on 127.0.0.1 (no internet)."""
import hashlib
import io
import os
import re
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dsprep import fetch as F
from dsprep.core import OutputError, UsageError

from helpers import run_cli, write_voc_tree


# ---------------------------------------------------------------------------------------------------------------
# A loopback server whose routes misbehave on purpose


class Server:
    """Routes: ``path -> dict(data=bytes, mode=...)``.  Modes: ``ok`` (honours Range), ``cut`` (sends half the body
    of its next ``cuts`` answers, then closes), ``norange`` (always the whole file, 200), ``404``, ``flaky`` (503 for
    its first ``fails`` answers), ``stall`` (waits ``stall`` s first), ``redirect`` (302 to ``to``).
    ``log`` holds one dict per request: path, range, if_range, status, sent (body bytes)."""

    def __init__(self):
        self.routes, self.log = {}, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner._answer(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.02),
                                       daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def add(self, path, data=b"", mode="ok", **opts):
        self.routes[path] = dict(data=data, mode=mode, **opts)
        return self.url(path)

    def requests(self, path):
        return [r for r in self.log if r["path"] == path]

    def _answer(self, h):
        route = self.routes.get(h.path)
        rng, if_range = h.headers.get("Range"), h.headers.get("If-Range")
        entry = dict(path=h.path, range=rng, if_range=if_range, status=None, sent=0)
        self.log.append(entry)
        if route is None or route["mode"] == "404":
            entry["status"] = 404
            h.send_error(404)
            return
        mode, data = route["mode"], route["data"]
        if mode == "stall":
            time.sleep(route["stall"])
        if mode == "redirect":
            entry["status"] = 302
            h.send_response(302)
            h.send_header("Location", self.url(route["to"]))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if mode == "flaky" and route["fails"] > 0:
            route["fails"] -= 1
            entry["status"] = 503
            h.send_error(503)
            return
        start = 0
        if rng and mode != "norange":
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                entry["status"] = 416
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
        body = data[start:]
        entry["status"] = 206 if start else 200
        h.send_response(entry["status"])
        h.send_header("Content-Length", str(len(body)))
        h.send_header("ETag", '"v1"')
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if mode == "cut" and route.get("cuts", 1) > 0:
            route["cuts"] = route.get("cuts", 1) - 1
            body = body[:len(body) // 2]
        try:
            h.wfile.write(body)
            h.wfile.flush()
            entry["sent"] = len(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout, a refused size)
            entry["sent"] = None
        h.close_connection = True


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("DSPREP_CACHE", str(path))
    return path


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(F, "CHUNK", 4096)  # several blocks per test archive, so interruptions fall mid-file
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the loopback server must be reached directly


# ---------------------------------------------------------------------------------------------------------------
# Test archives


@pytest.fixture(scope="module")
def voc_tree(tmp_path_factory):
    """A real little VOC data set laid out as in the official archive: VOCdevkit/VOC2007/..."""
    root = tmp_path_factory.mktemp("src")
    write_voc_tree(root / "VOCdevkit" / "VOC2007", {
        "000001": (120, 90, [("cat", (11, 6, 60, 55)), ("dog", (61, 1, 120, 90), "<difficult>1</difficult>")]),
        "000002": (100, 80, [("cat", (1, 1, 40, 40))]),
        "000003": (90, 70, [])}, splits={"trainval": ["000001", "000002", "000003"]})
    return root


def make_tar(src: Path, compression: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}") as tar:
        tar.add(src / "VOCdevkit", arcname="VOCdevkit")
    return buf.getvalue()


def make_zip(src: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            zf.write(p, p.relative_to(src).as_posix())
    return buf.getvalue()


@pytest.fixture(scope="module")
def archive(voc_tree):
    data = make_tar(voc_tree)
    assert len(data) > 8 * 4096  # several blocks
    return data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_for(urls, data, **kw):
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    return F.Entry(name="tiny", filename="tiny.tar", urls=urls, sha256=sha(data), root="VOCdevkit/VOC2007", **kw)


def leftovers(out: Path):
    """Anything half-done beside the output: temporary folders, partial files."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def assert_extracted(out: Path, src: Path):
    for p in (src / "VOCdevkit").rglob("*"):
        q = out / p.relative_to(src)
        assert q.exists(), q
        if p.is_file():
            assert q.read_bytes() == p.read_bytes()


def no_sleep(delays):
    return delays.append


# ---------------------------------------------------------------------------------------------------------------
# Pure parts


def test_registry_entries_are_complete():
    assert set(F.REGISTRY) == {"voc2007", "voc2007-test", "voc2012"}
    for e in F.REGISTRY.values():
        assert re.fullmatch(r"[0-9a-f]{64}", e.sha256) and re.fullmatch(r"[0-9a-f]{32}", e.md5)
        assert e.size > 400_000_000 and e.root.startswith("VOCdevkit/VOC")
        assert len(e.urls) >= 3 and all(u.endswith("/" + e.filename) for u in e.urls)
        assert e.urls[0].startswith("https://thor.robots.ox.ac.uk/pascal/VOC/")
        assert not any("pjreddie" in u for u in e.urls)  # dead mirror
    assert F.resolve("VOC2007-trainval") is F.REGISTRY["voc2007"]
    assert F.resolve("voc2012", "SHA256:" + F.REGISTRY["voc2012"].sha256.upper()) is F.REGISTRY["voc2012"]


@pytest.mark.parametrize("text", ["0" * 63, "0" * 65, "g" * 64, "", "md5:" + "0" * 64, "0" * 32])
def test_bad_sha256_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--sha256: expected 64 hexadecimal digits"):
        F.parse_sha256(text)


@pytest.mark.parametrize("target, sha256, message", [
    ("voc2009", None, "unknown data set 'voc2009' \\(known: voc2007, voc2007-test, voc2012"),
    ("http://", "0" * 64, "malformed URL \\(no host\\)"),
    ("ftp://example.org/a.tar", "0" * 64, "only http:// and https://"),
    ("http://example.org:port/a.tar", "0" * 64, "malformed URL"),
    ("http://exa mple.org/a.tar", "0" * 64, "malformed URL"),
    ("https://example.org/a.tar", None, "a URL needs --sha256"),
    ("voc2007", "0" * 64, "differs from the checksum dsprep knows for voc2007"),
])
def test_resolve_refuses_bad_input(target, sha256, message):
    with pytest.raises(UsageError, match=message):
        F.resolve(target, sha256)


def test_resolve_url_names_the_cached_file():
    url = "https://example.org/data/My%20Set.tar.gz?x=1"
    e = F.resolve(url, "A" * 64)
    assert (e.filename, e.sha256, e.urls, e.size) == ("My Set.tar.gz", "a" * 64, (url,), None)
    assert F.resolve("https://example.org/", "a" * 64).filename == "download"


def test_cache_root():
    assert F.cache_root({"DSPREP_CACHE": "/x/c", "XDG_CACHE_HOME": "/y"}, "/h") == Path("/x/c")
    assert F.cache_root({"XDG_CACHE_HOME": "/y"}, "/h") == Path("/y/dsprep")
    assert F.cache_root({}, "/h") == Path("/h/.cache/dsprep")


@pytest.mark.parametrize("value, expected", [
    ("bytes 100-199/200", (100, 199, 200)), ("bytes */200", (None, None, 200)), ("bytes 0-9/*", (0, 9, None)),
    ("BYTES 5-5/6", (5, 5, 6)), ("bytes 10-5/20", None), ("bytes 0-20/20", None), ("items 0-1/2", None),
    ("", None), (None, None)])
def test_parse_content_range(value, expected):
    assert F.parse_content_range(value) == expected


@pytest.mark.parametrize("status, headers, offset, plan", [
    (206, {"Content-Range": "bytes 50-99/100"}, 50, F.Plan("append", 50, 100)),
    (200, {"Content-Length": "100"}, 50, F.Plan("restart", 0, 100)),   # Range ignored: the whole file again
    (200, {}, 0, F.Plan("restart", 0, None)),
    (416, {"Content-Range": "bytes */100"}, 100, F.Plan("complete", 100, 100)),
    (416, {"Content-Range": "bytes */100"}, 120, F.Plan("discard", 0, 100)),
    (416, {}, 120, F.Plan("discard", 0, None)),
])
def test_plan_response(status, headers, offset, plan):
    assert F.plan_response(status, headers, offset) == plan


@pytest.mark.parametrize("status, headers, offset", [
    (206, {"Content-Range": "bytes 0-99/100"}, 50), (206, {}, 50), (302, {}, 0), (204, {}, 0)])
def test_plan_response_refuses_unusable_answers(status, headers, offset):
    with pytest.raises(ValueError):
        F.plan_response(status, headers, offset)


def test_request_headers_and_retry_policy():
    assert "Range" not in F.request_headers(0, '"v1"')
    h = F.request_headers(1024, '"v1"')
    assert h["Range"] == "bytes=1024-" and h["If-Range"] == '"v1"' and h["Accept-Encoding"] == "identity"
    assert [F.backoff_delay(i, 1.0, 10) for i in range(6)] == [1, 2, 4, 8, 10, 10]
    assert [s for s in (None, 404, 403, 410, 408, 429, 500, 503, 501) if F.is_transient(s)] == [None, 408, 429, 500,
                                                                                               503]


@pytest.mark.parametrize("name, kind, expected", [
    ("VOCdevkit/VOC2007/a.xml", "file", "VOCdevkit/VOC2007/a.xml"),
    ("./VOCdevkit//VOC2007/./a.xml", "file", "VOCdevkit/VOC2007/a.xml"),
    ("./", "dir", None),
    ("VOCdevkit/", "dir", "VOCdevkit"),
])
def test_check_member_accepts(name, kind, expected):
    assert F.check_member(name, kind) == expected


@pytest.mark.parametrize("name, kind, link, why", [
    ("/etc/passwd", "file", "", "absolute path"),
    ("C:/Windows/x", "file", "", "absolute path"),
    ("\\\\server\\share\\x", "file", "", "absolute path"),
    ("../evil", "file", "", "'..' in its path"),
    ("a/../../evil", "file", "", "'..' in its path"),
    ("a/..\\..\\evil", "file", "", "'..' in its path"),
    ("a/b\x00c", "file", "", "NUL"),
    ("dev", "other", "", "device or FIFO"),
    ("link", "symlink", "/etc/passwd", "absolute path"),
    ("a/link", "symlink", "../../etc", "pointing outside"),
    ("link", "symlink", "..", "pointing outside"),
    ("link", "symlink", "", "absolute path"),
    ("hl", "hardlink", "../x", "hard link pointing outside"),
    ("hl", "hardlink", "/etc/passwd", "hard link pointing outside"),
    ("", "file", "", "without a name"),
])
def test_check_member_refuses(name, kind, link, why):
    with pytest.raises(F.ArchiveError, match=re.escape(why)):
        F.check_member(name, kind, link)


def test_check_member_allows_links_that_stay_inside():
    assert F.check_member("a/b/link", "symlink", "../c/x.jpg") == "a/b/link"
    assert F.check_member("a/link", "symlink", "..") == "a/link"  # the archive root itself
    assert F.check_member("a/hl", "hardlink", "b/x") == "a/hl"


# ---------------------------------------------------------------------------------------------------------------
# Downloads against the loopback server


def test_fetch_extracts_and_second_fetch_comes_from_the_cache(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive)
    res = F.fetch(entry_for(url, archive), tmp_path / "out", cache=cache)
    assert_extracted(tmp_path / "out", voc_tree)
    assert res.download.source == url and res.download.fetched == len(archive) and res.download.resumed_from == 0
    assert res.dataset == tmp_path / "out" / "VOCdevkit" / "VOC2007"
    assert F.cache_path(cache, entry_for(url, archive)).read_bytes() == archive
    assert [p.name for p in F.cache_path(cache, entry_for(url, archive)).parent.iterdir()
            if not p.name.endswith(".lock")] == ["tiny.tar"]
    assert leftovers(tmp_path / "out") == []

    again = F.fetch(entry_for(url, archive), tmp_path / "out2", cache=cache)
    assert again.download.cached and again.download.fetched == 0
    assert len(server.log) == 1  # nothing asked of the network the second time
    assert_extracted(tmp_path / "out2", voc_tree)


def test_cut_connection_then_rerun_fetches_only_the_rest(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive, mode="cut")
    entry = entry_for(url, archive)
    with pytest.raises(F.FetchError, match=f"connection closed after {len(archive) // 2} of {len(archive)} bytes"):
        F.fetch(entry, tmp_path / "out", cache=cache, retries=0)
    part = F.cache_path(cache, entry).with_name("tiny.tar.part")
    half = len(archive) // 2
    assert part.read_bytes() == archive[:half]
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []

    res = F.fetch(entry, tmp_path / "out", cache=cache, retries=0)
    first, second = server.log
    assert first["range"] is None and first["sent"] == half
    assert second["range"] == f"bytes={half}-" and second["if_range"] == '"v1"'
    assert second["status"] == 206 and second["sent"] == len(archive) - half  # only the remaining bytes
    assert res.download.resumed_from == half and res.download.fetched == len(archive) - half
    assert not part.exists()
    assert_extracted(tmp_path / "out", voc_tree)


def test_cut_connection_is_resumed_within_the_run(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive, mode="cut")
    delays = []
    res = F.fetch(entry_for(url, archive), tmp_path / "out", cache=cache, retries=2, backoff=0.5,
                  sleep=no_sleep(delays))
    assert [r["range"] for r in server.log] == [None, f"bytes={len(archive) // 2}-"]
    assert delays == [0.5] and res.download.fetched == len(archive)
    assert "connection closed" in res.download.warnings[0]
    assert_extracted(tmp_path / "out", voc_tree)


def test_wrong_checksum_removes_the_download_and_says_so(server, cache, tmp_path, archive):
    url = server.add("/voc.tar", archive[:-1] + b"x")  # one byte differs
    entry = entry_for(url, archive)
    with pytest.raises(F.ChecksumError, match=f"SHA-256 mismatch \\(expected {entry.sha256}, got "
                                              f"{sha(archive[:-1] + b'x')}\\); the download was removed"):
        F.fetch(entry, tmp_path / "out", cache=cache)
    folder = F.cache_path(cache, entry).parent
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []


def test_404_on_the_first_mirror_uses_the_next(server, cache, tmp_path, voc_tree, archive):
    missing = server.add("/gone/voc.tar", mode="404")
    good = server.add("/mirror/voc.tar", archive)
    logged = []
    res = F.fetch(entry_for([missing, good], archive), tmp_path / "out", cache=cache, log=logged.append)
    assert [(r["path"], r["status"]) for r in server.log] == [("/gone/voc.tar", 404), ("/mirror/voc.tar", 200)]
    assert res.download.source == good
    assert logged == [f"warning: {missing}: HTTP 404 Not Found; trying the next source"]
    assert_extracted(tmp_path / "out", voc_tree)


def test_every_source_failing_is_one_error_naming_each(server, cache, tmp_path, archive):
    a, b = server.add("/a.tar", mode="404"), server.add("/b.tar", archive, mode="flaky", fails=10)
    with pytest.raises(F.FetchError) as err:
        F.fetch(entry_for([a, b], archive), tmp_path / "out", cache=cache, retries=1, sleep=lambda s: None)
    assert str(err.value) == (f"tiny: could not download it from any source: {a}: HTTP 404 Not Found; "
                              f"{b}: HTTP 503 Service Unavailable (2 attempts)")
    assert not (tmp_path / "out").exists()


def test_server_ignoring_range_restarts_cleanly(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive, mode="norange")
    entry = entry_for(url, archive)
    part = F.cache_path(cache, entry).with_name("tiny.tar.part")
    part.parent.mkdir(parents=True)
    stale = b"stale bytes from an older file" * 100  # not a prefix of this file
    part.write_bytes(stale)
    logged = []
    res = F.fetch(entry, tmp_path / "out", cache=cache, log=logged.append)
    assert server.log[0]["range"] == f"bytes={len(stale)}-"
    assert server.log[0]["status"] == 200 and len(server.log) == 1
    assert res.download.resumed_from == 0 and res.download.fetched == len(archive)
    assert logged == [f"warning: {url}: the server does not resume downloads; starting over"]
    assert_extracted(tmp_path / "out", voc_tree)


def test_partial_longer_than_the_file_starts_over(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive)
    entry = entry_for(url, archive)
    part = F.cache_path(cache, entry).with_name("tiny.tar.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(archive + b"junk")
    F.fetch(entry, tmp_path / "out", cache=cache, retries=0)
    assert [(r["range"], r["status"]) for r in server.log] == [(f"bytes={len(archive) + 4}-", 416), (None, 200)]
    assert_extracted(tmp_path / "out", voc_tree)


@pytest.mark.parametrize("known_size", [False, True])
def test_a_partial_holding_every_byte_is_only_checked(server, cache, tmp_path, voc_tree, archive, known_size):
    # a run stopped between the last byte and the checksum: no bytes need to move again
    url = server.add("/voc.tar", archive)
    entry = entry_for(url, archive, size=len(archive) if known_size else None)
    part = F.cache_path(cache, entry).with_name("tiny.tar.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(archive)
    res = F.fetch(entry, tmp_path / "out", cache=cache)
    assert [(r["range"], r["status"]) for r in server.log] == ([] if known_size else [(f"bytes={len(archive)}-", 416)])
    assert res.download.fetched == 0 and res.download.resumed_from == len(archive)
    assert_extracted(tmp_path / "out", voc_tree)


def test_transient_errors_are_retried_with_backoff(server, cache, tmp_path, archive):
    url = server.add("/voc.tar", archive, mode="flaky", fails=3)
    delays = []
    F.fetch(entry_for(url, archive), tmp_path / "out", cache=cache, retries=3, backoff=0.25, sleep=no_sleep(delays))
    assert delays == [0.25, 0.5, 1.0]
    assert [r["status"] for r in server.log] == [503, 503, 503, 200]


def test_a_stalled_server_times_out_and_the_next_mirror_is_used(server, cache, tmp_path, archive):
    slow = server.add("/slow.tar", archive, mode="stall", stall=1.5)
    good = server.add("/good.tar", archive)
    t0 = time.perf_counter()
    res = F.fetch(entry_for([slow, good], archive), tmp_path / "out", cache=cache, timeout=0.3, retries=0)
    assert res.download.source == good and time.perf_counter() - t0 < 1.5
    assert "timed out" in res.download.warnings[0]


def test_redirect_keeps_the_range(server, cache, tmp_path, voc_tree, archive):
    # host.robots.ox.ac.uk now answers with permanent redirects to the new host: a resume must survive them
    server.add("/new/voc.tar", archive, mode="cut")
    old = server.add("/old/voc.tar", mode="redirect", to="/new/voc.tar")
    F.fetch(entry_for(old, archive), tmp_path / "out", cache=cache, retries=1, sleep=lambda s: None)
    assert [(r["path"], r["range"]) for r in server.log] == [
        ("/old/voc.tar", None), ("/new/voc.tar", None),
        ("/old/voc.tar", f"bytes={len(archive) // 2}-"), ("/new/voc.tar", f"bytes={len(archive) // 2}-")]
    assert_extracted(tmp_path / "out", voc_tree)


def test_known_size_catches_a_wrong_file_before_downloading_it(server, cache, tmp_path, archive):
    url = server.add("/voc.tar", archive)
    with pytest.raises(F.FetchError, match=f"the server has {len(archive)} bytes, tiny has {len(archive) + 1}"):
        F.fetch(entry_for(url, archive, size=len(archive) + 1), tmp_path / "out", cache=cache)
    assert not F.cache_path(cache, entry_for(url, archive)).with_name("tiny.tar.part").exists()


def test_ctrl_c_keeps_a_resumable_partial_and_nothing_at_the_output(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive)
    entry = entry_for(url, archive)
    seen = []

    def interrupt(n):
        seen.append(n)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        F.fetch(entry, tmp_path / "out", cache=cache, on_chunk=interrupt)
    part = F.cache_path(cache, entry).with_name("tiny.tar.part")
    assert part.read_bytes() == archive[:sum(seen)]
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []

    res = F.fetch(entry, tmp_path / "out", cache=cache)
    assert server.log[-1]["range"] == f"bytes={sum(seen)}-" and res.download.resumed_from == sum(seen)
    assert_extracted(tmp_path / "out", voc_tree)


def test_interrupted_extraction_leaves_nothing_at_the_output(server, cache, tmp_path, archive, monkeypatch):
    url = server.add("/voc.tar", archive)
    calls = []
    real = F._place_stream

    def place(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(F, "_place_stream", place)
    with pytest.raises(KeyboardInterrupt):
        F.fetch(entry_for(url, archive), tmp_path / "out", cache=cache)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []
    assert F.cache_path(cache, entry_for(url, archive)).exists()  # the verified download is kept


def test_another_run_downloading_the_same_file_is_refused(server, cache, tmp_path, archive):
    url = server.add("/voc.tar", archive)
    entry = entry_for(url, archive)
    folder = F.cache_path(cache, entry).parent
    folder.mkdir(parents=True)
    with F._Lock(folder / "tiny.tar.lock", "tiny"):
        with pytest.raises(F.FetchError, match="another dsprep fetch is downloading it"):
            F.download(entry, cache)
    assert server.log == []


# ---------------------------------------------------------------------------------------------------------------
# Outputs


def test_existing_output_is_refused_before_downloading(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive)
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(OutputError, match="output folder is not empty \\(use --overwrite to replace it\\)"):
        F.fetch(entry_for(url, archive), out, cache=cache)
    assert server.log == [] and (out / "mine.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        F.fetch(entry_for(url, archive), tmp_path / "file", cache=cache)

    F.fetch(entry_for(url, archive), out, cache=cache, overwrite=True)
    assert not (out / "mine.txt").exists()
    assert_extracted(out, voc_tree)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "file", "out"]


def test_an_empty_output_folder_is_used(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive)
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "out").mkdir()
    F.fetch(entry_for(url, archive), tmp_path / "deep" / "out", cache=cache)
    assert_extracted(tmp_path / "deep" / "out", voc_tree)
    F.fetch(entry_for(url, archive), tmp_path / "new" / "parents" / "out", cache=cache)  # parents made
    assert_extracted(tmp_path / "new" / "parents" / "out", voc_tree)


def test_out_dot_fills_the_current_empty_folder(server, cache, tmp_path, voc_tree, archive, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    inode = here.stat().st_ino
    monkeypatch.chdir(here)
    url = server.add("/voc.tar", archive)
    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", ".", "--quiet")
    assert here.stat().st_ino == inode  # the folder is kept (a shell standing in it still sees the data)
    assert_extracted(here, voc_tree)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "here"]
    assert "VOCdevkit (voc)" in res.stdout
    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", ".", ok=False)
    assert res.exit_code == 2 and "error: .: output folder is not empty" in res.output


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
def test_compressed_archives(server, cache, tmp_path, voc_tree, kind):
    data = make_zip(voc_tree) if kind == "zip" else make_tar(voc_tree, kind)
    url = server.add(f"/voc.{kind}", data)
    res = F.fetch(entry_for(url, data), tmp_path / "out", cache=cache)
    assert_extracted(tmp_path / "out", voc_tree)
    assert res.dataset == tmp_path / "out" / "VOCdevkit" / "VOC2007"


def test_a_file_that_is_not_an_archive_is_placed_as_it_is(server, cache, tmp_path):
    data = b"class names, one a line\n"
    url = server.add("/names.txt", data)
    res = F.fetch(F.resolve(url, sha(data)), tmp_path / "out", cache=cache)
    assert (tmp_path / "out" / "names.txt").read_bytes() == data and res.members == 1 and res.dataset is None


def test_an_encrypted_zip_is_an_error(server, cache, tmp_path):
    data = bytearray(_zip(("a.txt", "file", b"secret")))
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):  # set the 'encrypted' flag in both headers
        at = data.index(sig)
        flag_at = at + (6 if sig == b"PK\x03\x04" else 8)
        data[flag_at] |= 1
    url = server.add("/enc.zip", bytes(data))
    with pytest.raises(F.ArchiveError, match="broken zip archive .*encrypted"):
        F.fetch(entry_for(url, bytes(data)), tmp_path / "out", cache=cache)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []


def test_a_broken_archive_is_an_error(server, cache, tmp_path, archive):
    import gzip
    data = gzip.compress(archive)[:-200]  # truncated stream
    url = server.add("/voc.tar.gz", data)
    with pytest.raises(F.ArchiveError, match="broken tar archive"):
        F.fetch(entry_for(url, data), tmp_path / "out", cache=cache)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []


# ---------------------------------------------------------------------------------------------------------------
# Malicious archives


def _tar(*members) -> bytes:
    """members: (name, kind, payload-or-link)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = value or ""
            tar.addfile(info)
    return buf.getvalue()


OK = ("data/ok.txt", "file", b"fine")
MALICIOUS_TARS = {
    "absolute": [OK, ("/tmp/dsprep-evil-abs", "file", b"evil")],
    "dotdot": [OK, ("data/../../evil", "file", b"evil")],
    "symlink-out": [OK, ("data/link", "symlink", "../../"), ("data/link/evil", "file", b"evil")],
    "symlink-absolute": [OK, ("data/link", "symlink", "/tmp")],
    "hardlink-out": [OK, ("data/hard", "hardlink", "../outside/secret")],
    "hardlink-absolute": [OK, ("data/hard", "hardlink", "/etc/passwd")],
    "fifo": [OK, ("data/fifo", "fifo", None)],
    # each link is fine where it is made; together 'a' leads out ('m' turns 'm/..' into the output's parent)
    "symlink-chain": [OK, ("a", "symlink", "m/.."), ("m", "symlink", "."), ("a/evil", "file", b"evil")],
    "symlink-chain-left-behind": [OK, ("a", "symlink", "m/.."), ("m", "symlink", ".")],
}


@pytest.mark.parametrize("case", list(MALICIOUS_TARS))
def test_malicious_tar_is_refused(server, cache, tmp_path, case):
    data = _tar(*MALICIOUS_TARS[case])
    url = server.add("/evil.tar", data)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("secret")
    out = tmp_path / "work" / "out"
    with pytest.raises(F.ArchiveError, match="refused, nothing was extracted") as err:
        F.fetch(entry_for(url, data), out, cache=cache)
    assert err.value.args[0].startswith("tiny.tar: member ")
    assert not out.exists() and leftovers(out) == []
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []
    assert not Path("/tmp/dsprep-evil-abs").exists()
    assert not list(tmp_path.rglob("evil")) and (tmp_path / "outside" / "secret").read_text() == "secret"


def test_links_inside_the_archive_are_kept(server, cache, tmp_path):
    data = _tar(("d/x.txt", "file", b"x"), ("d/sub", "dir", None), ("d/sub/l", "symlink", "../x.txt"),
                ("d/h", "hardlink", "d/x.txt"))
    url = server.add("/ok.tar", data)
    F.fetch(entry_for(url, data), tmp_path / "out", cache=cache)
    out = tmp_path / "out"
    assert os.readlink(out / "d/sub/l") == "../x.txt" and (out / "d/sub/l").read_bytes() == b"x"
    assert (out / "d/h").read_bytes() == b"x" and not (out / "d/h").is_symlink()


def _zip(*members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, kind, value in members:
            info = zipfile.ZipInfo(name)
            if kind == "symlink":
                info.create_system = 3
                info.external_attr = (0o120777 << 16)
            zf.writestr(info, value)
    return buf.getvalue()


@pytest.mark.parametrize("members", [
    [("ok.txt", "file", b"x"), ("../evil", "file", b"evil")],
    [("ok.txt", "file", b"x"), ("/tmp/dsprep-evil-zip", "file", b"evil")],
    [("ok.txt", "file", b"x"), ("..\\evil", "file", b"evil")],
    [("ok.txt", "file", b"x"), ("link", "symlink", b"../../outside")],
], ids=["dotdot", "absolute", "backslash", "symlink-out"])
def test_malicious_zip_is_refused(server, cache, tmp_path, members):
    data = _zip(*members)
    url = server.add("/evil.zip", data)
    out = tmp_path / "work" / "out"
    with pytest.raises(F.ArchiveError, match="refused, nothing was extracted"):
        F.fetch(entry_for(url, data), out, cache=cache)
    assert not (tmp_path / "work").exists() or list((tmp_path / "work").iterdir()) == []
    assert not list(tmp_path.rglob("evil")) and not Path("/tmp/dsprep-evil-zip").exists()


# ---------------------------------------------------------------------------------------------------------------
# The command line


def _lines(text):
    return [line for line in text.strip().splitlines() if line]


def test_cli_fetch_prints_info_and_one_summary_line(server, cache, tmp_path, archive):
    url = server.add("/voc.tar", archive)
    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", tmp_path / "out", "--quiet")
    assert "images: 3   objects: 3   difficult: 1" in res.stdout
    # 3 objects: every class is rare, and nothing else is wrong
    assert "problems:\n  rare_class: 2\n" in res.stdout
    assert res.stdout.startswith(f"{tmp_path / 'out' / 'VOCdevkit'} (voc)\n")  # found inside the archive
    line, = _lines(res.stderr)
    assert re.fullmatch(rf"fetch voc\.tar from {re.escape(url)}, not resumed: {len(archive)} bytes downloaded, "
                        rf"\d+ files extracted -> {re.escape(str(tmp_path / 'out'))} in \d+\.\d s", line), line

    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", tmp_path / "out2")
    assert re.match(r"fetch voc\.tar from cache \(.*voc\.tar\), not resumed: 0 bytes downloaded", res.stderr)


def test_cli_resume_after_a_cut_connection(server, cache, tmp_path, archive):
    url = server.add("/voc.tar", archive, mode="cut")
    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", tmp_path / "out", "--retries", "0", ok=False)
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert _lines(res.stderr) == [f"error: voc.tar: could not download it from any source: {url}: connection "
                                  f"closed after {len(archive) // 2} of {len(archive)} bytes"]
    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", tmp_path / "out", "--retries", "0")
    assert f"resumed at byte {len(archive) // 2}: {len(archive) - len(archive) // 2} bytes downloaded" in res.stderr


def test_cli_registry_name(server, cache, tmp_path, archive, monkeypatch):
    url = server.add("/voc.tar", archive)
    monkeypatch.setitem(F.REGISTRY, "tiny", entry_for(url, archive))
    res = run_cli("fetch", "tiny", "--out", tmp_path / "data")
    assert "images: 3" in res.stdout and "fetch tiny from" in res.stderr


@pytest.mark.parametrize("args, code, message", [
    (["voc2099", "--out", "{out}"], 2, "error: unknown data set 'voc2099' (known: voc2007, voc2007-test, voc2012; "
                                       "or give an http(s) URL with --sha256)"),
    (["http//example.org/a.tar", "--out", "{out}"], 2, "error: unknown data set 'http//example.org/a.tar'"),
    (["htp://example.org/a.tar", "--sha256", "0" * 64, "--out", "{out}"], 2,
     "error: 'htp://example.org/a.tar': malformed URL (only http:// and https:// are supported)"),
    (["https://example.org/a.tar", "--sha256", "xyz", "--out", "{out}"], 2,
     "error: --sha256: expected 64 hexadecimal digits, got 'xyz'"),
    (["https://example.org/a.tar", "--out", "{out}"], 2, "error: 'https://example.org/a.tar': a URL needs --sha256"),
    (["voc2007"], 2, "error: --out DIR is required"),
    ([], 2, "error: give a data set name or a URL"),
    (["voc2007", "--out", "{out}", "--timeout", "soon"], 2, "error: --timeout: expected a number >= 0.001, got 'soon'"),
    (["voc2007", "--out", "{out}", "--retries", "-1"], 2, "error: --retries: expected a whole number >= 0, got '-1'"),
    (["voc2007", "--out", "{full}"], 2, "error: {full}: output folder is not empty (use --overwrite to replace it)"),
])
def test_cli_bad_input_is_one_line(cache, tmp_path, args, code, message):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    fmt = dict(out=tmp_path / "out", full=full)
    res = run_cli("fetch", *[a.format(**fmt) for a in args], ok=False)
    assert res.exit_code == code and "Traceback" not in res.output
    line, = _lines(res.output)
    assert line.startswith(message.format(**fmt)), line
    assert not (tmp_path / "out").exists() and not cache.exists()


def test_cli_ctrl_c(server, cache, tmp_path, archive, monkeypatch):
    url = server.add("/voc.tar", archive)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(F, "fetch", interrupted)
    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", tmp_path / "out", ok=False)
    assert res.exit_code == 130
    assert _lines(res.stderr) == [f"interrupted by Ctrl-C: nothing was written to {tmp_path / 'out'}; the partial download is "
                                  f"kept in {cache} and the same command resumes it"]


def test_cli_list():
    res = run_cli("fetch", "--list")
    for name, e in F.REGISTRY.items():
        assert name in res.output and e.sha256 in res.output


def _tamper_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Change bytes of a cached file as an attacker would: same size, same inode, same modification time."""
    st = path.stat()
    data = path.read_bytes()
    at = data.index(old)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


def test_a_tampered_cache_file_is_never_used(server, cache, tmp_path, voc_tree, archive):
    url = server.add("/voc.tar", archive)
    run_cli("fetch", url, "--sha256", sha(archive), "--out", tmp_path / "out", "--quiet")
    cached = F.cache_path(cache, F.resolve(url, sha(archive)))
    old, new = b"<name>cat</na", b"<name>dog</na"  # 13 bytes of an annotation inside the archive
    assert len(old) == len(new) == 13
    _tamper_in_place(cached, old, new)

    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", tmp_path / "out2", "--quiet")
    assert "has changed since it was verified" in res.stderr and "from cache" not in res.stderr
    assert f"fetch voc.tar from {url}" in res.stderr and len(server.requests("/voc.tar")) == 2
    assert_extracted(tmp_path / "out2", voc_tree)  # the real bytes, downloaded again
    assert cached.read_bytes() == archive

    _tamper_in_place(cached, old, new)
    server.add("/voc.tar", b"", mode="404")  # and the source is gone: an error, never the tampered bytes
    res = run_cli("fetch", url, "--sha256", sha(archive), "--out", tmp_path / "out3", ok=False)
    assert res.exit_code != 0 and "Traceback" not in res.output and not (tmp_path / "out3").exists()
    assert "has changed since it was verified" in res.stderr and not cached.exists()
