"""HTTP for ``dsprep review``: loopback only, one random token, one page and a small JSON API.

The server translates requests into calls on a :class:`~dsprep.review.session.Review` and holds no data logic.

Safety:

* it listens on ``127.0.0.1`` only;
* every request (the page, its script, every API call, every image) must carry the token, as the ``token`` query
  parameter or the ``X-Dsprep-Token`` header; it is compared in constant time.  Another page in the browser (it
  cannot read our responses without CORS headers, and none are sent) or another local user (who cannot read the
  terminal) never learns it;
* the ``Host`` header must name this server (a DNS-rebinding page would send its own name) and a browser request
  marked cross-site is refused;
* no client text ever becomes a path: images and records are addressed by number, static files by a fixed list,
  history entries by names listed from the history folder;
* every response says ``nosniff``, ``no-referrer`` and may not be framed; the page's content security policy
  allows its own script and style only.

Routes (``<i>``: an image's number, ``<k>``: an object's number in it)::

    GET  /                                   the page
    GET  /static/app.js, /static/app.css     its script and style
    GET  /api/dataset                        counts: classes (with colours), splits, problems
    GET  /api/images?class=&split=&problem=  the images passing the filters: [[id, stem, objects, problems, rev]]
    GET  /api/images/<i>                     one image's objects, problems and file version
    POST /api/images/<i>/save                {"version", "objects": [{"src", "name", "box"|"polygon", ...}]}
    GET  /api/images/<i>/history             earlier versions of its annotation file
    POST /api/images/<i>/restore             {"version", "entry"}: put an earlier version back
    GET  /api/images/<i>/image               the image (JPEG)
    GET  /api/images/<i>/thumb?size=&boxes=  a thumbnail (JPEG), objects drawn unless boxes=0
    GET  /api/images/<i>/objects/<k>/crop?size=   one object's crop (JPEG)
    GET  /api/gallery?class=&sort=area|aspect&order=asc|desc   every object of a class: [[id, k, area, aspect]]
    GET  /api/colors?name=...                the colour of any class name
"""
from __future__ import annotations

import errno
import hmac
import json
import re
import secrets
import sys
import traceback
from concurrent.futures import CancelledError
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from ..core import DsprepError, ImageError, ParseError, UsageError
from .session import ConflictError, EditError, NotEditable, NotFound, Review, hex_color

HOST = "127.0.0.1"
MAX_BODY = 16 << 20
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
STATUS = ((NotFound, 404), (EditError, 400), (ConflictError, 409), (NotEditable, 403), (ImageError, 422),
          (ParseError, 422))


def check_port(port: int) -> int:
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: out of range (1-65535, or 0 for a free port)")
    return port


