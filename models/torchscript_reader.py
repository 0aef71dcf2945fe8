"""The tensors of a TorchScript archive, read without running any of the archive's code.

    tensors = read_torchscript_tensors("ViT-B-32.pt")   # OrderedDict: what torch.jit.load(...).state_dict() gives

torch.jit.load compiles the archive's code/ and runs it: a module class's own `__setstate__` runs while
the archive loads, so a crafted checkpoint runs code of its author's choosing (it can write files, for
instance) before anything looks at its weights. This reader never compiles or runs that code. The archive
is a zip of <root>/data.pkl (the module tree, pickled), <root>/data/N (the raw bytes of storage N) and
<root>/code/**.py (the classes' TorchScript source, which is only read as text here, for the lists of
parameter and buffer names each module class declares). data.pkl is read by a pickle machine that
allows only these globals, and refuses any other by name:

    torch._utils._rebuild_tensor_v2       a tensor view of a storage (bounds checked against the storage)
    torch.<Type>Storage                   the dtype of a storage (float, half, bfloat16, integer, bool)
    collections.OrderedDict               the empty hook dictionaries that tensors carry
    torch.jit._pickle.restore_type_tag, build_intlist, build_doublelist, build_boollist, build_tensorlist
                                          TorchScript's typed lists (rebuilt here as plain lists)
    __torch__.<module>.<Class>            a module class that code/ declares (as `class C(Module):`), without
                                          a __setstate__ of its own: an inert placeholder takes its attributes

A module class that defines `__setstate__` is refused: torch.jit.load would run that code to set its
attributes, so the pickled state is not what the archive means (and reading it would hide that the file
runs code). The caller may then choose to trust the file and use torch.jit.load (export_clip.py's
--trust-code). Pickle's BUILD is allowed on module placeholders only.

Every refusal is a TorchScriptReadError whose message names the file and the reason.
"""
from __future__ import annotations

import ast
import io
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch

__all__ = ["TorchScriptReadError", "read_torchscript_tensors", "ALLOWED_GLOBALS"]

STORAGE_DTYPES: Dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
_TYPED_LISTS = ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist", "build_genericlist")
ALLOWED_GLOBALS = (["torch._utils._rebuild_tensor_v2", "collections.OrderedDict",
                    "torch.jit._pickle.restore_type_tag"]
                   + [f"torch.{n}" for n in STORAGE_DTYPES] + [f"torch.jit._pickle.{n}" for n in _TYPED_LISTS])
MAX_PICKLE_BYTES = 256 * 1024 * 1024  # data.pkl holds the module tree, not the weights: a few hundred KB
MAX_CODE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 256                      # module nesting


class TorchScriptReadError(ValueError):
    """An archive this reader refuses (the message names the file and why)."""


class _Storage:
    """The dtype named by a torch.<Type>Storage global (never instantiated)."""

    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, STORAGE_DTYPES[name]


class _ModulePlaceholder:
    """An instance of one of the archive's module classes: holds its pickled attributes, runs nothing."""
    qualified_name = ""
    state: Any = None  # set by BUILD (pickle's NEWOBJ makes the object without calling __init__)


class _ClassDecl:
    def __init__(self, base: str) -> None:
        self.base = base
        self.parameters: Optional[List[str]] = None
        self.buffers: Optional[List[str]] = None
        self.methods: List[str] = []


_CLASS_RE = re.compile(r"^class ([A-Za-z_][A-Za-z0-9_]*)\(([A-Za-z_][A-Za-z0-9_.]*)\):\s*$")
_LIST_RE = re.compile(r"^  (__parameters__|__buffers__) = (\[.*\])\s*$")
_DEF_RE = re.compile(r"^  def ([A-Za-z_][A-Za-z0-9_]*)\(")


