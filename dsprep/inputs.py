"""The one way annotation files are read: bytes, UTF-8 text and JSON, each failure a :class:`ParseError` naming the
file (and the line, for JSON).  The mirror of :mod:`dsprep.outputs`; images are read by :mod:`dsprep.images`."""
from __future__ import annotations

import json
import os
from typing import Literal, Optional, Union, overload

from .core import ParseError

PathLike = Union[str, os.PathLike]


@overload
def read_bytes(path: PathLike, missing_ok: Literal[False] = ...) -> bytes: ...
@overload
def read_bytes(path: PathLike, missing_ok: bool) -> Optional[bytes]: ...
def read_bytes(path: PathLike, missing_ok: bool = False) -> Optional[bytes]:
    """The file's bytes; with ``missing_ok`` a missing file gives None."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError as e:
        if missing_ok:
            return None
        raise ParseError(f"{path}: cannot read ({e.strerror or e})") from e
    except OSError as e:
        raise ParseError(f"{path}: cannot read ({e.strerror or e})") from e


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text (a byte-order mark dropped)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ParseError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from e


@overload
def read_text(path: PathLike, missing_ok: Literal[False] = ...) -> str: ...
@overload
def read_text(path: PathLike, missing_ok: bool) -> Optional[str]: ...
def read_text(path: PathLike, missing_ok: bool = False) -> Optional[str]:
    """The file's UTF-8 text; with ``missing_ok`` a missing file gives None."""
    data = read_bytes(path, missing_ok)
    return None if data is None else decode_text(data, str(path))


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; the standard parser gives the same documents, slower
    _orjson = None

# No annotation, results file or request body dsprep reads nests anywhere near this deep (COCO: 5 levels); a file
# that does was made to exhaust the stack of whatever walks it later (a writer, a validator).
MAX_JSON_DEPTH = 100


def parse_json(data: Union[bytes, str], source: str, max_depth: int = MAX_JSON_DEPTH):
    """A JSON document; malformed JSON names its line.  Arrays and objects nested more than ``max_depth`` deep
    are refused (before anything walks them), and so are lone UTF-16 surrogates (``"\\ud800"``: no UTF-8
    file can hold them, so no output could either)."""
    if _orjson is not None:
        try:  # orjson: ~3x the standard parser's speed; it refuses what the standard one accepts beyond JSON
            doc = _orjson.loads(data)  # (NaN, lone surrogates, a BOM), which then goes the standard way below
        except (_orjson.JSONDecodeError, TypeError):
            pass
        else:
            depth = json_depth(data.encode("utf-8") if isinstance(data, str) else bytes(data))
            if depth > max_depth:
                raise ParseError(f"{source}: JSON nested {depth} levels deep (dsprep reads at most {max_depth} levels)")
            return doc  # (no lone surrogate: orjson refuses them)
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as e:
        raise ParseError(f"{source}:{e.lineno}: malformed JSON ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise ParseError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except RecursionError as e:
        raise ParseError(f"{source}: JSON nested too deeply (dsprep reads at most {max_depth} levels)") from e
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    depth = json_depth(raw)
    if depth > max_depth:
        raise ParseError(f"{source}: JSON nested {depth} levels deep (dsprep reads at most {max_depth} levels)")
    lone = lone_surrogate(raw)
    if lone is not None:
        raise ParseError(f"{source}: {lone}")
    return doc


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in ``data``, a valid JSON document, without walking what it parses to:
    escapes dropped, every byte but ``"[]{}`` dropped (both in C), then brackets outside strings counted with
    numpy: a fraction of the parse's time (10-25 % measured on a 30 MB COCO file, on a busy machine)."""
    import re

    import numpy as np
    if b"\\" in data:  # escapes hold no structure: drop each (an escaped quote or backslash with it)
        data = re.sub(rb"\\.", b"", data, flags=re.S)
    marks = np.frombuffer(data.translate(None, _NOT_STRUCTURE), np.uint8)  # only " [ ] { } are left
    if len(marks) == 0:
        return 0
    outside = np.cumsum(marks == 0x22) % 2 == 0
    step = ((marks == 0x5B) | (marks == 0x7B)).astype(np.int32) - ((marks == 0x5D) | (marks == 0x7D))
    return int(np.cumsum(step * outside).max(initial=0))


_NOT_STRUCTURE = bytes(i for i in range(256) if i not in b'"[]{}')
_SURROGATE = None


def lone_surrogate(data: bytes) -> Optional[str]:
    """A description of the first ``\\uD800``-``\\uDFFF`` escape in ``data`` that is not half of a pair (text no
    UTF-8 file can hold), or None."""
    global _SURROGATE
    if b"\\u" not in data:
        return None
    import re
    if _SURROGATE is None:
        _SURROGATE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u([dD][89abAB][0-9a-fA-F]{2})(\\u[dD][c-fC-F][0-9a-fA-F]{2})?|"
                                rb"(?<!\\)((?:\\\\)*)\\u([dD][c-fC-F][0-9a-fA-F]{2})")
    for m in _SURROGATE.finditer(data):
        if m.group(2) and not m.group(3):
            return f"a lone UTF-16 surrogate \\u{m.group(2).decode()} in a string (not text: no file could hold it)"
        if m.group(5):
            return f"a lone UTF-16 surrogate \\u{m.group(5).decode()} in a string (not text: no file could hold it)"
    return None


def json_object_with_keys(path: PathLike, keys) -> bool:
    """Whether the file holds a JSON object naming every one of ``keys`` (``b'"images"'`` ...): a scan of the mapped
    file for the quoted keys, no parse, so detecting a format stays cheap on a 400 MB file."""
    import mmap
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
            if not head.startswith(b"{"):
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                return all(m.find(k) >= 0 for k in keys)
    except (OSError, ValueError):
        return False
