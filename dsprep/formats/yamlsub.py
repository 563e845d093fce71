"""The small YAML subset that data.yaml files use (Ultralytics, Roboflow): read and write, so dsprep needs no YAML
library.  Block mappings and sequences, flow collections, plain and quoted scalars, block scalars, comments; every
scalar stays a string (a class called ``no`` stays ``"no"``).  Errors name the file and line.
"""
from __future__ import annotations

import json
import re
from typing import Any, List, NoReturn, Optional, Tuple

from ..core import ParseError

MAX_DEPTH = 64  # collections inside collections: data.yaml uses 2 or 3


class _Yaml:
    """Block mappings and sequences by indentation, flow ``[...]``/``{...}`` (also over several lines), plain, single-
    and double-quoted scalars, ``|``/``>`` block scalars, comments.  Scalars stay strings (``None`` for empty,
    ``~`` and ``null``): what a key means decides its type, so a class called ``no`` or ``1e3`` keeps its name."""

    def __init__(self, text: str, source: str):
        self.lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        self.source = source
        self.i = 0
        self.depth = 0  # collections open (block and flow): a hostile file nests until the stack runs out

    def enter(self, lineno: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(lineno, f"nested more than {MAX_DEPTH} levels deep (a data.yaml needs 3)")

    def fail(self, lineno: int, what: str) -> NoReturn:
        raise ParseError(f"{self.source}:{lineno}: {what}")

    def peek(self) -> Optional[Tuple[int, int, str]]:
        """``(lineno, indent, content)`` of the next line with content (comments stripped), or None."""
        while self.i < len(self.lines):
            line = self.lines[self.i]
            content = _strip_comment(line).rstrip()
            body = content.strip()
            if not body or body in ("---", "...") or body.startswith("%"):
                self.i += 1
                continue
            indent = len(content) - len(content.lstrip(" "))
            if content[indent:indent + 1] == "\t":
                self.fail(self.i + 1, "a tab in the indentation (YAML indents with spaces)")
            return self.i + 1, indent, body
        return None

    def document(self) -> dict:
        first = self.peek()
        if first is None:
            return {}
        value = self.block(first[1])
        rest = self.peek()
        if rest is not None:
            self.fail(rest[0], f"unexpected '{rest[2][:40]}' (indentation?)")
        if not isinstance(value, dict):
            self.fail(first[0], "expected 'key: value' lines at the top level")
        return value

    def block(self, indent: int):
        nxt = self.peek()
        assert nxt is not None  # callers peek a line first
        lineno, ind, body = nxt
        self.enter(lineno)
        try:
            if body == "-" or body.startswith("- "):
                return self.sequence(ind)
            return self.mapping(ind)
        finally:
            self.depth -= 1

    def mapping(self, indent: int) -> dict:
        out: dict = {}
        while True:
            nxt = self.peek()
            if nxt is None or nxt[1] < indent:
                return out
            lineno, ind, body = nxt
            if ind > indent:
                self.fail(lineno, f"unexpected indentation before '{body[:40]}'")
            if body == "-" or body.startswith("- "):
                return out
            key, rest = _split_key(body)
            if key is None:
                self.fail(lineno, f"expected 'key: value', got '{body[:40]}'")
            assert rest is not None  # _split_key gives both or neither
            key = _scalar(key, lineno, self)
            self.i += 1
            out[key] = self.value(rest, indent, lineno)

    def sequence(self, indent: int) -> list:
        out: list = []
        while True:
            nxt = self.peek()
            if nxt is None or nxt[1] != indent or not (nxt[2] == "-" or nxt[2].startswith("- ")):
                if nxt is not None and nxt[1] > indent:
                    self.fail(nxt[0], f"unexpected indentation before '{nxt[2][:40]}'")
                return out
            lineno, ind, body = nxt
            item = body[1:].strip()
            key, rest = _split_key(item) if item and item[0] not in "[{'\"" else (None, None)
            if key is not None:  # "- key: value" starts a mapping inside the sequence
                self.lines[self.i] = " " * (ind + 2) + item
                self.enter(lineno)
                try:
                    out.append(self.mapping(ind + 2))
                finally:
                    self.depth -= 1
                continue
            self.i += 1
            out.append(self.value(item, indent, lineno))

    def value(self, rest: str, indent: int, lineno: int):
        if rest == "":
            nxt = self.peek()
            if nxt is not None and (nxt[1] > indent or (nxt[1] == indent and (nxt[2] == "-" or
                                                                              nxt[2].startswith("- ")))):
                return self.block(nxt[1])
            return None
        if rest[0] in "|>":
            if not re.fullmatch(r"[|>][+-]?[0-9]?|[|>][0-9][+-]", rest):
                self.fail(lineno, f"cannot parse block scalar header '{rest}'")
            return self.block_scalar(indent, rest[0] == "|")
        if rest[0] in "&*!":
            self.fail(lineno, f"YAML anchors, aliases and tags are not supported ('{rest[:20]}')")
        if rest[0] in "[{":
            text = rest
            while _depth(text) > 0:
                if self.i >= len(self.lines):
                    self.fail(lineno, "unclosed flow collection")
                text += " " + _strip_comment(self.lines[self.i]).strip()
                self.i += 1
            value, end = _flow(text, 0, lineno, self)
            if text[end:].strip():
                self.fail(lineno, f"unexpected '{text[end:].strip()[:20]}' after a flow collection")
            return value
        return _scalar(rest, lineno, self)

    def block_scalar(self, indent: int, literal: bool) -> str:
        parts = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.strip() and len(line) - len(line.lstrip(" ")) <= indent:
                break
            parts.append(line.strip())
            self.i += 1
        return ("\n" if literal else " ").join(parts).strip() + "\n"


def _strip_comment(line: str) -> str:
    """The line without its comment (a ``#`` at the start or after a space, outside quotes)."""
    quote = None
    for k, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"" and (k == 0 or line[k - 1] in " [{,:-"):
            quote = c
        elif c == "#" and (k == 0 or line[k - 1] in " \t"):
            return line[:k]
    return line


def _split_key(body: str) -> Tuple[Optional[str], Optional[str]]:
    """``key: rest`` -> ``(key, rest)``; ``(None, None)`` when the line is no mapping entry."""
    if body[0] in "'\"":
        end = _quoted_end(body, 0)
        if end is None or not body[end:].startswith(":"):
            return None, None
        rest = body[end + 1:]
        if rest and not rest.startswith(" "):
            return None, None
        return body[:end], rest.strip()
    m = re.search(r":(\s|$)", body)
    if m is None or body[0] in "[{":
        return None, None
    return body[:m.start()].strip(), body[m.end():].strip()


def _quoted_end(text: str, start: int) -> Optional[int]:
    q = text[start]
    k = start + 1
    while k < len(text):
        if q == "'" and text[k] == "'":
            if text[k + 1:k + 2] == "'":
                k += 2
                continue
            return k + 1
        if q == '"':
            if text[k] == "\\":
                k += 2
                continue
            if text[k] == '"':
                return k + 1
        k += 1
    return None


def _scalar(text: str, lineno: int, y: _Yaml):
    text = text.strip()
    if not text or text in ("~", "null", "Null", "NULL"):
        return None
    if text[0] == "'":
        if _quoted_end(text, 0) != len(text):
            y.fail(lineno, f"cannot parse quoted string {text[:40]}")
        return text[1:-1].replace("''", "'")
    if text[0] == '"':
        if _quoted_end(text, 0) != len(text):
            y.fail(lineno, f"cannot parse quoted string {text[:40]}")
        try:
            return json.loads(text)
        except ValueError as e:
            raise ParseError(f"{y.source}:{lineno}: cannot parse quoted string {text[:40]}") from e
    if text[0] in "&*!":
        y.fail(lineno, f"YAML anchors, aliases and tags are not supported ('{text[:20]}')")
    return text


def _depth(text: str) -> int:
    depth, quote, k = 0, None, 0
    while k < len(text):
        c = text[k]
        if quote:
            if c == "\\" and quote == '"':
                k += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        k += 1
    return depth


def _flow(text: str, k: int, lineno: int, y: _Yaml):
    """Parse a flow collection or scalar at ``text[k:]``; returns ``(value, end)``."""
    while k < len(text) and text[k] == " ":
        k += 1
    if k < len(text) and text[k] in "[{":
        y.enter(lineno)
        try:
            return _flow_collection(text, k, lineno, y)
        finally:
            y.depth -= 1
    return _flow_scalar(text, k, lineno, y)


def _flow_collection(text: str, k: int, lineno: int, y: _Yaml):
    """The flow collection at ``text[k]`` (``[`` or ``{``); returns ``(value, end)``."""
    closing = "]" if text[k] == "[" else "}"
    is_map = text[k] == "{"
    out: Any = {} if is_map else []  # a dict when is_map, else a list
    k += 1
    while True:
        while k < len(text) and text[k] in " ,":
            k += 1
        if k >= len(text):
            y.fail(lineno, "unclosed flow collection")
        if text[k] == closing:
            return out, k + 1
        if is_map:
            key, k = _flow_scalar(text, k, lineno, y, stop=":")
            if k >= len(text) or text[k] != ":":
                y.fail(lineno, f"expected ':' after '{key}' in a flow mapping")
            value, k = _flow(text, k + 1, lineno, y)
            out[key] = value
        else:
            value, k = _flow(text, k, lineno, y)
            out.append(value)


def _flow_scalar(text: str, k: int, lineno: int, y: _Yaml, stop: str = ""):
    while k < len(text) and text[k] == " ":
        k += 1
    if k < len(text) and text[k] in "'\"":
        end = _quoted_end(text, k)
        if end is None:
            y.fail(lineno, f"unclosed quote in '{text[k:k + 40]}'")
        return _scalar(text[k:end], lineno, y), end
    end = k
    while end < len(text) and text[end] not in ",]}" + stop:
        end += 1
    return _scalar(text[k:end], lineno, y), end


def parse_yaml(text: str, source: str = "<yaml>") -> dict:
    """The top-level mapping of a data.yaml (the subset described in :class:`_Yaml`); scalars are strings."""
    return _Yaml(text, source).document()


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_ .\-/()]*")
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def yaml_string(s: str) -> str:
    """``s`` as a YAML scalar every YAML reader (PyYAML's 1.1 rules included) reads back as that string."""
    if _PLAIN.fullmatch(s) and s == s.strip() and s.lower() not in _RESERVED and ": " not in s and " #" not in s:
        return s
    return json.dumps(s, ensure_ascii=False)