def _parse_code(path: str, module: str, text: str, out: Dict[str, _ClassDecl]) -> None:
    """The class declarations of one code/ file (as text: the source is not compiled or run)."""
    current: Optional[_ClassDecl] = None
    for line in text.splitlines():
        m = _CLASS_RE.match(line)
        if m:
            current = _ClassDecl(m.group(2))
            out[f"{module}.{m.group(1)}"] = current
            continue
        if current is None:
            continue
        m = _LIST_RE.match(line)
        if m:
            try:
                names = ast.literal_eval(m.group(2))  # a literal only: evaluates no code
            except (ValueError, SyntaxError) as e:
                raise TorchScriptReadError(f"{path}: code/ declares {m.group(1)} as {m.group(2)[:80]!r}, not a "
                                           f"list of names ({e})") from e
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TorchScriptReadError(f"{path}: code/ declares {m.group(1)} as {m.group(2)[:80]!r}, not a "
                                           "list of names")
            setattr(current, "parameters" if m.group(1) == "__parameters__" else "buffers", names)
            continue
        m = _DEF_RE.match(line)
        if m:
            current.methods.append(m.group(1))


class _Reader(pickle._Unpickler):  # the Python implementation: its BUILD can be restricted (below)
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, path: str, archive: zipfile.ZipFile, root: str, classes: Dict[str, _ClassDecl],
                 data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.path, self.archive, self.root, self.classes = path, archive, root, classes
        self.storages: Dict[str, torch.Tensor] = {}
        self.placeholders: Dict[str, type] = {}

    def refuse(self, what: str) -> None:
        raise TorchScriptReadError(f"{self.path}: {what}")

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full == "torch._utils._rebuild_tensor_v2":
            return self.rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _Storage(name)
        if full == "collections.OrderedDict":
            return OrderedDict
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return lambda value, type_str: value
        if module == "torch.jit._pickle" and name in _TYPED_LISTS:
            return lambda items: list(items)
        if module == "__torch__" or module.startswith("__torch__."):
            return self.module_class(full)
        self.refuse(f"data.pkl refers to the global {full}, which reading weights does not need (only "
                    f"{', '.join(ALLOWED_GLOBALS[:3])}, torch.<Type>Storage, TorchScript's list tags and the "
                    "archive's own module classes are allowed): refused, as it could run code")

    def module_class(self, full: str) -> type:
        if full in self.placeholders:
            return self.placeholders[full]
        decl = self.classes.get(full)
        if decl is None:
            self.refuse(f"data.pkl uses the class {full}, which code/ does not declare")
        if decl.base != "Module":
            self.refuse(f"data.pkl uses {full}, a TorchScript class ({decl.base}), not a module: its state is "
                        "made by its code; pass --trust-code to load it with torch.jit.load (which runs that code)")
        if "__setstate__" in decl.methods:
            self.refuse(f"the module class {full} defines __setstate__, code that torch.jit.load runs while "
                        "loading the file (it could do anything, e.g. write files) and that decides its weights; "
                        "refused. If you trust the file's author, pass --trust-code to load it with torch.jit.load")
        if decl.parameters is None:
            self.refuse(f"code/ declares the module class {full} without __parameters__")
        if decl.buffers is None:  # archives of older torch versions may not list them: none then
            decl.buffers = []
        cls = type("_Placeholder", (_ModulePlaceholder,), {"qualified_name": full})
        self.placeholders[full] = cls
        return cls

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage" or not isinstance(pid[1], _Storage)
                or not isinstance(pid[2], str) or not isinstance(pid[3], str) or type(pid[4]) is not int
                or pid[4] < 0):
            self.refuse(f"data.pkl has a persistent id {str(pid)[:120]}, not ('storage', torch.<Type>Storage, key, "
                        "location, size)")
        _, storage, key, _location, numel = pid
        if key in self.storages:
            t = self.storages[key]
            if t.dtype != storage.dtype or t.numel() != numel:
                self.refuse(f"storage {key!r} is used as {storage.name} of {numel} elements and as {t.dtype} of "
                            f"{t.numel()}")
            return t
        name = f"{self.root}data/{key}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            self.refuse(f"data.pkl refers to storage {key!r}, but the archive has no {name}")
        size = numel * torch.empty((), dtype=storage.dtype).element_size()
        if info.file_size != size:
            self.refuse(f"{name} holds {info.file_size} bytes, but data.pkl says {numel} elements of "
                        f"{storage.name} ({size} bytes)")
        raw = bytearray(size)  # filled in chunks: no second full-size copy of a large storage
        view, done = memoryview(raw), 0
        try:
            with self.archive.open(info) as f:
                while done < size:
                    chunk = f.read(min(size - done, 1 << 24))
                    if not chunk:
                        break
                    view[done:done + len(chunk)] = chunk
                    done += len(chunk)
                extra = f.read(1)
            view.release()
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as e:
            self.refuse(f"cannot read {name}: {e}")
        if done != size or extra:
            self.refuse(f"{name} holds {'more' if extra else done} bytes, expected {size}")
        t = torch.frombuffer(raw, dtype=storage.dtype) if size else torch.empty(0, dtype=storage.dtype)
        self.storages[key] = t
        return t

    def rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       hooks: Any = None, *rest: Any) -> torch.Tensor:
        if not isinstance(storage, torch.Tensor) or storage.dim() != 1:
            self.refuse("a tensor in data.pkl is not built on a storage of the archive")
        ints = (lambda v: isinstance(v, (tuple, list)) and all(type(x) is int and x >= 0 for x in v))
        if type(offset) is not int or offset < 0 or not ints(size) or not ints(stride) or len(size) != len(stride):
            self.refuse(f"a tensor in data.pkl has offset {offset!r}, size {str(size)[:80]}, stride "
                        f"{str(stride)[:80]}: not non-negative integers of one rank")
        if (hooks is not None and not (isinstance(hooks, dict) and not hooks)) or rest:
            self.refuse("a tensor in data.pkl carries backward hooks or extra metadata")
        numel = 1
        for s in size:
            numel *= s
        if numel > storage.numel():  # stride-0 expansions: a checkpoint's tensors never outnumber their storage
            self.refuse(f"a tensor in data.pkl of size {tuple(size)} has more elements than its storage "
                        f"({storage.numel()})")
        if numel > 0:
            last = offset + sum((s - 1) * st for s, st in zip(size, stride))
            if last >= storage.numel():
                self.refuse(f"a tensor in data.pkl (offset {offset}, size {tuple(size)}, stride {tuple(stride)}) "
                            f"reaches element {last} of a storage of {storage.numel()}")
        elif offset > storage.numel():
            self.refuse(f"an empty tensor in data.pkl has offset {offset} past its storage ({storage.numel()})")
        return storage.as_strided(tuple(size), tuple(stride), offset)

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, _ModulePlaceholder) or inst.state is not None:
            self.refuse(f"data.pkl sets the state of a {type(inst).__name__} (only module objects have one)")
        inst.state = state
    dispatch[pickle.BUILD[0]] = load_build

    def load(self) -> Any:  # noqa: A003 - pickle's name
        try:
            return super().load()
        except TorchScriptReadError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                RecursionError, MemoryError, OverflowError, RuntimeError, UnicodeDecodeError) as e:
            self.refuse(f"data.pkl is not a readable module pickle: {type(e).__name__}: {str(e)[:200]}")


