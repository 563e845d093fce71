"""The one output-writing path: atomic file writes, whole-file temporaries, output-folder safety."""
from __future__ import annotations

import os
import secrets
import shutil
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
        # Created on entry, so a temporary file always has an __exit__ that removes or renames it.  Created with
        # mode 0o666 like every other output: the kernel applies the umask (and a folder's default ACL) at creation,
        # where mkstemp's fixed 0600 would make this one output unreadable to the group.
        for _ in range(100):
            tmp = self.target.with_name(f".{self.target.name}.{secrets.token_hex(6)}.partial")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            except OSError as e:
                raise OutputError(f"{self.target}: cannot create a file beside it ({e.strerror or e})") from e
            os.close(fd)
            self.tmp = tmp
            return tmp
        raise OutputError(f"{self.target}: cannot create a temporary file beside it (every name tried exists)")

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
