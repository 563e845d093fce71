"""The one way annotation files are read: bytes, UTF-8 text and JSON, each failure a :class:`ParseError` naming the
file (and the line, for JSON).  The mirror of :mod:`dsprep.outputs`; images are read by :mod:`dsprep.images`."""
from __future__ import annotations

import json
import os
from typing import Optional, Union

from .core import ParseError

PathLike = Union[str, os.PathLike]


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


def read_text(path: PathLike, missing_ok: bool = False) -> Optional[str]:
    """The file's UTF-8 text; with ``missing_ok`` a missing file gives None."""
    data = read_bytes(path, missing_ok)
    return None if data is None else decode_text(data, str(path))


def parse_json(data: bytes, source: str):
    """A JSON document; malformed JSON names its line."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as e:
        raise ParseError(f"{source}:{e.lineno}: malformed JSON ({e.msg})") from e
    except UnicodeDecodeError as e:
        raise ParseError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from e


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
