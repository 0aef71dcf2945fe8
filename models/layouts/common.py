"""What the checkpoint layouts share: the LoadedCheckpoint the exporter gets, reading tensor files
(TorchScript archives without running their code, safetensors, torch.save pickles, sharded
checkpoints), config values read with their type checked (a CheckpointError naming the key
otherwise), and clip_model's CLIP built from an OpenAI-style state dict."""
from __future__ import annotations

import contextvars
import hashlib
import json
import math
import os
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from clip_model import CLIP, NON_PARAMETER_KEYS, CheckpointError, infer_shape
from safetensors_io import SafetensorsError, is_safetensors, read_safetensors
from torchscript_reader import TorchScriptReadError, read_torchscript_tensors

LAYOUTS = ("openai_torchscript", "openai_state_dict", "open_clip", "hf_clip", "hf_siglip")
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
OPENAI_SPECIALS = ("<|startoftext|>", "<|endoftext|>")

ACTIVATION_HELP = (
    "pass --activation quick_gelu or --activation gelu. QuickGELU: OpenAI's released weights and open_clip's "
    "laion400m, metaclip and dfn weights (its *-quickgelu configs); GELU: open_clip's laion2b and datacomp "
    "weights (its plain ViT configs). Or pass --open-clip-config with the model's open_clip config")


class LoadedCheckpoint:
    def __init__(self, layout: str, description: str, state_dict: "OrderedDict[str, torch.Tensor]",
                 options: Dict[str, Any], preprocess: Dict[str, Any], tokenizer: Dict[str, Any],
                 reference: Callable, reference_name: str, source_sha256: str, default_name: str,
                 notes: List[str], weights_path: str, what: str,
                 extra_references: Optional[List[Tuple[str, Callable]]] = None):
        self.layout = layout
        self.weights_path = weights_path  # the file the tensors came from (for messages)
        self.what = what                  # the architecture's name (for messages)
        self.description = description
        self.state_dict = state_dict
        self.options = options
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.reference = reference
        self.reference_name = reference_name
        self.extra_references = extra_references or []
        self.source_sha256 = source_sha256
        self.default_name = default_name
        self.notes = notes

# ---- files ---------------------------------------------------------------------------------------

def hash_tensors(h: "hashlib._Hash", sd: Dict[str, torch.Tensor]) -> None:
    """Feeds sorted names, dtypes, shapes and bytes into h (the weights part of zsclip's fingerprint)."""
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        h.update(key.encode("utf-8") + b"\0" + str(t.dtype).encode() + b"\0" + str(tuple(t.shape)).encode() + b"\0")
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def tensors_sha256(sd: Dict[str, torch.Tensor]) -> str:
    """sha256 over sorted names, dtypes, shapes and bytes: the same for a .safetensors and a .bin of one dict."""
    h = hashlib.sha256()
    hash_tensors(h, sd)
    return h.hexdigest()


def is_torchscript_archive(path: str) -> bool:
    # TorchScript archives carry compiled code (<root>/code/...); torch.save zips only data.pkl + tensors.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.endswith("/constants.pkl") for n in z.namelist())


# --trust-code: TorchScript archives are loaded with torch.jit.load, which runs their code. Set for the
# duration of load_checkpoint(..., trust_code=True) only.
_TRUST_CODE = contextvars.ContextVar("trust_code", default=False)


