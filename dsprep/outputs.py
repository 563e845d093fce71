"""The one output-writing path: atomic file writes, whole-file temporaries, output-folder safety."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Union

from .core import OutputError

PathLike = Union[str, os.PathLike]


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path``, then rename: never a half-written file at ``path``."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        _unlink(tmp)
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
    except BaseException:
        _unlink(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def prepare_output_dir(path: PathLike, overwrite: bool = False, allow_existing: bool = False) -> Path:
    """Create ``path``; refuse a non-empty one unless ``overwrite`` (files inside may then be replaced).

    ``allow_existing`` accepts a non-empty folder without being told (for commands that only add files).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: output exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not (overwrite or allow_existing):
        raise OutputError(f"{path}: output folder is not empty (use --overwrite to write into it)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{path}: cannot create output folder ({e.strerror or e})") from e
    return path


def safe_name(name: str, fallback: str = "_") -> str:
    """A single path component made from untrusted text (a class name, an id from an XML file).

    Separators, NULs and control characters become ``_``; ``.``/``..`` and leading dots cannot escape the folder.
    """
    out = "".join("_" if (c in "/\\:\0" or ord(c) < 32) else c for c in str(name)).strip()
    out = out.lstrip(".")
    return out or fallback


def inside(root: PathLike, path: PathLike) -> bool:
    root_r = os.path.realpath(str(root))
    path_r = os.path.realpath(str(path))
    return os.path.commonpath([root_r, path_r]) == root_r


class TemporaryPath:
    """Context manager for a whole output file: yields a temp path beside ``target``; renames on success.

    On any exception (including Ctrl-C) the temporary file is removed and ``target`` is left as it was.
    """

    def __init__(self, target: PathLike, overwrite: bool = False):
        self.target = Path(target)
        if self.target.exists() and not overwrite:
            raise OutputError(f"{self.target}: already exists (use --overwrite to replace it)")
        if not self.target.parent.exists():
            raise OutputError(f"{self.target.parent}: output folder does not exist")

    def __enter__(self) -> Path:
        # created on entry, so a temporary file always has an __exit__ that removes or renames it
        fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".partial", dir=self.target.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            os.replace(self.tmp, self.target)
        else:
            _unlink(self.tmp)
        return False


def copy_file(src: PathLike, dst: PathLike) -> None:
    """Place ``src`` at ``dst``: a hard link when possible (instant, no space), else an atomic copy."""
    dst = Path(dst)
    tmp = _tmp_name(dst)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        _unlink(tmp)
        raise OutputError(f"{dst}: cannot write ({e.strerror or e})") from e


class TemporaryDir:
    """Context manager for a whole output folder: yields an empty temporary folder beside ``target``; puts its
    content at ``target`` when the block succeeds.

    * a missing ``target``: the temporary folder is renamed to it (one atomic step);
    * an empty folder (``.`` included): the finished entries are moved into it, and the folder itself is kept (its
      permissions, and a shell standing in it, stay valid);
    * a non-empty folder: refused unless ``overwrite``, and then replaced only once the new folder is complete (the
      old one is moved aside, the new one renamed in, the old one removed).

    On any exception (including Ctrl-C) the temporary folder is removed and ``target`` is left as it was.  The checks
    run when the object is made, so a caller can refuse an existing output before doing the work.
    """

    def __init__(self, target: PathLike, overwrite: bool = False):
        self.target = Path(target)  # as the user wrote it, for messages
        self.path = Path(os.path.abspath(target))  # for the work: '.' has a parent and a name
        self.overwrite = overwrite
        self._check()

    def _check(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{self.target}: output exists and is not a folder")
        if self.path.is_dir() and any(self.path.iterdir()) and not self.overwrite:
            raise OutputError(f"{self.target}: output folder is not empty (use --overwrite to replace it)")

    def __enter__(self) -> Path:
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".partial", dir=parent))
        except OSError as e:
            raise OutputError(f"{self.target}: cannot create output folder ({e.strerror or e})") from e
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        try:
            self._check()  # again: something may have appeared at target while the work ran
            self._place()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return False

    def _place(self) -> None:
        target = self.path
        old = None
        try:
            if target.is_dir() and not any(target.iterdir()):
                for entry in sorted(self.tmp.iterdir()):
                    os.replace(entry, target / entry.name)
                os.rmdir(self.tmp)
                return
            if target.is_dir():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
                os.replace(target, old / target.name)
            os.replace(self.tmp, target)
        except OSError as e:
            if old is not None and not target.exists():
                os.replace(old / target.name, target)  # put the previous output back
            raise OutputError(f"{self.target}: cannot move the finished output into place ({e.strerror or e})") \
                from e
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
