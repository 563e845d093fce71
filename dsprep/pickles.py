"""Pickle caches opened safely: only what dsprep writes (numpy arrays, dtypes, numpy scalars in plain Python
containers and scalars) is ever unpickled.  A pickle naming any other class or function (``os.system``,
``builtins.eval`` ...) is refused before any of it runs.
"""
from __future__ import annotations

import pickle
import threading
from typing import Dict, Tuple

import numpy as np

from .core import DatasetError


class _Refused(pickle.UnpicklingError):
    pass


# numpy's dtype flags that make an array hold (or be read as) Python object pointers: NPY_ITEM_REFCOUNT,
# NPY_LIST_PICKLE, NPY_ITEM_IS_POINTER.  A dtype that carries any of them, itself or in a field or subarray, is
# refused before any array is made with it.
_POINTER_FLAGS = 0x01 | 0x02 | 0x04


def _check_dtype(dt: object, depth: int = 0) -> np.dtype:
    """``dt`` as a dtype that holds no Python object pointers, in itself, its fields or its subarray (to any
    depth); anything else raises :class:`_Refused`.  Strings and bytes are read as numpy dtype specifications."""
    if isinstance(dt, (str, bytes)):
        dt = np.dtype(dt.decode("ascii") if isinstance(dt, bytes) else dt)
    if not isinstance(dt, np.dtype):
        raise _Refused(f"gives a dtype as {type(dt).__name__}")
    if depth > 32:
        raise _Refused("holds a dtype nested more than 32 levels deep")
    if dt.kind == "O" or dt.hasobject or dt.flags & _POINTER_FLAGS:
        raise _Refused("holds an object dtype (Python object pointers)")
    if dt.subdtype is not None:
        _check_dtype(dt.subdtype[0], depth + 1)
    for field in (dt.fields or {}).values():
        _check_dtype(field[0], depth + 1)
    return dt


def _dtype(*args):
    """``numpy.dtype`` as a pickle may call it: refused for an object dtype before it exists."""
    return _check_dtype(np.dtype(*args))


# The dtypes the load under way has put to use (in an array, a scalar, or inside another dtype), by id: numpy lets
# ``__setstate__`` change a flexible dtype's item size, so a state set on a dtype after an array was made with it
# would make that array reach past its buffer.  Such a state is refused.
_LOAD = threading.local()


def _use(dt: object) -> np.dtype:
    """``dt`` checked (:func:`_check_dtype`) and marked as used, with every dtype inside it."""
    dt = _check_dtype(dt)
    used = getattr(_LOAD, "used", None)
    if used is not None:
        stack = [dt]
        while stack:
            d = stack.pop()
            if id(d) not in used:
                used[id(d)] = d  # (kept alive, so no id is reused during the load)
                if d.subdtype is not None:
                    stack.append(d.subdtype[0])
                stack.extend(f[0] for f in (d.fields or {}).values())
    return dt


if int(np.__version__.split(".")[0]) >= 2:
    from numpy._core import multiarray as _multiarray, numeric as _numeric
else:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric


def _ndarray(shape, dtype=float, *args, **kwargs):
    """``numpy.ndarray`` as a pickle may call it (and name it as the type ``_reconstruct`` makes)."""
    return np.ndarray(shape, _use(np.dtype(dtype)), *args, **kwargs)


def _reconstruct(subtype, shape, dtype):
    if subtype is not _ndarray:
        raise _Refused(f"makes an array of type {getattr(subtype, '__name__', type(subtype).__name__)}")
    return _multiarray._reconstruct(np.ndarray, shape, _use(dtype))


def _frombuffer(buf, dtype, shape, order):
    return _numeric._frombuffer(buf, _use(dtype), shape, order)


def _scalar(dtype, *args):
    return _multiarray.scalar(_use(dtype), *args)