def load_tensor_file(path: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """(tensors, container) of a checkpoint file: "torchscript", "safetensors" or "torch_save". A
    TorchScript archive is read for its tensors only, without running its code (torchscript_reader.py),
    unless load_checkpoint was given trust_code=True; a torch.save pickle is read with weights_only."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint is not a file: {path}")
    if path.endswith(".safetensors") or is_safetensors(path):
        try:
            tensors, _ = read_safetensors(path)
        except SafetensorsError as e:
            raise CheckpointError(str(e)) from e
        return tensors, "safetensors"
    if is_torchscript_archive(path):
        if not _TRUST_CODE.get():
            try:
                return read_torchscript_tensors(path), "torchscript"
            except TorchScriptReadError as e:
                hint = "" if "--trust-code" in str(e) else (
                    " (its tensors are read without running its code; --trust-code would load it with "
                    "torch.jit.load, which runs the archive's code: only for files from an author you trust)")
                raise CheckpointError(f"{e}{hint}") from e
        try:  # --trust-code: torch.jit.load compiles and runs the archive's code (its __setstate__ methods)
            return dict(torch.jit.load(path, map_location="cpu").state_dict()), "torchscript"
        except Exception as e:  # noqa: BLE001 - any loader failure means "not a usable archive"
            raise CheckpointError(f"{path}: looks like a TorchScript archive but cannot be loaded: {e}") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a checkpoint this exporter reads (neither a TorchScript archive, a "
                              f"safetensors file nor a torch.save state dict; torch.load failed with "
                              f"{type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: torch.load gave a {type(obj).__name__}, not a state dict")
    # Training checkpoints wrap the weights: {"epoch", "state_dict", "optimizer", ...}; DDP adds "module.".
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor) and key not in NON_PARAMETER_KEYS:
            raise CheckpointError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
    if obj and all(k.startswith("module.") for k in obj):
        obj = OrderedDict((k[len("module."):], v) for k, v in obj.items())
    return obj, "torch_save"


def load_sharded(index_path: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """A transformers sharded checkpoint: index JSON {"metadata", "weight_map": {tensor: shard file}}.
    Every shard must hold exactly the tensors the index assigns to it."""
    index = _read_json(index_path)
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
        _fail(index_path, "not a sharded-checkpoint index (no weight_map object)")
    unknown = [k for k in index if k not in ("metadata", "weight_map")]
    if unknown:
        _fail(index_path, f"key {unknown[0]!r} is not part of a sharded-checkpoint index")
    folder = os.path.dirname(index_path)
    shards: Dict[str, List[str]] = {}
    for name, shard in index["weight_map"].items():
        if not isinstance(shard, str) or os.path.basename(shard) != shard:
            _fail(index_path, f"tensor {name!r} maps to {shard!r}, not a file name in the same folder")
        shards.setdefault(shard, []).append(name)
    out: Dict[str, torch.Tensor] = OrderedDict()
    containers = set()
    for shard, names in sorted(shards.items()):
        tensors, container = load_tensor_file(os.path.join(folder, shard))
        containers.add(container)
        if sorted(tensors) != sorted(names):
            extra = sorted(set(tensors) - set(names))
            lacking = sorted(set(names) - set(tensors))
            _fail(os.path.join(folder, shard), f"does not hold what {os.path.basename(index_path)} says: "
                  + (f"extra {extra[:4]} " if extra else "") + (f"lacks {lacking[:4]}" if lacking else ""))
        out.update(tensors)
    return out, "sharded " + "+".join(sorted(containers))


def _read_json(path: str) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    except ValueError as e:
        raise CheckpointError(f"{path}: not valid JSON: {e}") from e


def _fail(where: str, msg: str) -> None:
    raise CheckpointError(f"{where}: {msg}")


def _int(where: str, key: str, value: Any, minimum: int = 1) -> int:
    if type(value) is not int or value < minimum:
        _fail(where, f"{key} is {value!r}, not an integer >= {minimum}")
    return value


def _float(where: str, key: str, value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        _fail(where, f"{key} is {value!r}, not a number")
    return float(value)


def _bool(where: str, key: str, value: Any) -> bool:
    if type(value) is not bool:
        _fail(where, f"{key} is {value!r}, not true/false")
    return value


def _triple(where: str, key: str, value: Any) -> List[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        _fail(where, f"{key} is {value!r}, not 3 numbers (one per RGB channel)")
    return [_float(where, key, v) for v in value]


# ---- the OpenAI key layout (OpenAI's, open_clip's, and the one HF's are mapped to) -----------------

def build_model(where: str, sd: Dict[str, torch.Tensor], options: Dict[str, Any], what: str) -> CLIP:
    """A float32 CLIP of these options in eval mode, with every tensor of `sd` loaded (strict): a key the
    model lacks, a missing key or a wrong shape is a CheckpointError naming it."""
    try:
        model = CLIP(**options)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: inconsistent architecture {options}: {e}") from e
    model_sd = model.state_dict()
    missing = [k for k in model_sd if k not in sd]
    unexpected = [k for k in sd if k not in model_sd]
    if unexpected:
        _fail(where, f"tensor(s) {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''} are not part of "
                     f"{what} as this exporter implements it (refused rather than ignored)")
    if missing:
        _fail(where, f"tensor(s) {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''} are missing for {what}")
    for k, t in model_sd.items():
        if tuple(sd[k].shape) != tuple(t.shape):
            _fail(where, f"tensor {k} has shape {tuple(sd[k].shape)}, expected {tuple(t.shape)} for {what}")
        if not sd[k].is_floating_point():
            _fail(where, f"tensor {k} has dtype {sd[k].dtype}, not a floating-point type")
    model.load_state_dict(OrderedDict((k, v.float()) for k, v in sd.items()), strict=True)
    return model.eval()


def _infer_openai_dims(where: str, sd: Dict[str, torch.Tensor]) -> Dict[str, int]:
    try:
        return infer_shape(sd)
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}") from e
