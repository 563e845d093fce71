"""Line numbers of entries in a JSON document, for error messages (``gt.json:1234: annotations[56] ...``).

``json.loads`` gives no positions, so when a reader finds a bad entry it asks here, once for all the bad entries
of a list: the document is walked again at C speed (``raw_decode`` skips whole values) only on that error path.
"""
from __future__ import annotations

import json
import re
from typing import Dict, Iterable, Iterator, Optional, Tuple, Union

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _skip_ws(text: str, i: int) -> int:
    m = _WS.match(text, i)
    assert m is not None  # the pattern matches the empty string
    return m.end()


def _members(text: str) -> Iterator[Tuple[str, int]]:
    """``(name, offset)`` of each member of the top-level object of a JSON text, the offset being where its value
    starts; stops quietly at a text that is not such an object (``ValueError``/``IndexError`` reach the caller)."""
    i = _skip_ws(text, 0)
    if text[i] == "\ufeff":
        i = _skip_ws(text, i + 1)
    if text[i] != "{":
        return
    i = _skip_ws(text, i + 1)
    while text[i] != "}":
        name, i = _DECODER.raw_decode(text, i)
        i = _skip_ws(text, i)
        if text[i] != ":":
            return
        i = _skip_ws(text, i + 1)
        yield name, i
        _, i = _DECODER.raw_decode(text, i)
        i = _skip_ws(text, i)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)


def element_lines(doc: Union[str, bytes], key: str, indices: Iterable[int]) -> Dict[int, int]:
    """``{index: line}`` (1-based) of the entries ``indices`` of the list under the top-level ``key``; entries not
    found (a malformed document, a shorter list) are left out."""
    wanted = set(int(i) for i in indices)
    if not wanted:
        return {}
    text = doc.decode("utf-8-sig", "replace") if isinstance(doc, bytes) else doc
    out: Dict[int, int] = {}
    try:
        for name, i in _members(text):
            if name != key or text[i] != "[":
                continue
            i = _skip_ws(text, i + 1)
            n, line, last = 0, 1, 0
            top = max(wanted)
            while text[i] != "]" and n <= top:
                if n in wanted:
                    line += text.count("\n", last, i)
                    last = i
                    out[n] = line
                _, i = _DECODER.raw_decode(text, i)
                i = _skip_ws(text, i)
                if text[i] == ",":
                    i = _skip_ws(text, i + 1)
                n += 1
            return out
    except (ValueError, IndexError):
        pass
    return out


def element_line(doc: Union[str, bytes], key: str, index: int) -> int:
    """The line of one entry (1 when it cannot be found: still a valid ``file:line``)."""
    return element_lines(doc, key, [index]).get(int(index), 1)


def value_span(doc: str, key: str) -> Optional[Tuple[int, int]]:
    """``(start, end)`` character offsets of the value of the top-level ``key`` in a JSON object text, or None."""
    try:
        for name, start in _members(doc):
            if name == key:
                return start, _DECODER.raw_decode(doc, start)[1]
    except (ValueError, IndexError):
        pass
    return None
