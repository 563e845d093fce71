"""Pickle caches opened safely: only what dsprep writes (numpy arrays, dtypes, numpy scalars in plain Python
containers and scalars) is ever unpickled.  A pickle naming any other class or function (``os.system``,
``builtins.eval`` ...) is refused before any of it runs.
"""
from __future__ import annotations

import pickle
from typing import Dict, Tuple

import numpy as np

from .core import DatasetError


def _numpy_pickle_globals() -> Dict[Tuple[str, str], object]:
    """The only globals a dsprep pickle cache names, mapped to this numpy's own objects.

    Measured with numpy 2.4 and protocol 5 (what dsprep writes): contiguous arrays of plain dtypes (numbers, bool,
    fixed-width strings) name ``numpy.dtype`` and ``numpy._core.numeric._frombuffer``; object arrays and
    non-contiguous ones (and protocols 3-4) name ``numpy._core.multiarray._reconstruct`` and ``numpy.ndarray``;
    numpy scalars ``numpy._core.multiarray.scalar``.  numpy 1.x writes the same functions under ``numpy.core``:
    both spellings are accepted, so a cache loads under either numpy.  Protocol 3 spells sets as calls of
    ``builtins.set``/``frozenset`` (and complex numbers as ``builtins.complex``): pure value constructors, accepted.
    Nothing else is: not ``_codecs.encode`` (protocol 2 only), not numpy's ``StringDType`` helper (dsprep never
    writes one).
    """
    if int(np.__version__.split(".")[0]) >= 2:
        from numpy._core import multiarray, numeric
    else:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric
    functions = {("multiarray", "_reconstruct"): multiarray._reconstruct,
                 ("multiarray", "scalar"): multiarray.scalar,
                 ("numeric", "_frombuffer"): numeric._frombuffer}
    allowed: Dict[Tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                              ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
                                              ("builtins", "complex"): complex}
    for package in ("numpy._core", "numpy.core"):
        for (module, name), obj in functions.items():
            allowed[(f"{package}.{module}", name)] = obj
    return allowed


_PICKLE_GLOBALS = _numpy_pickle_globals()


class _Refused(pickle.UnpicklingError):
    pass


class _CacheUnpickler(pickle.Unpickler):
    """Resolves only the numpy globals above: any other class or function a pickle names (``os.system``,
    ``builtins.eval``, ...) stops the load before it can be called."""

    def find_class(self, module: str, name: str):
        obj = _PICKLE_GLOBALS.get((module, name))
        if obj is None:
            raise _Refused(f"{module}.{name}")
        return obj


def read_pickle(path) -> object:
    """Load a pickle that may hold only numpy arrays, dtypes and numpy scalars in plain Python containers and
    scalars (what dsprep writes).  Anything else is refused with a :class:`DatasetError` naming the file and the
    refused global, before any of it runs."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            return _CacheUnpickler(f).load()
    except _Refused as e:
        raise DatasetError(f"{path}: refused to load: the pickle names {e}, and a dsprep cache holds only numpy "
                           f"arrays and plain Python values (this file was not written by dsprep, or was altered; "
                           f"nothing in it was run)") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from e
    except Exception as e:  # noqa: BLE001 - any malformed pickle: truncated, garbage, wrong arguments
        raise DatasetError(f"{path}: not a readable pickle cache ({type(e).__name__}: {e})") from e
