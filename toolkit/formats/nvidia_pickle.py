"""Reading NVIDIA's network pickles (stylegan2-ada-pytorch, stylegan3) without running their code.

Their snapshots are plain `pickle` files whose networks are `torch_utils.persistence` objects:
each is rebuilt by `_reconstruct_persistent_obj(meta)`, where `meta` holds the full Python source
of the module that defined it, the class name and the object's `__dict__` (parameters, buffers,
sub-modules, init kwargs). NVIDIA's loader `exec`s that source. This module never does: its
unpickler resolves only the globals in `_ALLOWED` (each mapped to a function of ours or to a
constructor of plain data) and turns every persistent object into a `PersistentObject` record of
plain values and tensors. Any other global (`os.system`, `builtins.eval`, a class from the
embedded code, ...) is refused before unpickling starts, with the full list of what was found.

Bounds, checked before anything is materialised: the file size, the number of pickle opcodes,
and each embedded tensor storage's declared size against the bytes that carry it.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_write_bytes
from .core import CheckpointError, max_weights_bytes

MAX_OPCODES = 50_000_000          # a 1024-px StyleGAN2 snapshot (G, D, G_ema) has well under 1 M
SOURCE_PLACEHOLDER = "<source code removed: never executed by neural-collage-toolkit>"


@dataclass
class PersistentObject:
    """One `torch_utils.persistence` object, as data: what NVIDIA's loader would have built."""
    class_name: str
    version: int
    init_args: tuple
    init_kwargs: dict
    parameters: dict[str, torch.Tensor | None]
    buffers: dict[str, torch.Tensor | None]
    modules: dict[str, Any]               # name → PersistentObject (or None)
    attrs: dict[str, Any] = field(default_factory=dict)   # the other plain attributes (ints, floats, str)

    def __setstate__(self, state):        # a BUILD opcode aimed at the record itself
        raise pickle.UnpicklingError("a persistent object with extra state")

    def child(self, name: str) -> "PersistentObject":
        m = self.modules.get(name)
        if not isinstance(m, PersistentObject):
            raise KeyError(name)
        return m

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and buffers of this object and its children, keyed like `nn.Module.state_dict`."""
        out = {f"{prefix}{k}": v for k, v in {**self.parameters, **self.buffers}.items() if v is not None}
        for name, m in self.modules.items():
            if isinstance(m, PersistentObject):
                out.update(m.state_dict(f"{prefix}{name}."))
        return out


# -- the replacements for the globals a snapshot names ----------------------------------------------
def _plain(value: Any) -> Any:
    """numpy scalars inside attributes → Python numbers (so later code sees plain data only)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _persistent(meta: Any) -> PersistentObject:
    if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
        raise pickle.UnpicklingError("a persistent object without a state dict")
    if meta.get("type") != "class":
        raise pickle.UnpicklingError(f"persistent object of type {meta.get('type')!r} (only 'class' is known)")
    state = dict(meta["state"])
    params = dict(state.pop("_parameters", None) or {})
    buffers = dict(state.pop("_buffers", None) or {})
    modules = dict(state.pop("_modules", None) or {})
    for name, t in {**params, **buffers}.items():
        if t is not None and not isinstance(t, torch.Tensor):
            raise pickle.UnpicklingError(f"parameter or buffer {name!r} is a {type(t).__name__}, not a tensor")
    for name, m in modules.items():
        if m is not None and not isinstance(m, PersistentObject):
            raise pickle.UnpicklingError(f"sub-module {name!r} is a {type(m).__name__}, not a persistent object")
    init_args = tuple(state.pop("_init_args", ()) or ())
    init_kwargs = dict(state.pop("_init_kwargs", {}) or {})
    attrs = {k: _plain(v) for k, v in state.items() if not k.startswith("_")}
    return PersistentObject(str(meta.get("class_name")), int(meta.get("version", -1)), init_args, init_kwargs,
                            params, buffers, modules, attrs)


