#!/usr/bin/python3
"""A TorchScript checkpoint is code: models/export_clip.py must read its tensors without running it
(models/torchscript_reader.py), or refuse it naming --trust-code (a ctest; Debian's /usr/bin/python3).

    /usr/bin/python3 tests/torchscript_safety_test.py [--source DIR] [--shared DIR] [--work DIR]

1. openai-tiny/jit_archive.pt: the reader gives exactly torch.jit.load(...).state_dict() (names, order,
   dtypes, shapes, strides, values); the export without --trust-code is byte-identical to the one with it
   (torch.jit.load, the former behaviour).
2. A malicious archive (a scripted module whose __setstate__ writes a marker file, saved with
   torch.jit.save), given as --checkpoint and as an HF folder's pytorch_model.bin: refused, the message
   names --trust-code, and the marker does not exist. With --trust-code torch.jit.load runs it and the
   marker appears (what the check would see without the reader).
3. Hand-made archives: a pickle calling os.system (or builtins.getattr, or a class code/ does not
   declare) is refused naming the global, and runs nothing; a tensor view past its storage, a storage
   file of the wrong size and BUILD on a non-module are refused; a well-formed one reads correctly.
Exit status 0 when everything passes, 1 on a failure, 77 when torch or the reference material is absent.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import types
import zipfile

try:
    import torch
except ImportError as _e:
    torch = None
    _IMPORT_ERROR = _e

HERE = os.path.dirname(os.path.abspath(__file__))
failures = []

EVIL_SOURCE = r'''
import sys, torch
from typing import Tuple
class Evil(torch.nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))
        self.path = marker
    def forward(self, x):
        return x * self.weight
    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return (self.weight, self.path, self.training)
    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        self.weight = state[0]
        self.path = state[1]
        self.training = state[2]
        torch.save(state[0], state[1])   # any file, any content: the archive's author chooses
torch.jit.save(torch.jit.script(Evil(sys.argv[2])), sys.argv[1])
'''


def check(cond: bool, what: str) -> None:
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")
    else:
        print(f"ok   {what}")


def export_cli(source: str, args):
    p = subprocess.run([sys.executable, os.path.join(source, "models", "export_clip.py")] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p.returncode, p.stdout


# ---- hand-made archives --------------------------------------------------------------------------

class _Global:
    """Pickles as GLOBAL module.name, called with args (REDUCE)."""

    def __init__(self, module: str, name: str, *args):
        self.module, self.name, self.args = module, name, args


class _Pickler(pickle._Pickler):
    """Writes the opcodes of a TorchScript data.pkl from plain Python stand-ins."""

    def persistent_id(self, obj):
        if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "storage" and isinstance(obj[1], _Global):
            return obj
        return None

    def save(self, obj, save_persistent_id=True):
        if isinstance(obj, _Global) and obj.args == ("<class>",):
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            return
        if isinstance(obj, _Global):
            self.save(_Global(obj.module, obj.name, "<class>"))
            self.save(tuple(obj.args))
            self.write(pickle.REDUCE)
            return
        if isinstance(obj, _Module):
            self.save(_Global(obj.module, obj.name, "<class>"))
            self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
            self.save(obj.state)
            self.write(pickle.BUILD)
            return
        if isinstance(obj, _Build):  # BUILD on something that is not a module
            self.save(obj.target)
            self.save(obj.state)
            self.write(pickle.BUILD)
            return
        super().save(obj, save_persistent_id)


class _Module:
    def __init__(self, module: str, name: str, state):
        self.module, self.name, self.state = module, name, state


class _Build:
    def __init__(self, target, state):
        self.target, self.state = target, state


def storage(key: str, numel: int, kind: str = "FloatStorage", location: str = "cpu"):
    return ("storage", _Global("torch", kind, "<class>"), key, location, numel)


def tensor(key: str, numel: int, offset: int, size, stride, kind: str = "FloatStorage", location: str = "cpu"):
    return _Global("torch._utils", "_rebuild_tensor_v2", storage(key, numel, kind, location), offset, tuple(size),
                   tuple(stride), False, _Global("collections", "OrderedDict"))


LIN_CODE = ('class Lin(Module):\n  __parameters__ = ["weight", "bias", ]\n  __buffers__ = []\n  weight : Tensor\n'
            '  bias : Tensor\n  training : bool\n')


def write_archive(path: str, root_obj, storages, code=LIN_CODE) -> None:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(root_obj)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("arch/data.pkl", buf.getvalue())
        z.writestr("arch/code/__torch__.py", code)
        z.writestr("arch/constants.pkl", pickle.dumps((), protocol=2))
        z.writestr("arch/version", "3\n")
        for key, raw in storages.items():
            z.writestr(f"arch/data/{key}", raw)


def hand_made(work: str, reader) -> None:
    import numpy as np
    from torchscript_reader import TorchScriptReadError
    values = np.arange(8, dtype="<f4")
    good = {"weight": tensor("0", 8, 0, (2, 3), (3, 1)), "bias": tensor("0", 8, 6, (2,), (1,)), "training": False}
    path = os.path.join(work, "good.pt")
    write_archive(path, _Module("__torch__", "Lin", good), {"0": values.tobytes()})
    try:
        sd = reader(path)
        ok = (list(sd) == ["weight", "bias"] and sd["weight"].tolist() == [[0, 1, 2], [3, 4, 5]]
              and sd["bias"].tolist() == [6, 7])
        check(ok, f"hand-made archive read: {dict((k, v.tolist()) for k, v in sd.items())}")
    except TorchScriptReadError as e:
        check(False, f"hand-made well-formed archive refused: {e}")

    # float16 on CUDA storages, as OpenAI's released archives (traced on a GPU): read on the CPU
    half = np.array([1.5, -2.0, 0.25, 8.0], dtype="<f2")
    path = os.path.join(work, "half_cuda.pt")
    write_archive(path, _Module("__torch__", "Lin", {
        "weight": tensor("0", 4, 0, (2, 2), (1, 2), "HalfStorage", "cuda:0"),
        "bias": tensor("0", 4, 2, (2,), (1,), "HalfStorage", "cuda:0"), "training": False}),
        {"0": half.tobytes()})
    try:
        sd = reader(path)
        check(sd["weight"].dtype == torch.float16 and sd["weight"].tolist() == [[1.5, 0.25], [-2.0, 8.0]]
              and sd["bias"].tolist() == [0.25, 8.0] and sd["weight"].device.type == "cpu",
              "hand-made float16 archive with cuda:0 storages (transposed view) read on the CPU")
    except TorchScriptReadError as e:
        check(False, f"hand-made float16/cuda archive refused: {e}")

    marker = os.path.join(work, "os_system_ran")
    cases = [
        ("os.system", _Global("os", "system", f"touch {marker}"), {}, ["os.system"]),
        ("builtins.getattr", _Module("__torch__", "Lin", {"weight": _Global("builtins", "getattr", 1, "x")}), {},
         ["builtins.getattr"]),
        ("undeclared class", _Module("__torch__", "Other", {"training": False}), {}, ["__torch__.Other", "declare"]),
        ("view past its storage", _Module("__torch__", "Lin", dict(good, bias=tensor("0", 8, 7, (2,), (1,)))),
         {"0": values.tobytes()}, ["reaches element 8"]),
        ("stride-0 expansion", _Module("__torch__", "Lin", dict(good, bias=tensor("0", 8, 0, (1000000,), (0,)))),
         {"0": values.tobytes()}, ["more elements than its storage"]),
        ("storage of the wrong size", _Module("__torch__", "Lin", good), {"0": values.tobytes()[:-4]},
         ["28 bytes", "32 bytes"]),
        ("missing storage", _Module("__torch__", "Lin", good), {}, ["arch/data/0"]),
        ("BUILD on a non-module", _Module("__torch__", "Lin", dict(good, training=_Build(
            _Global("collections", "OrderedDict"), {"x": 1}))), {"0": values.tobytes()}, ["state of a OrderedDict"]),
    ]
    for label, obj, storages, needles in cases:
        path = os.path.join(work, f"bad_{label.replace(' ', '_').replace('.', '_')}.pt")
        write_archive(path, obj, storages)
        try:
            reader(path)
            check(False, f"hand-made archive ({label}) was read")
        except TorchScriptReadError as e:
            missing = [n for n in needles + [path] if n not in str(e)]
            check(not missing, f"hand-made archive ({label}) refused naming {needles}: {e}")
    check(not os.path.exists(marker), "the os.system pickle ran nothing")


def run(source: str, clip: str, vocab: str, work: str) -> None:
    sys.path.insert(0, os.path.join(source, "models"))
    from torchscript_reader import read_torchscript_tensors
    archive = os.path.join(clip, "openai-tiny", "jit_archive.pt")

    # 1. the genuine archive (a trusted fixture: torch.jit.load is the yardstick here)
    mine, theirs = read_torchscript_tensors(archive), torch.jit.load(archive, map_location="cpu").state_dict()
    same = list(mine) == list(theirs) and all(
        mine[k].dtype == theirs[k].dtype and mine[k].shape == theirs[k].shape and mine[k].stride() == theirs[k].stride()
        and torch.equal(mine[k], theirs[k]) for k in mine)
    check(same, f"jit_archive.pt: the reader's {len(mine)} tensors are torch.jit.load's state_dict exactly")
    outs = {}
    for label, extra in (("tensors only", []), ("--trust-code", ["--trust-code"])):
        out = os.path.join(work, "jit-" + ("trusted" if extra else "read"))
        rc, log = export_cli(source, ["--checkpoint", archive, "--vocab", vocab, "--out", out] + extra)
        check(rc == 0 and "detected layout: openai_torchscript" in log, f"export of jit_archive.pt ({label})"
              + ("" if rc == 0 else f":\n{log}"))
        outs[label] = out
    files = sorted(os.listdir(outs["tensors only"]))
    differ = [f for f in files if open(os.path.join(outs["tensors only"], f), "rb").read()
              != open(os.path.join(outs["--trust-code"], f), "rb").read()]
    check(files == sorted(os.listdir(outs["--trust-code"])) and not differ,
          f"jit_archive.pt exports byte-identical with and without --trust-code ({', '.join(files)}; differ: {differ})")

    # 2. a malicious archive, as a file and as an HF folder's pytorch_model.bin
    marker = os.path.join(work, "MARKER")
    evil = os.path.join(work, "evil.pt")
    maker = os.path.join(work, "make_evil.py")  # torch.jit.script reads the class's source file
    with open(maker, "w") as f:
        f.write(EVIL_SOURCE)
    subprocess.run([sys.executable, maker, evil, marker], check=True)
    check(not os.path.exists(marker), "torch.jit.save of the malicious module wrote no marker")
    hf = os.path.join(work, "hf-evil")
    os.makedirs(hf)
    for f in os.listdir(os.path.join(clip, "hf-tiny")):
        if f.endswith(".json") and f != "reference.json" or f == "merges.txt":
            shutil.copyfile(os.path.join(clip, "hf-tiny", f), os.path.join(hf, f))
    shutil.copyfile(evil, os.path.join(hf, "pytorch_model.bin"))
    for label, args in (("--checkpoint evil.pt", ["--checkpoint", evil, "--vocab", vocab]),
                        ("HF folder with a TorchScript pytorch_model.bin", ["--checkpoint", hf])):
        rc, log = export_cli(source, args + ["--out", os.path.join(work, "evil-out")])
        check(rc == 1 and "--trust-code" in log and "__setstate__" in log and "__torch__.Evil" in log,
              f"{label}: refused naming __setstate__ and --trust-code (rc {rc}): {log.strip()[-300:]}")
        check(not os.path.exists(marker), f"{label}: the archive's __setstate__ did not run (no marker)")
    rc, log = export_cli(source, ["--checkpoint", evil, "--vocab", vocab, "--out", os.path.join(work, "evil-out"),
                                  "--trust-code"])
    check(rc == 1 and os.path.exists(marker),
          "with --trust-code torch.jit.load runs the archive's __setstate__ (the marker appears), then the "
          "weights are refused: the marker check above can fail")

    # 3. hand-made archives
    hand_made(work, read_torchscript_tensors)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--source", default=os.path.dirname(HERE))
    p.add_argument("--shared", default=None)
    p.add_argument("--work", default=None)
    args = p.parse_args()
    if torch is None:
        print(f"SKIP: {sys.executable} cannot import torch ({_IMPORT_ERROR}); run with /usr/bin/python3")
        return 77
    source = os.path.abspath(args.source)
    clip = os.path.join(os.path.abspath(args.shared or os.path.join(source, "..", "shared")), "clip")
    vocab = os.path.join(clip, "bpe_simple_vocab_16e6.txt.gz")
    needed = [os.path.join(clip, "openai-tiny", "jit_archive.pt"), os.path.join(clip, "hf-tiny", "config.json"), vocab]
    if not all(os.path.isfile(f) for f in needed):
        print(f"reference material {clip} is absent: skipped")
        return 77
    work = args.work or tempfile.mkdtemp(prefix="zsclip_torchscript_safety_")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    try:
        run(source, clip, vocab, work)
    except Exception:  # noqa: BLE001 - report, then fail
        import traceback
        traceback.print_exc()
        failures.append("unexpected exception")
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print("FAILED: " + "; ".join(failures) if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
