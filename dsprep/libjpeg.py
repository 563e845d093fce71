"""libjpeg's warnings, which OpenCV's Python API hides: seen by :mod:`dsprep.images` while it decodes a JPEG.

libjpeg decodes a damaged file without failing: when the entropy-coded data of a scan ends early (a file cut short
and closed with an end-of-image marker, a download that wrote the marker) it says "Corrupt JPEG data: premature end
of data segment" and fills the rest of the image with gray; for a bad Huffman code or a missing restart marker it
says so and fills too.  The only trace is that line, which libjpeg's standard error manager (the one OpenCV uses)
writes to the process's standard error, file descriptor 2.  :func:`decode_capturing` points descriptor 2 at a
temporary file while OpenCV decodes, reads what libjpeg wrote and puts descriptor 2 back; anything written there that
is not one of libjpeg's messages is passed on to the real standard error.

libjpeg prints the first warning of each image only (and counts the others), so a file whose first warning is a
benign one hides any later one.  Decodes in threads of one process take turns through a lock while descriptor 2 is
redirected (worker processes, dsprep's default, each have their own).

:func:`classify` sorts the messages: *corrupt* ones (pixels were made up: an :class:`~dsprep.core.ImageError`, as
for a truncated file) and *benign* ones (extraneous bytes before a marker, an unknown JFIF revision: the pixels are
all there; reported as a problem, not an error).
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
from typing import Callable, List, Tuple, TypeVar

T = TypeVar("T")

# libjpeg's message catalogue (jerror.h), as far as a decoder warns: the lines it can write while decoding
_LIBJPEG_LINE = re.compile(r"^(Corrupt JPEG data: .*|Premature end of JPEG file|Warning: unknown JFIF revision .*|"
                           r"Invalid SOS parameters for sequential JPEG|Inconsistent progression sequence .*|"
                           r"Warning: thumbnail image size does not match data length .*|"
                           r"Unsupported marker type .*|Bogus .*)$")
_BENIGN = re.compile(r"extraneous bytes before marker|^Warning: |^Invalid SOS parameters for sequential JPEG")

_LOCK = threading.Lock()
_SINK = None  # the temporary file descriptor 2 points at while decoding (one per process, reused)


def _sink() -> int:
    global _SINK
    if _SINK is None:
        _SINK = tempfile.TemporaryFile()
    return _SINK.fileno()


def _after_fork() -> None:
    """A forked child gets its own file (a shared one would share its offset with the parent) and a free lock."""
    global _SINK, _LOCK
    _SINK, _LOCK = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def decode_capturing(fn: Callable[[], T]) -> Tuple[T, List[str]]:
    """``(fn(), libjpeg's lines)``: ``fn`` run with file descriptor 2 captured; lines that are not libjpeg's go on
    to the real standard error."""
    with _LOCK:
        sink = _sink()
        os.lseek(sink, 0, os.SEEK_SET)
        os.ftruncate(sink, 0)
        saved = os.dup(2)
        try:  # (an interrupt anywhere in here still finds descriptor 2 put back for its one line)
            os.dup2(sink, 2)
            result = fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        n = os.lseek(sink, 0, os.SEEK_END)
        text = os.pread(sink, n, 0).decode("utf-8", "replace") if n else ""
    if not text:
        return result, []
    mine, others = [], []
    for line in text.splitlines():
        (mine if _LIBJPEG_LINE.match(line.strip()) else others).append(line)
    if others:
        os.write(2, ("\n".join(others) + "\n").encode("utf-8"))
    return result, [m.strip() for m in mine]


def classify(lines: List[str]) -> Tuple[List[str], List[str]]:
    """``(corrupt, benign)``: libjpeg's lines sorted into those that mean made-up pixels and those that do not."""
    corrupt = [m for m in lines if not _BENIGN.search(m)]
    benign = [m for m in lines if _BENIGN.search(m)]
    return corrupt, benign


def explain(message: str) -> str:
    """A libjpeg message with what it means for the pixels."""
    if "premature end of data segment" in message or message == "Premature end of JPEG file":
        return f"corrupt JPEG: the image data is cut short (libjpeg: {message}; the rest would be filled with gray)"
    return f"corrupt JPEG (libjpeg: {message}; the damaged part would be filled in)"