def _check_legacy_storage(b: bytes) -> None:
    """A storage pickled by `torch.save(..., _use_new_zipfile_serialization=False)`: five pickles,
    then per storage an 8-byte element count and the raw bytes. The count must fit in what is
    left, so a few bytes cannot make torch allocate gigabytes."""
    f = io.BytesIO(b)
    keys = 0
    for i in range(5):
        for op, arg, _ in pickletools.genops(f):
            if i == 4 and op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                keys += 1
    if keys != 1:
        raise pickle.UnpicklingError(f"an embedded storage record holds {keys} storages (expected 1)")
    head = f.read(8)
    if len(head) != 8:
        raise pickle.UnpicklingError("an embedded storage record is truncated")
    (numel,) = struct.unpack("<q", head)
    left = len(b) - f.tell()
    if numel < 0 or numel > left:
        raise pickle.UnpicklingError(f"an embedded storage declares {numel} elements but carries {left} bytes")


def _storage_from_bytes(b: Any):
    if not isinstance(b, (bytes, bytearray)):
        raise pickle.UnpicklingError("a storage record that is not bytes")
    _check_legacy_storage(bytes(b))
    try:
        return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - becomes one clear error below
        raise pickle.UnpicklingError(f"an embedded storage could not be read with weights_only=True ({e})") from e


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise pickle.UnpicklingError(f"a tensor whose storage is a {type(storage).__name__}")
    if not all(isinstance(v, int) for v in (offset, *size, *stride)):
        raise pickle.UnpicklingError("a tensor with non-integer sizes or strides")
    # set_() checks the view against the storage: nothing is allocated here.
    return torch._utils._rebuild_tensor_v2(storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())


def _parameter(data, requires_grad=False, hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError(f"a parameter whose data is a {type(data).__name__}")
    return data                         # a plain tensor: no Parameter, no hooks


class _EasyDict(dict):
    """Stands in for `dnnlib.EasyDict` (a dict subclass) without importing it."""

    def __setstate__(self, state):
        if state:
            raise pickle.UnpicklingError("an EasyDict with instance state")


_NUMERIC_KINDS = set("biufc")


class _DType:
    """Stands in for `numpy.dtype(code, align, copy)`; only numeric dtypes become real ones."""

    def __init__(self, code, align=False, copy=True):
        self.code, self.order = str(code), "="

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]

    def numpy(self) -> np.dtype:
        dt = np.dtype(self.code)
        if dt.kind not in _NUMERIC_KINDS:
            raise pickle.UnpicklingError(f"numpy dtype {self.code!r} is not numeric")
        return dt.newbyteorder(self.order) if self.order in "<>" else dt


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, _DType) or not isinstance(data, bytes):
        raise pickle.UnpicklingError("a numpy scalar that is not a numeric value")
    dt = dtype.numpy()
    if len(data) != dt.itemsize:
        raise pickle.UnpicklingError("a numpy scalar with the wrong byte count")
    return np.frombuffer(data, dtype=dt)[0]


class _NDArrayToken:
    """The `numpy.ndarray` class as passed to `_reconstruct`; never instantiated by itself."""


class _NDArray:
    """Stands in for `numpy.core.multiarray._reconstruct(ndarray, shape, dtype)` + `__setstate__`."""

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("a numpy array with an unknown state layout")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DType) or not isinstance(raw, bytes):
            raise pickle.UnpicklingError("a numpy array of objects (only numeric arrays are read)")
        dt = dtype.numpy()
        n = int(np.prod(shape)) if len(shape) else 1
        if n * dt.itemsize != len(raw):
            raise pickle.UnpicklingError("a numpy array whose bytes do not match its shape")
        self.array = np.frombuffer(raw, dtype=dt).reshape(shape, order="F" if fortran else "C")


def _np_reconstruct(cls, shape, dtype_code):
    if cls is not _NDArrayToken:
        raise pickle.UnpicklingError("numpy _reconstruct of something other than an ndarray")
    return _NDArray()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent,
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("numpy", "dtype"): _DType,
    ("numpy", "ndarray"): _NDArrayToken,
    ("numpy.core.multiarray", "scalar"): _np_scalar,
    ("numpy._core.multiarray", "scalar"): _np_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent ids are not used by these snapshots")