def _archive_root(path: str, names: List[str]) -> str:
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise TorchScriptReadError(f"{path}: not a TorchScript archive (its entries are not all in one folder)")
    return roots.pop() + "/"


def _state_dict(path: str, root: Any, classes: Dict[str, _ClassDecl]) -> "OrderedDict[str, torch.Tensor]":
    """What torch.jit.load(path).state_dict() gives: per module, its parameters then its buffers (in
    attribute order, None skipped), then its submodules', depth first."""
    if not isinstance(root, _ModulePlaceholder):
        raise TorchScriptReadError(f"{path}: data.pkl holds a {type(root).__name__}, not a module")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    seen = set()

    def walk(mod: _ModulePlaceholder, prefix: str, depth: int) -> None:
        where = prefix.rstrip(".") or "the root module"
        if depth > MAX_DEPTH:
            raise TorchScriptReadError(f"{path}: modules nested deeper than {MAX_DEPTH} ({where})")
        if id(mod) in seen:
            raise TorchScriptReadError(f"{path}: the module object at {where} appears twice in the tree")
        seen.add(id(mod))
        decl = classes[mod.qualified_name]
        if not isinstance(mod.state, dict) or not all(isinstance(k, str) for k in mod.state):
            raise TorchScriptReadError(f"{path}: {where} ({mod.qualified_name}) has no attribute dictionary")
        for kind, names in (("parameter", decl.parameters), ("buffer", decl.buffers)):
            for name, value in mod.state.items():
                if name not in names or value is None:
                    continue
                if not isinstance(value, torch.Tensor):
                    raise TorchScriptReadError(f"{path}: {kind} {prefix}{name} is a {type(value).__name__}, "
                                               "not a tensor")
                out[prefix + name] = value
        for kind, names in (("parameter", decl.parameters), ("buffer", decl.buffers)):
            for name in names:
                if name not in mod.state:
                    raise TorchScriptReadError(f"{path}: {mod.qualified_name} declares the {kind} {name}, but "
                                               f"{where} has no such attribute")
        for name, value in mod.state.items():
            if isinstance(value, _ModulePlaceholder):
                walk(value, f"{prefix}{name}.", depth + 1)

    walk(root, "", 0)
    return out


