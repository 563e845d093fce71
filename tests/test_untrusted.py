"""Data sets from strangers: every file here is made as an attacker would make it.  dsprep must never read or copy
anything outside the data set, run or crash native code, trust bytes it has not verified, or stop with a
traceback: each is refused with one line naming the file (or read correctly), and the inputs stay unchanged."""
import hashlib
import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli as run, write_voc_tree

REPO = Path(__file__).resolve().parent.parent


def _digest(root: Path) -> dict:
    """Every file under ``root`` (or the file itself) with the SHA-256 of its bytes: inputs must stay unchanged."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _one_line_error(res, *says, code=None):
    out = res.output if hasattr(res, "output") else res.stdout + res.stderr
    rc = res.exit_code if hasattr(res, "exit_code") else res.returncode
    lines = [line for line in out.splitlines() if line.strip()]
    assert rc != 0 and (code is None or rc == code) and "Traceback" not in out, out
    assert lines and lines[-1].startswith("error: ") and all(s in lines[-1] for s in says), out
    return lines[-1]


def _dsprep(*args, cwd=None):
    """dsprep in its own process: a crash of native code shows as a signal, not as a dead test runner."""
    return subprocess.run([sys.executable, "-m", "dsprep", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)


# ---- pickles: object dtypes are refused before any array is made ------------------------------------------------------

class _Reduce:
    """Pickles as ``func(*args)`` followed by ``__setstate__(state)``: any object numpy's pickling could spell."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _pointer_dtype(kind="O8", flags=0, fields=None, names=None, subarray=None, size=-1):
    """A dtype whose saved state says what the attacker likes: by default the object kind with flags 0 (so numpy
    no longer treats its items as references it owns)."""
    return _Reduce(np.dtype, (kind, False, True), (3, "|", subarray, names, fields, size, -1, flags))


def _reconstructed(dtype, raw: bytes, shape=(1,)):
    """``_reconstruct`` + ``ndarray.__setstate__`` with raw bytes: the array's memory is the file's bytes."""
    from numpy._core import multiarray
    return _Reduce(multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, raw))


POINTER = struct.pack("<Q", 0x4141414141410)  # 8 bytes of the file read as a PyObject* by numpy
ATTACKS = {
    "object dtype with flags 0": _reconstructed(_pointer_dtype(), POINTER),
    "structured, an object field": _reconstructed(_Reduce(np.dtype, ([("x", "f4"), ("p", "O")],)), POINTER * 2),
    "nested structured, an object field": _reconstructed(
        _Reduce(np.dtype, ([("a", [("b", "i4"), ("p", "O")])],)), POINTER * 2),
    "subarray of objects": _reconstructed(_Reduce(np.dtype, (("O", (2,)),)), POINTER * 2),
    "void dtype whose state sets pointer flags": _reconstructed(_pointer_dtype("V8", flags=63, size=8), POINTER),
    "numpy scalar of an object dtype": _Reduce(np.float64(0).__reduce__()[0], (_pointer_dtype(), POINTER)),
    "object array by ndarray()": _Reduce(np.ndarray, ((2,), "O")),
}


@pytest.fixture(scope="module")
def good_pickle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pk")
    voc = write_voc_tree(tmp / "voc", {"a": (64, 48, [("cat", (5, 5, 30, 30))])})
    run("voc-to-pickle", voc, tmp / "good.pkl", "--size", "32x32")
    with open(tmp / "good.pkl", "rb") as f:
        return pickle.load(f)  # our own file


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_pickle_with_object_pointers_is_refused_before_any_array_is_built(good_pickle, tmp_path, attack):
    payload = {**good_pickle, "splits": {"all": {**good_pickle["splits"]["all"], "mode": ATTACKS[attack]}}}
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(payload, protocol=5))
    before = _digest(evil)
    for args in (["info", evil], ["visualize", "boxes", evil, "--out", tmp_path / "vis"]):
        res = _dsprep(*args)
        assert res.returncode > 0, (attack, res.returncode, res.stderr)  # negative: killed by a signal
        line = _one_line_error(res, str(evil), "refused to load")
        assert "object" in line or "state" in line, line
    assert _digest(evil) == before and not (tmp_path / "vis").exists()


def test_the_object_pointer_pickle_really_crashes_an_unguarded_load(tmp_path):
    """The file is the real attack: a plain pickle.load and one look at the array dies of a signal."""
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"images": ATTACKS["object dtype with flags 0"]}, protocol=5))
    res = subprocess.run([sys.executable, "-c", "import pickle, sys; a = pickle.load(open(sys.argv[1], 'rb'))"
                          "['images']; print(repr(a[0]))", str(evil)], capture_output=True, timeout=60)
    assert res.returncode < 0  # SIGSEGV (or SIGBUS): numpy followed the file's pointer