def scan_globals(data: bytes, source: str) -> collections.Counter:
    """Every global the pickle names (module.name → count), found by reading opcodes only,
    and the opcode bound. Tracks the memo so `STACK_GLOBAL` names built from memoised strings
    are resolved too."""
    found: collections.Counter = collections.Counter()
    memo: dict[int, Any] = {}
    stack: list[Any] = []            # only the last few pushed values matter here
    n = 0
    try:
        for op, arg, _ in pickletools.genops(data):
            n += 1
            if n > MAX_OPCODES:
                raise CheckpointError(f"{source}: more than {MAX_OPCODES:,} pickle opcodes; refusing to read it")
            name = op.name
            if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                stack.append(arg)
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1] if stack else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = stack[-1] if stack else None
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(memo.get(int(arg)))
            elif name in ("GLOBAL", "INST"):
                found[str(arg).replace(" ", ".", 1)] += 1
                stack.append(None)
            elif name == "STACK_GLOBAL":
                mod, nm = (stack[-2], stack[-1]) if len(stack) >= 2 else (None, None)
                found[f"{mod}.{nm}" if isinstance(mod, str) and isinstance(nm, str) else "<unresolved>"] += 1
                stack.append(None)
            elif name != "FRAME":
                stack.append(None)
            del stack[:-4]
    except (ValueError, IndexError) as e:     # pickletools' complaint about a malformed stream
        raise CheckpointError(f"{source}: not a readable pickle ({e}); is the file complete?") from e
    return found


def _allowed_name(g: str) -> bool:
    return any(g == f"{m}.{n}" for m, n in _ALLOWED)


def load_snapshot(path: str | os.PathLike) -> dict:
    """An NVIDIA network pickle → a dict of plain values, with `PersistentObject` for each network."""
    p = Path(path)
    size = p.stat().st_size
    limit = max_weights_bytes()
    if size > limit:
        raise CheckpointError(f"{p}: {size:,} bytes is more than the {limit:,}-byte limit for a weights "
                              "file (raise it with NCT_MAX_WEIGHTS_BYTES if the file is trusted to be that big)")
    data = p.read_bytes()
    if not data.startswith(b"\x80"):
        raise CheckpointError(f"{p}: not a binary pickle (NVIDIA snapshots are written with pickle protocol ≥ 2)")
    found = scan_globals(data, str(p))
    bad = sorted(g for g in found if not _allowed_name(g))
    if bad:
        raise CheckpointError(
            f"{p}: refused: the pickle names {len(bad)} global(s) that are not plain data: {', '.join(bad[:20])}"
            + (" …" if len(bad) > 20 else "") + ". Only NVIDIA persistent networks (tensors, their init kwargs "
            "and metadata) are read; nothing from the file is imported or executed.")
    try:
        obj = _Unpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, struct.error) as e:
        raise CheckpointError(f"{p}: cannot read this NVIDIA snapshot safely ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{p}: expected a snapshot dict (G, D, G_ema, ...), got {type(obj).__name__}")
    return obj


def strip_source(path_in: str | os.PathLike, path_out: str | os.PathLike) -> None:
    """Copy a snapshot with every embedded module source replaced by `SOURCE_PLACEHOLDER`
    (for test fixtures that must not carry NVIDIA's code). Works on opcodes only: every string
    longer than 2000 characters that looks like Python source is replaced, and the FRAME opcodes
    (optional length hints that the edit would invalidate) are dropped."""
    data = Path(path_in).read_bytes()
    out, last = bytearray(), 0
    ph = SOURCE_PLACEHOLDER.encode()
    for op, arg, pos in pickletools.genops(data):
        if op.name == "FRAME":
            out += data[last:pos]
            last = pos + 9
        elif op.name in ("BINUNICODE", "BINUNICODE8") and isinstance(arg, str) and len(arg) > 2000 \
                and ("import " in arg or "def " in arg):
            width = 4 if op.name == "BINUNICODE" else 8
            end = pos + 1 + width + len(arg.encode("utf-8", "surrogatepass"))
            out += data[last:pos] + op.code.encode("latin-1") + len(ph).to_bytes(width, "little") + ph
            last = end
    out += data[last:]
    atomic_write_bytes(path_out, bytes(out))