def yaml_names(doc: dict, source: str) -> Optional[List[str]]:
    """The class names of a data.yaml in index order: ``names`` as a list or as ``{index: name}`` (indices must be
    ``0..n-1``, as Ultralytics requires), else ``nc`` placeholder names, else None."""
    names = doc.get("names")
    if names is None:
        nc = doc.get("nc")
        if nc is None:
            return None
        try:
            return [str(i) for i in range(int(str(nc)))]
        except ValueError as e:
            raise ParseError(f"{source}: nc must be a whole number, got '{nc}'") from e
    if isinstance(names, list):
        out = [str(n) if n is not None else "" for n in names]
    elif isinstance(names, dict):
        try:
            keyed = {int(str(k)): ("" if v is None else str(v)) for k, v in names.items()}
        except ValueError as e:
            raise ParseError(f"{source}: names keys must be class indices 0, 1, ...") from e
        if sorted(keyed) != list(range(len(keyed))):
            raise ParseError(f"{source}: names has indices {sorted(keyed)}; a {len(keyed)}-class data set needs "
                             f"0..{len(keyed) - 1}")
        out = [keyed[i] for i in range(len(keyed))]
    else:
        raise ParseError(f"{source}: names must be a list or an index: name mapping")
    empty = [i for i, n in enumerate(out) if not n.strip()]
    if empty:
        raise ParseError(f"{source}: class {empty[0]} has no name")
    dup = sorted({n for n in out if out.count(n) > 1})
    if dup:
        raise ParseError(f"{source}: class name{'s' if len(dup) > 1 else ''} {', '.join(dup)} listed more than once")
    nc = doc.get("nc")
    if nc is not None and str(nc).strip().isdigit() and int(str(nc)) != len(out):
        raise ParseError(f"{source}: nc is {nc} but names lists {len(out)} classes")
    return out
