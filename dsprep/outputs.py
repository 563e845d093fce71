"""The one output-writing path: atomic file writes, whole-file temporaries, output folders.

* every file is written under a temporary name beside its target (``.<name>.<pid>.partial``) and renamed when
  complete, so no half-written file ever stands at an output path;
* :class:`OutputDir` guards an output folder for the length of a run: it refuses a folder that is, contains or lies
  inside an input (``--overwrite`` notwithstanding), refuses a non-empty folder unless told, and when the run fails
  or is interrupted it removes what the run created (the whole folder when the run made it), so rerunning the same
  command works;
* files are created with the usual permissions (``0666`` less the umask).
"""
from __future__ import annotations

import os
import secrets
import tempfile
import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Union

from . import signals
from .core import OutputError, UsageError

PathLike = Union[str, os.PathLike]
TEMP_SUFFIX = ".partial"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


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


def check_not_input(out: PathLike, inputs: Iterable[PathLike], option: str = "--out") -> None:
    """Refuse an output that is, contains or lies inside an input folder (or is an input file): exit code 2."""
    out_r = os.path.realpath(str(out))
    for inp in inputs:
        if inp is None:
            continue
        in_r = os.path.realpath(str(inp))
        if out_r == in_r or _within(out_r, in_r) or _within(in_r, out_r):
            raise UsageError(f"{option} {out}: the output would be written {'into' if out_r != in_r else 'over'} the "
                             f"input {inp} (choose a folder outside it)")


def _within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root and path != root


class OutputDir:
    """An output folder for the length of a run (a context manager yielding its :class:`Path`).

    On entry: refuses a folder overlapping ``inputs``, a non-empty folder unless ``overwrite`` (or
    ``allow_existing``), creates it.  On an exception (a failed input with ``--on-error fail``, Ctrl-C, SIGTERM):
    removes what this run created -- the folder itself if the run made it, otherwise every file that was not there
    before -- plus any temporary file left by a killed worker, then re-raises.  ``keep_on_error`` keeps partial
    output (``synth``, which resumes with ``--append``); temporary files are removed all the same.
    """

    def __init__(self, path: PathLike, overwrite: bool = False, inputs: Iterable[PathLike] = (),
                 allow_existing: bool = False, option: str = "--out", keep_on_error: bool = False):
        self.path = Path(path)
        check_not_input(self.path, inputs, option)
        self.overwrite, self.allow_existing, self.keep = overwrite, allow_existing, keep_on_error
        self.created = not self.path.exists()
        self.before: Optional[Set[str]] = None
        self.before_dirs: Set[str] = set()

    def __enter__(self) -> Path:
        prepare_output_dir(self.path, self.overwrite, self.allow_existing)
        if not self.created and not self.keep:
            self.before = set(_walk_files(self.path))
            self.before_dirs = {d for d, _, _ in os.walk(self.path)}
        return self.path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            signals.settle()  # complete: a late Ctrl-C must not remove it, nor add a line after the summary
            return False
        self.cleanup()
        return False

    def cleanup(self) -> None:
        remove_temporaries(self.path)
        if self.keep:
            return
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for f in set(_walk_files(self.path)) - (self.before or set()):
            _unlink(Path(f))
        _remove_empty_dirs(self.path, keep=self.before_dirs)


def _walk_files(root: Path):
    for dirpath, _, files in os.walk(root):
        for name in files:
            yield os.path.join(dirpath, name)


def _remove_empty_dirs(root: Path, keep: Set[str] = frozenset()) -> None:
    for dirpath, _, _ in sorted(os.walk(root), key=lambda t: -len(t[0])):
        if dirpath != str(root) and dirpath not in keep:
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


def remove_temporaries(root: PathLike) -> int:
    """Remove the temporary files (``.<name>...partial``) a killed writer may have left under ``root``."""
    n = 0
    if not Path(root).is_dir():
        return 0
    for f in _walk_files(Path(root)):
        base = os.path.basename(f)
        if base.startswith(".") and base.endswith(TEMP_SUFFIX):
            _unlink(Path(f))
            n += 1
    return n


def partial_files(targets: Sequence[Path]) -> List[Path]:
    """The temporaries :class:`TemporaryPath` makes for ``targets`` (``.<name>.<random>.partial``
    beside each), that exist now."""
    found = []
    for folder, names in _by_folder(targets).items():
        try:
            with os.scandir(folder) as it:
                entries = [e.name for e in it]
        except OSError:
            continue
        for entry in entries:
            for name in names:
                token = entry[len(name) + 2:-len(".partial")] if entry.startswith(f".{name}.") \
                    and entry.endswith(".partial") else ""
                if token and "." not in token:
                    found.append(folder / entry)
    return sorted(found)


def _by_folder(targets: Sequence[Path]) -> Dict[Path, List[str]]:
    out: Dict[Path, List[str]] = {}
    for t in targets:
        t = Path(t)
        out.setdefault(t.parent, []).append(t.name)
    return out


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


LINKS = ("hard", "symlink", "copy")


def copy_file(src: PathLike, dst: PathLike, link: str = "hard") -> None:
    """Place ``src`` at ``dst``: ``link="hard"``: a hard link when possible (instant, no space), else an atomic copy;
    ``"symlink"``: a symbolic link to ``src``'s absolute path; ``"copy"``: an atomic copy.  A symbolic link at
    ``src`` is followed to its target (linking the link itself would leave a relative link dangling at ``dst``)."""
    dst = Path(dst)
    tmp = _tmp_name(dst)
    if link not in LINKS:
        raise ValueError(f"link must be one of {', '.join(LINKS)}, not {link!r}")
    src = os.path.realpath(src)
    try:
        if link == "symlink":
            os.symlink(os.path.abspath(src), tmp)
        elif link == "copy":
            shutil.copyfile(src, tmp)
        else:
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