def _numpy_pickle_globals() -> Dict[Tuple[str, str], object]:
    """The only globals a dsprep pickle cache names, mapped to this numpy's own objects.

    Measured with numpy 2.4 and protocol 5 (what dsprep writes): contiguous arrays of plain dtypes (numbers, bool,
    fixed-width strings) name ``numpy.dtype`` and ``numpy._core.numeric._frombuffer``; non-contiguous
    ones (and protocols 3-4) name ``numpy._core.multiarray._reconstruct`` and ``numpy.ndarray``;
    numpy scalars ``numpy._core.multiarray.scalar``.  numpy 1.x writes the same functions under ``numpy.core``:
    both spellings are accepted, so a cache loads under either numpy.  Protocol 3 spells sets as calls of
    ``builtins.set``/``frozenset`` (and complex numbers as ``builtins.complex``): pure value constructors, accepted.
    Nothing else is: not ``_codecs.encode`` (protocol 2 only), not numpy's ``StringDType`` helper (dsprep never
    writes one).  The numpy names resolve to guarded versions that refuse object dtypes (dsprep never writes an
    object array: a pickle that holds one could make numpy read bytes of the file as object pointers).
    """
    functions = {("multiarray", "_reconstruct"): _reconstruct, ("multiarray", "scalar"): _scalar,
                 ("numeric", "_frombuffer"): _frombuffer}
    allowed: Dict[Tuple[str, str], object] = {("numpy", "ndarray"): _ndarray, ("numpy", "dtype"): _dtype,
                                              ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
                                              ("builtins", "complex"): complex}
    for package in ("numpy._core", "numpy.core"):
        for (module, name), obj in functions.items():
            allowed[(f"{package}.{module}", name)] = obj
    return allowed


_PICKLE_GLOBALS = _numpy_pickle_globals()


class _CacheUnpickler(pickle._Unpickler):  # the Python unpickler: its BUILD step can be checked
    """Resolves only the numpy globals above: any other class or function a pickle names (``os.system``,
    ``builtins.eval``, ...) stops the load before it can be called.  Every dtype, whether made by a call or
    changed by a saved state (``__setstate__``), is checked to hold no Python object pointers before any array
    is made from it; arrays are made only as plain ``numpy.ndarray``; no other object's state may be set."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str):
        obj = _PICKLE_GLOBALS.get((module, name))
        if obj is None:
            raise _Refused(f"names {module}.{name}")
        return obj

    def load_build(self):
        state = self.stack[-1]
        inst = self.stack[-2]
        if isinstance(inst, np.dtype):
            if id(inst) in _LOAD.used:  # (a dtype is used once its state is set: never set twice)
                raise _Refused("sets the state of a dtype already in use (its item size could change under an "
                               "array)")
            if not (isinstance(state, tuple) and len(state) >= 8 and isinstance(state[7], int)):
                raise _Refused("holds a dtype state that is not what numpy writes")
            if state[7] & _POINTER_FLAGS:
                raise _Refused("holds an object dtype (Python object pointers)")
        elif type(inst) is np.ndarray:
            if not (isinstance(state, tuple) and len(state) in (4, 5)):
                raise _Refused("holds an array state that is not what numpy writes")
            _use(state[-3])
        else:
            raise _Refused(f"sets the state of a {type(inst).__name__}")
        pickle._Unpickler.load_build(self)
        if isinstance(inst, np.dtype):
            _use(inst)

    dispatch[pickle.BUILD[0]] = load_build

    def load(self):
        _LOAD.used = {}
        try:
            return super().load()
        finally:
            _LOAD.used = None


def read_pickle(path) -> object:
    """Load a pickle that may hold only numpy arrays, dtypes and numpy scalars in plain Python containers and
    scalars (what dsprep writes).  Anything else is refused with a :class:`DatasetError` naming the file and the
    refused global, before any of it runs."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            return _CacheUnpickler(f).load()
    except _Refused as e:
        raise DatasetError(f"{path}: refused to load: the pickle {e}, and a dsprep cache holds only numpy "
                           f"arrays and plain Python values (this file was not written by dsprep, or was altered; "
                           f"nothing in it was run)") from e
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from e
    except Exception as e:  # noqa: BLE001 - any malformed pickle: truncated, garbage, wrong arguments
        raise DatasetError(f"{path}: not a readable pickle cache ({type(e).__name__}: {e})") from e