class ReviewServer(ThreadingHTTPServer):
    """The listening socket (bound at construction, so a busy port fails before any loading) and the token."""

    daemon_threads = True

    def __init__(self, port: int = 0, review: Optional[Review] = None):
        check_port(port)
        try:
            super().__init__((HOST, port), Handler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise UsageError(f"--port {port}: already in use (leave --port out to take a free port)") from e
            if e.errno == errno.EACCES:
                raise UsageError(f"--port {port}: not allowed (ports below 1024 need administrator rights)") from e
            raise UsageError(f"--port {port}: cannot listen ({e.strerror or e})") from e
        self.review = review
        self.token = secrets.token_urlsafe(24)
        here = Path(__file__).resolve().parent / "static"
        self.files = {name: (here / name).read_bytes() for name in list(STATIC) + ["index.html"]}

    def handle_error(self, request, client_address) -> None:
        """A client that reset or closed its connection is no error of the server's: no traceback for it."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.token}"


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _int(text: str) -> int:
    return int(text)  # the routes' patterns only let digits through


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this a keep-alive connection
    #                                 waits for the peer's delayed ACK (~40 ms) on every response
    server_version = "dsprep-review"
    sys_version = ""
    server: ReviewServer

    def log_message(self, format, *args):  # quiet: the terminal shows the URL, not every thumbnail
        pass

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def _refuse_method(self):
        self.close_connection = True
        self._send(405, b"method not allowed\n", "text/plain; charset=utf-8", extra={"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _refuse_method

    # ---- the gate ------------------------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        api = url.path.startswith("/api/")
        self._body_read = method != "POST"
        try:
            self._check(url.path, query)
            body = self._body() if method == "POST" else None
            self._route(method, url.path, query, body)
        except HttpError as e:
            self._error(e.status, str(e), api)
        except DsprepError as e:
            status = next((code for cls, code in STATUS if isinstance(e, cls)), 500)
            self._error(status, str(e), api)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except CancelledError:  # the server is stopping: queued thumbnails were dropped
            self.close_connection = True
            self._error(503, "dsprep review is stopping", api)
        except Exception:  # a bug: the page gets a line, the terminal the traceback
            traceback.print_exc(file=sys.stderr)
            self._error(500, "internal error (see the terminal running dsprep review)", api)

    def _check(self, path: str, query: dict) -> None:
        port = self.server.port
        if self.headers.get("Host", "") not in (f"{HOST}:{port}", f"localhost:{port}"):
            raise HttpError(403, "unexpected Host header")
        if self.headers.get("Sec-Fetch-Site") == "cross-site" and path != "/":
            raise HttpError(403, "cross-site request refused")
        origin = self.headers.get("Origin")
        if origin is not None and origin not in (f"http://{HOST}:{port}", f"http://localhost:{port}"):
            raise HttpError(403, "request from another origin refused")
        token = self.headers.get("X-Dsprep-Token") or query.get("token") or ""
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.server.token.encode("ascii")):
            raise HttpError(403, "missing or wrong token: open the URL that dsprep review printed")

    def _body(self):
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            raise HttpError(415, "send JSON (Content-Type: application/json)")
        try:
            n = int(self.headers.get("Content-Length", ""))
        except ValueError as e:
            raise HttpError(411, "Content-Length required") from e
        if not 0 <= n <= MAX_BODY:
            raise HttpError(413, f"request body over {MAX_BODY >> 20} MB")
        raw = self.rfile.read(n)
        self._body_read = True
        from ..inputs import parse_json
        try:
            return parse_json(raw, "request body")
        except DsprepError as e:
            raise HttpError(400, f"not JSON dsprep accepts ({e})") from e

    # ---- routes --------------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, q: dict, body) -> None:
        review = self.server.review
        if method == "GET" and path == "/":
            page = self.server.files["index.html"].replace(b"__TOKEN__", self.server.token.encode("ascii"))
            return self._send(200, page, "text/html; charset=utf-8", extra={"Content-Security-Policy": CSP})
        m = re.fullmatch(r"/static/([a-z]+\.(?:js|css))", path)
        if method == "GET" and m and m.group(1) in STATIC:
            return self._send(200, self.server.files[m.group(1)], STATIC[m.group(1)])
        if method == "GET" and path == "/api/dataset":
            return self._json(review.summary())
        if method == "GET" and path == "/api/images":
            return self._json(review.image_list(q.get("class"), q.get("split"), q.get("problem")))
        if method == "GET" and path == "/api/gallery":
            order = q.get("order", "asc")
            if order not in ("asc", "desc") or "class" not in q:
                raise HttpError(400, "gallery needs class= and order=asc|desc")
            return self._json({"items": review.gallery(q["class"], q.get("sort", "area"), order == "desc")})
        if method == "GET" and path == "/api/colors":
            names = parse_qs(urlsplit(self.path).query, keep_blank_values=True).get("name", [])
            return self._json({n: hex_color(n) for n in names[:1000]})
        m = re.fullmatch(r"/api/images/(\d{1,9})(?:/(save|history|restore|image|thumb)|/objects/(\d{1,9})/crop)?",
                         path)
        if m is None:
            raise HttpError(404, "not found")
        i, action = _int(m.group(1)), m.group(2)
        if m.group(3) is not None:
            if method != "GET":
                raise HttpError(405, "use GET")
            return self._image(review.crop(i, _int(m.group(3)), _size(q, 128)), 86400)
        expected = "POST" if action in ("save", "restore") else "GET"
        if method != expected:
            raise HttpError(405, f"use {expected}")
        if action is None:
            return self._json(review.open(i))
        if action == "history":
            return self._json({"items": review.history(i)})
        if action == "image":
            return self._image(review.view_image(i), 3600)
        if action == "thumb":
            return self._image(review.thumbnail(i, _size(q, 256), q.get("boxes", "1") != "0"), 86400)
        if not isinstance(body, dict):
            raise HttpError(400, "send a JSON object")
        if action == "save":
            return self._json(review.save(i, body.get("version"), body.get("objects")))
        return self._json(review.restore(i, body.get("version"), str(body.get("entry", ""))))

    # ---- responses -----------------------------------------------------------------------------------------------

    def _json(self, value) -> None:
        self._send(200, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
                   "application/json; charset=utf-8")

    def _image(self, data: bytes, max_age: int) -> None:
        self._send(200, data, "image/jpeg", cache=f"private, max-age={max_age}")

    def _error(self, status: int, message: str, api: bool) -> None:
        if not self._body_read:  # the rest of the request is still in the socket: do not read it as a request
            self.close_connection = True
        if api:  # (a message may quote text that is no valid Unicode, such as a lone surrogate: replaced)
            body = json.dumps({"error": message, "conflict": status == 409}, ensure_ascii=False).encode("utf-8",
                                                                                                        "replace")
            self._send(status, body, "application/json; charset=utf-8")
        else:
            self._send(status, (message + "\n").encode("utf-8", "replace"), "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, ctype: str, cache: str = "no-store", extra: Optional[dict] = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        try:
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client went away (it may not wait for a refusal): nothing to tell


def _size(q: dict, default: int) -> int:
    text = q.get("size", str(default))
    if not text.isdigit():
        raise HttpError(400, "size must be a number")
    return int(text)