def read_torchscript_tensors(path: str) -> "OrderedDict[str, torch.Tensor]":
    """The parameters and buffers of a TorchScript archive (names as in torch.jit.load(path).state_dict()),
    read without compiling or running its code; TorchScriptReadError when the archive needs its code (a
    __setstate__) or is malformed."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise TorchScriptReadError(f"{path}: not a zip archive: {e}") from e
    with archive:
        infos = archive.infolist()
        root = _archive_root(path, [i.filename for i in infos])
        classes: Dict[str, _ClassDecl] = {}
        code_bytes = 0
        for info in infos:
            rel = info.filename[len(root):]
            if not (rel.startswith("code/") and rel.endswith(".py")):
                continue
            code_bytes += info.file_size
            if code_bytes > MAX_CODE_BYTES:
                raise TorchScriptReadError(f"{path}: code/ holds over {MAX_CODE_BYTES} bytes")
            try:
                text = archive.read(info).decode("utf-8")
            except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as e:
                raise TorchScriptReadError(f"{path}: cannot read {info.filename}: {e}") from e
            _parse_code(path, rel[len("code/"):-len(".py")].replace("/", "."), text, classes)
        if root + "byteorder" in archive.namelist():  # newer torch records it; storages are read little-endian
            order = archive.read(root + "byteorder")[:16]
            if order.strip() != b"little":
                raise TorchScriptReadError(f"{path}: byteorder {order!r}: only little-endian archives are read")
        try:
            pkl = archive.getinfo(root + "data.pkl")
        except KeyError:
            raise TorchScriptReadError(f"{path}: the archive has no {root}data.pkl (an archive format older than "
                                       "torch 1.4 is not read)") from None
        if pkl.file_size > MAX_PICKLE_BYTES:
            raise TorchScriptReadError(f"{path}: {pkl.filename} is {pkl.file_size} bytes (over {MAX_PICKLE_BYTES})")
        try:
            data = archive.read(pkl)
        except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as e:
            raise TorchScriptReadError(f"{path}: cannot read {pkl.filename}: {e}") from e
        tree = _Reader(path, archive, root, classes, data).load()
        return _state_dict(path, tree, classes)
