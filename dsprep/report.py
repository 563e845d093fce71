"""Progress bars and the one-line summaries every long command ends with."""
from __future__ import annotations

import re
import sys
import time
from collections import Counter
from typing import Iterable, List, Optional, Tuple


def progress(iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: Optional[str] = None,
             quiet: bool = False, unit: str = "img"):
    """A tqdm bar on stderr; silent with ``--quiet`` or when stderr is not a terminal (then tqdm is not even
    imported: a stand-in that counts and draws nothing)."""
    if quiet or not sys.stderr.isatty():
        return _Silent(iterable, total)
    from tqdm import tqdm  # imported when a bar is drawn: keeps the command line's start-up small
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)


class _Silent:
    """What a disabled tqdm bar does: iterate, count, and nothing else (any other attribute can be set)."""

    def __init__(self, iterable=None, total=None):
        self.iterable, self.total, self.n = iterable, total, 0

    def __iter__(self):
        return iter(self.iterable if self.iterable is not None else ())

    def __len__(self):
        return len(self.iterable) if self.iterable is not None else (self.total or 0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int = 1) -> None:
        self.n += n

    def __getattr__(self, name):  # close, refresh, set_description, set_postfix, clear, write ...
        return lambda *args, **kwargs: None


class Summary:
    """Counts what a command did; :meth:`line` renders ``"<verb>: 13 images, 2 skipped (...) -> out/ in 0.4 s"``."""

    def __init__(self, verb: str):
        self.verb = verb
        self.t0 = time.perf_counter()
        self.counts: Counter = Counter()
        self.skipped: List[Tuple[str, str]] = []

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def skip(self, file: str, reason: str) -> None:
        self.skipped.append((file, reason))

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def line(self, out: Optional[str] = None, order: Optional[List[str]] = None) -> str:
        """``verb: <counts>, N skipped (<reasons>) -> out in S s``.  ``inputs`` (when counted) is shown as
        ``N of M inputs skipped``: every input is either done or listed as skipped."""
        order = [k for k in (order or []) if k != "inputs"]
        keys = order + [k for k in self.counts if k not in order and k != "inputs" and self.counts[k]]
        parts = [f"{self.counts[k]} {k}" for k in keys if k in self.counts or k in order]
        files = [r for f, r in self.skipped if part_kind(f) is None]
        if files:
            of = f" of {self.counts['inputs']} inputs" if "inputs" in self.counts else ""
            parts.append(f"{len(files)}{of} skipped ({_kinds(files)})")
        for kind in ("label line", "object"):
            mine = [r for f, r in self.skipped if part_kind(f) == kind]
            if mine:
                parts.append(f"{len(mine)} {kind}{'s' if len(mine) > 1 else ''} skipped ({_kinds(mine)})")
        text = f"{self.verb}: " + ", ".join(parts)
        if out:
            text += f" -> {out}"
        return text + f" in {self.seconds:.1f} s"

    def details(self) -> List[str]:
        """One line per skipped input (the reason usually starts with the file already)."""
        return [f"  skipped: {r}" if r.startswith(f.split("#")[0]) else f"  skipped {f}: {r}" for f, r in self.skipped]

    def as_dict(self, out: Optional[str] = None) -> dict:
        """The summary as a JSON-ready dict: ``command``, ``counts``, ``skipped`` (every one, with its reason),
        ``output``, ``seconds``."""
        return {"command": self.verb, "counts": {k: v for k, v in self.counts.items()},
                "skipped": [{"input": f, "reason": r} for f, r in self.skipped], "output": out,
                "seconds": round(self.seconds, 3)}


def part_kind(where: str):
    """What part of an input a skip names: ``file.txt:12`` a label line, ``file.xml#object3`` an object; ``None``
    for a whole input file."""
    if "#object" in where:
        return "object"
    _, sep, tail = where.rpartition(":")
    return "label line" if sep and tail.isdigit() else None


def _kinds(reasons) -> str:
    return ", ".join(f"{n} {k}" for k, n in Counter(_reason_kind(r) for r in reasons).items())


def _reason_kind(reason: str) -> str:
    """``"path: object 3 (cat): what is wrong (detail)"`` -> ``"what is wrong"``: the last clause, without its
    parenthesised detail, for counting reasons by kind."""
    text = reason
    while True:  # parenthesised details, innermost first
        stripped = re.sub(r"\s*\([^()]*\)", "", text)
        if stripped == text:
            break
        text = stripped
    return text.rsplit(": ", 1)[-1][:60]
