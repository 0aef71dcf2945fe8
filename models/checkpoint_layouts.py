"""Checkpoint layouts the exporter reads, each turned into clip_model's OpenAI-style state dict plus the
architecture options, preprocessing and tokenizer settings that its files declare.

    ckpt = load_checkpoint("laion/CLIP-ViT-B-32-laion2B-s34B-b79K/", activation=None, open_clip_config=None)
    ckpt.layout        # "openai_torchscript" | "openai_state_dict" | "open_clip" | "hf_clip"
    ckpt.state_dict    # OpenAI key names (+ text_projection_bias, logit_bias), float tensors
    ckpt.options       # clip_model.CLIP keyword options: activation, head counts, pooling, eps, ...
    ckpt.preprocess    # config.json "preprocess" (image_size filled in by the caller's model)
    ckpt.tokenizer     # {"format", "sot_token", "eot_token", "vocab_path", "merges_path"}
    ckpt.reference(pixels, ids)   # independent eager forward of the source layout (reference_forward.py)

Layouts:
- OpenAI TorchScript archive (ViT-B-32.pt as released): QuickGELU by construction.
- A bare state dict (torch.save or .safetensors) with OpenAI's keys: the weights do not say which
  activation they were trained with, so `activation` must be given (or an open_clip config).
- open_clip: a hub folder (open_clip_config.json + open_clip_model.safetensors or
  open_clip_pytorch_model.bin), or a checkpoint file plus `open_clip_config` (that JSON, or a plain
  model_cfg as in open_clip's model_configs/*.json).
- HuggingFace CLIPModel folder: config.json (model_type "clip"), model.safetensors or pytorch_model.bin
  (or a sharded checkpoint's *.index.json), preprocessor_config.json, vocab.json + merges.txt
  (+ tokenizer_config.json, special_tokens_map.json).

Nothing is guessed: every key of every config file is either implemented, accepted because it cannot
change inference (the tables below say why, key by key), or refused with its name; every tensor is
mapped or refused with its name.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import math
import os
import re
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from clip_model import CLIP, NON_PARAMETER_KEYS, CheckpointError, clean_state_dict
from reference_forward import hf_clip_features, openai_layout_features
from safetensors_io import SafetensorsError, is_safetensors, read_safetensors
from torchscript_reader import TorchScriptReadError, read_torchscript_tensors

__all__ = ["LoadedCheckpoint", "load_checkpoint", "build_model", "load_tensor_file", "tensors_sha256", "hash_tensors",
           "LAYOUTS", "OPENAI_MEAN", "OPENAI_STD", "ACTIVATION_HELP"]

LAYOUTS = ("openai_torchscript", "openai_state_dict", "open_clip", "hf_clip", "hf_siglip")
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
OPENAI_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
OPEN_CLIP_SPECIALS = ("<start_of_text>", "<end_of_text>")

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


# ---- the OpenAI key layout (shared by OpenAI and open_clip) ---------------------------------------

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
    from clip_model import infer_shape
    try:
        return infer_shape(sd)
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}") from e


def _openai_reference(source_sd: Dict[str, torch.Tensor]) -> Callable:
    return lambda arch, pixels, ids: openai_layout_features(source_sd, arch, pixels, ids)


def _load_openai(path: str, activation: Optional[str], notes: List[str]) -> LoadedCheckpoint:
    raw, container = load_tensor_file(path)
    sd = clean_state_dict(raw)
    extra = []
    if container == "torchscript":
        layout = "openai_torchscript"
        if activation == "gelu":
            _fail(path, "OpenAI's TorchScript archives are QuickGELU models by construction; --activation gelu "
                        "contradicts that")
        activation = "quick_gelu"
        description = "OpenAI TorchScript archive (QuickGELU by construction)"
        if not _TRUST_CODE.get():
            notes.append("the archive's tensors were read without running its code; its own encode_image/"
                         "encode_text are not run as a further reference (that needs --trust-code)")
        elif all(v.dtype == torch.float32 for v in sd.values()):
            archive: List[Any] = []

            def archive_reference(arch, pixels, ids, _path=path):
                # The archive's own traced code (float32 archives only: OpenAI's released ones are float16,
                # traced on CUDA, and their code casts to half, which would not be a float32 reference).
                if not archive:
                    archive.append(torch.jit.load(_path, map_location="cpu").eval())
                with torch.no_grad():
                    return archive[0].encode_image(pixels).float(), archive[0].encode_text(ids).float()
            extra.append(("the archive's own encode_image/encode_text", archive_reference))
        else:
            notes.append("the archive stores float16 weights: the export is checked against the functional "
                         "OpenAI-layout forward of its weights in float32, not against the archive's own code")
    else:
        layout = "openai_state_dict"
        hf_like = [k for k in sd if k.startswith(("text_model.", "vision_model."))]
        if hf_like:
            _fail(path, f"keys such as {hf_like[0]} are HuggingFace CLIPModel's: pass the model's folder (its "
                        "config.json gives the head counts, activation and pooling)")
        open_clip_only = [k for k in sd if k in ("logit_bias", "text_projection.weight", "text_projection.bias")
                          or k.startswith("text.")]
        if open_clip_only:
            _fail(path, f"key {open_clip_only[0]} exists only in open_clip models whose config changes the "
                        "architecture: pass --open-clip-config with the model's open_clip config")
        if activation is None:
            _fail(path, "a bare state dict does not say which activation its MLPs were trained with (OpenAI's key "
                        "layout is shared by QuickGELU and GELU models): " + ACTIVATION_HELP)
        description = f"bare state dict ({container}) with OpenAI's key names, --activation {activation}"
        notes.append("head counts: OpenAI's rule (width // 64), as the weights cannot tell them")
    shape = _infer_openai_dims(path, sd)
    shape["activation"] = activation
    return LoadedCheckpoint(
        layout=layout, description=description,
        state_dict=OrderedDict((k, v.float()) for k, v in sd.items()), options=shape,
        preprocess={"resize": "shorter_side", "interpolation": "bicubic", "crop": "center", "fill": 0,
                    "mean": list(OPENAI_MEAN), "std": list(OPENAI_STD)},
        tokenizer={"format": "openai", "sot_token": OPENAI_SPECIALS[0], "eot_token": OPENAI_SPECIALS[1]},
        reference=_openai_reference(sd), reference_name="functional OpenAI-layout forward (torch MHA)",
        extra_references=extra, source_sha256=tensors_sha256(sd),
        default_name=os.path.splitext(os.path.basename(path.rstrip("/")))[0], notes=notes,
        weights_path=path, what="OpenAI's ViT CLIP")


# ---- open_clip -----------------------------------------------------------------------------------
# Every key of open_clip's model_cfg / vision_cfg / text_cfg / preprocess_cfg, and what happens to it:
#   IMPL             read and implemented (below)
#   ("any", why)     accepted with any value: cannot change inference (training-only or API-only)
#   ("default", v)   accepted only at open_clip's default v (the feature is not implemented here)
IMPL = "impl"

OPEN_CLIP_MODEL_KEYS: Dict[str, Any] = {
    "embed_dim": IMPL, "vision_cfg": IMPL, "text_cfg": IMPL, "quick_gelu": IMPL, "init_logit_bias": IMPL,
    "init_logit_scale": ("any", "an initial value only: the logit_scale tensor holds the trained value"),
    "nonscalar_logit_scale": ("any", "only the shape ([1] or []) of logit_scale / logit_bias; both are read"),
    "custom_text": ("any", "only where the text tower's tensors live (text.* or top level); both are read"),
    "output_dict": ("any", "API only: the type of forward()'s return value"),
    "cast_dtype": ("default", None),
}
OPEN_CLIP_REFUSED_MODEL_KEYS = {
    "multimodal_cfg": "a CoCa model (multimodal text decoder)", "audio_cfg": "a CLAP audio model",
    "genlip_cfg": "a GenLIP model", "genlap_cfg": "a GenLAP model", "audio_naflex_cfg": "a NaFlex audio model",
}
OPEN_CLIP_VISION_KEYS: Dict[str, Any] = {
    "layers": IMPL, "width": IMPL, "head_width": IMPL, "mlp_ratio": IMPL, "patch_size": IMPL, "image_size": IMPL,
    "no_ln_pre": IMPL, "pool_type": IMPL, "final_ln_after_pool": IMPL, "norm_kwargs": IMPL,
    "patch_dropout": ("any", "training only: PatchDropout is the identity in eval mode"),
    "output_tokens": ("any", "API only: forward() also returns the patch tokens"),
    "attn_pooler_queries": ("any", "used only with attentional_pool, which is refused"),
    "attn_pooler_heads": ("any", "used only with attentional_pool, which is refused"),
    "timm_model_pretrained": ("any", "used only with timm_model_name, which is refused"),
    "timm_pool": ("any", "used only with timm_model_name, which is refused"),
    "timm_proj": ("any", "used only with timm_model_name, which is refused"),
    "timm_proj_bias": ("any", "used only with timm_model_name, which is refused"),
    "timm_drop": ("any", "used only with timm_model_name, which is refused"),
    "timm_drop_path": ("any", "used only with timm_model_name, which is refused"),
    "timm_model_kwargs": ("any", "used only with timm_model_name, which is refused"),
    "timm_model_name": ("default", None), "ls_init_value": ("default", None), "attentional_pool": ("default", False),
    "pos_embed_type": ("default", "learnable"), "act_kwargs": ("default", None), "block_type": ("default", None),
    "qk_norm": ("default", False), "scaled_cosine_attn": ("default", False), "scale_heads": ("default", False),
    "scale_attn_inner": ("default", False), "scale_attn": ("default", False), "scale_fc": ("default", False),
    "image_seq_len": ("default", None), "in_chans": ("default", 3),
}
_MODERN_TEXT_DEFAULTS = {
    "attention_mode": "causal", "pos_embed": "rope", "rope_temperature": 10000.0, "mlp_type": "swiglu",
    "norm_type": None, "norm_eps": 1e-6, "attn_gated": False, "pre_norm": False, "norm_placement": "pre",
    "zero_init_residual": False, "reg_tokens": 0, "value_residual": False, "attention_bias": None,
    "mlp_bias": None, "gate_bias": None,
}
OPEN_CLIP_TEXT_KEYS: Dict[str, Any] = {
    "context_length": IMPL, "vocab_size": IMPL, "width": IMPL, "heads": IMPL, "layers": IMPL, "mlp_ratio": IMPL,
    "no_causal_mask": IMPL, "pool_type": IMPL, "eos_id": IMPL, "proj_bias": IMPL, "norm_kwargs": IMPL,
    "output_tokens": ("any", "API only: forward() also returns the token features"),
    "tiktoken_name": ("any", "used only with tokenizer_type tiktoken, which is refused"),
    "hf_model_pretrained": ("any", "used only with hf_model_name, which is refused"),
    "hf_proj_type": ("any", "used only with hf_model_name, which is refused"),
    "hf_pooler_type": ("any", "used only with hf_model_name, which is refused"),
    "hf_model_config": ("any", "used only with hf_model_name, which is refused"),
    "text_arch": ("default", "clip"), "variable_text": ("default", False), "hf_model_name": ("default", None),
    "hf_tokenizer_name": ("default", None), "tokenizer_mode": ("default", None), "tokenizer_type": ("default", ""),
    "tokenizer_kwargs": ("default", None), "ls_init_value": ("default", None), "embed_cls": ("default", False),
    "pad_id": ("default", 0), "bos_id": ("default", None), "final_ln_after_pool": ("default", False),
    "proj_type": ("default", "linear"), "act_kwargs": ("default", None), "block_type": ("default", None),
    "qk_norm": ("default", False), "scaled_cosine_attn": ("default", False), "scale_heads": ("default", False),
    "scale_attn_inner": ("default", False), "scale_attn": ("default", False), "scale_fc": ("default", False),
    **{k: ("default", v) for k, v in _MODERN_TEXT_DEFAULTS.items()},
}
OPEN_CLIP_PREPROCESS_KEYS = ("size", "mode", "mean", "std", "interpolation", "resize_mode", "fill_color")
# Values a "default"-only key may also take with the same meaning as its default.
_SAME_AS_DEFAULT = {"block_type": ("default",), "tokenizer_kwargs": ({}, {"clean": "lower"}), "act_kwargs": ({},)}


def _check_keys(where: str, section: str, cfg: Dict[str, Any], table: Dict[str, Any], notes: List[str]) -> None:
    for key, value in cfg.items():
        rule = table.get(key)
        if rule is None:
            _fail(where, f"{section}.{key} is not a key this exporter knows (open_clip's native CLIP towers); "
                         "refused rather than ignored")
        if rule == IMPL:
            continue
        kind, arg = rule
        if kind == "any":
            notes.append(f"{section}.{key} = {json.dumps(value)} accepted: {arg}")
        elif value != arg and value not in _SAME_AS_DEFAULT.get(key, ()):
            _fail(where, f"{section}.{key} = {json.dumps(value)} is not supported (only open_clip's default "
                         f"{json.dumps(arg)} is implemented)")


def _norm_eps(where: str, section: str, cfg: Dict[str, Any]) -> float:
    kwargs = cfg.get("norm_kwargs")
    if kwargs is None:
        return 1e-5
    if not isinstance(kwargs, dict):
        _fail(where, f"{section}.norm_kwargs is {kwargs!r}, not an object")
    unknown = [k for k in kwargs if k != "eps"]
    if unknown:
        _fail(where, f"{section}.norm_kwargs.{unknown[0]} is not supported (only eps is implemented)")
    return _float(where, f"{section}.norm_kwargs.eps", kwargs.get("eps", 1e-5))


def parse_open_clip_config(where: str, cfg: Dict[str, Any], notes: List[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(CLIP options without the tensor-derived dims, preprocess) from an open_clip JSON (hub or plain)."""
    if not isinstance(cfg, dict):
        _fail(where, "not a JSON object")
    if "model_cfg" in cfg:
        unknown = [k for k in cfg if k not in ("model_cfg", "preprocess_cfg")]
        if unknown:
            _fail(where, f"top-level key {unknown[0]!r} is not part of open_clip's hub config (model_cfg, "
                         "preprocess_cfg); refused rather than ignored")
        model_cfg, pp_cfg = cfg["model_cfg"], cfg.get("preprocess_cfg")
        if pp_cfg is None:
            notes.append("preprocess: open_clip's defaults (the config has no preprocess_cfg)")
            pp_cfg = {}
    else:
        model_cfg, pp_cfg = cfg, {}
        notes.append("preprocess: open_clip's defaults (a plain model_cfg carries no preprocess_cfg; a pretrained "
                     "tag may override them in open_clip, so check mean/std against the weights' card)")
    if not isinstance(model_cfg, dict):
        _fail(where, "model_cfg is not a JSON object")
    for key, what in OPEN_CLIP_REFUSED_MODEL_KEYS.items():
        if key in model_cfg:
            _fail(where, f"model_cfg.{key}: {what} is not supported (CLIP ViT only)")
    _check_keys(where, "model_cfg", model_cfg, OPEN_CLIP_MODEL_KEYS, notes)
    for key in ("embed_dim", "vision_cfg", "text_cfg"):
        if key not in model_cfg:
            _fail(where, f"model_cfg lacks {key}")
    vc, tc = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    if not isinstance(vc, dict) or not isinstance(tc, dict):
        _fail(where, "model_cfg.vision_cfg and model_cfg.text_cfg must be objects")
    siglip = bool(vc.get("timm_model_name"))  # a timm SigLIP image tower (layouts_siglip.py)
    if isinstance(vc.get("layers"), (list, tuple)) and not siglip:
        _fail(where, "vision_cfg.layers is a list: a ResNet image tower, not supported (ViT only)")
    if vc.get("attentional_pool"):
        _fail(where, "vision_cfg.attentional_pool: attentional pooling (CoCa) is not supported")
    if tc.get("hf_model_name"):
        _fail(where, f"text_cfg.hf_model_name {tc['hf_model_name']!r}: HuggingFace text towers are not supported")
    if tc.get("text_arch", "clip") != "clip":
        _fail(where, f"text_cfg.text_arch {tc['text_arch']!r} is not supported (open_clip's native CLIP text tower "
                     "only)")
    if not siglip:
        _check_keys(where, "vision_cfg", vc, OPEN_CLIP_VISION_KEYS, notes)
    text_extra = {k: tc[k] for k in _OPEN_CLIP_TEXT_EXTRA if k in tc}
    if siglip:
        _check_keys(where, "text_cfg", {k: v for k, v in tc.items() if k not in text_extra}, OPEN_CLIP_TEXT_KEYS, notes)
    else:
        _check_keys(where, "text_cfg", {k: v for k, v in tc.items() if k not in ("act_kwargs", "proj_type")},
                    OPEN_CLIP_TEXT_KEYS, notes)
        for key in ("hf_tokenizer_name", "tokenizer_kwargs"):
            if key in tc and tc[key] not in (None, {}, {"clean": "lower"}):
                _fail(where, f"text_cfg.{key} = {json.dumps(tc[key])} is not supported (only open_clip's default "
                             "null is implemented for CLIP's BPE tokenizer)")

    quick_gelu = _bool(where, "model_cfg.quick_gelu", model_cfg.get("quick_gelu", False))
    opts: Dict[str, Any] = {"activation": "quick_gelu" if quick_gelu else "gelu"}
    opts["embed_dim"] = _int(where, "model_cfg.embed_dim", model_cfg["embed_dim"])
    logit_bias = model_cfg.get("init_logit_bias")
    if logit_bias is not None:
        _float(where, "model_cfg.init_logit_bias", logit_bias)
    opts["logit_bias"] = logit_bias is not None

    # vision
    if siglip:
        from layouts_siglip import timm_vision_options  # imports this module: loaded on use
        opts.update(timm_vision_options(where, model_cfg, vc, notes))
    else:
        _native_vision(where, vc, opts)
    _open_clip_text(where, tc, opts, siglip)
    preprocess = _open_clip_preprocess(where, pp_cfg, opts)
    if siglip:
        opts["_tokenizer_clean"] = _tokenizer_clean(where, tc)
    return opts, preprocess


# text_cfg keys handled by _open_clip_text / the SigLIP tokenizer (not in OPEN_CLIP_TEXT_KEYS' defaults table).
_OPEN_CLIP_TEXT_EXTRA = ("act_kwargs", "proj_type", "hf_tokenizer_name", "tokenizer_kwargs")


def _tokenizer_clean(where: str, tc: Dict[str, Any]) -> Optional[str]:
    kwargs = tc.get("tokenizer_kwargs") or {}
    if not isinstance(kwargs, dict):
        _fail(where, f"text_cfg.tokenizer_kwargs is {kwargs!r}, not an object")
    unknown = [k for k in kwargs if k != "clean"]
    if unknown:
        _fail(where, f"text_cfg.tokenizer_kwargs.{unknown[0]} is not supported (only clean)")
    if "hf_tokenizer_name" not in tc:
        _fail(where, "text_cfg.hf_tokenizer_name is missing: a SigLIP model's tokenizer is an HF SentencePiece one")
    return kwargs.get("clean")


def _native_vision(where: str, vc: Dict[str, Any], opts: Dict[str, Any]) -> None:
    """The options of open_clip's native ViT image tower."""
    width = _int(where, "vision_cfg.width", vc.get("width", 768))
    head_width = _int(where, "vision_cfg.head_width", vc.get("head_width", 64))
    if width % head_width:
        _fail(where, f"vision_cfg.width {width} is not a multiple of head_width {head_width}")
    image_size = vc.get("image_size", 224)
    if isinstance(image_size, (list, tuple)):
        if len(image_size) != 2 or image_size[0] != image_size[1]:
            _fail(where, f"vision_cfg.image_size {image_size}: only square images are supported")
        image_size = image_size[0]
    patch_size = vc.get("patch_size", 16)
    if isinstance(patch_size, (list, tuple)):
        if len(patch_size) != 2 or patch_size[0] != patch_size[1]:
            _fail(where, f"vision_cfg.patch_size {patch_size}: only square patches are supported")
        patch_size = patch_size[0]
    mlp_ratio = _float(where, "vision_cfg.mlp_ratio", vc.get("mlp_ratio", 4.0))
    pool = vc.get("pool_type", "tok")
    if pool not in ("tok", "avg"):
        _fail(where, f"vision_cfg.pool_type {pool!r} is not supported (tok, avg)")
    opts.update(
        image_resolution=_int(where, "vision_cfg.image_size", image_size),
        vision_patch_size=_int(where, "vision_cfg.patch_size", patch_size),
        vision_width=width, vision_layers=_int(where, "vision_cfg.layers", vc.get("layers", 12)),
        vision_heads=width // head_width, vision_mlp_width=int(width * mlp_ratio),
        vision_ln_pre=not _bool(where, "vision_cfg.no_ln_pre", vc.get("no_ln_pre", False)),
        vision_pool=pool,
        vision_final_ln_after_pool=_bool(where, "vision_cfg.final_ln_after_pool", vc.get("final_ln_after_pool", False)),
        vision_layer_norm_eps=_norm_eps(where, "vision_cfg", vc),
    )


def _open_clip_text(where: str, tc: Dict[str, Any], opts: Dict[str, Any], siglip: bool) -> None:
    """The options of open_clip's native text tower (act_kwargs and proj_type included)."""
    act_kwargs = tc.get("act_kwargs") or {}
    if act_kwargs not in ({}, {"approximate": "tanh"}, {"approximate": "none"}):
        _fail(where, f"text_cfg.act_kwargs = {json.dumps(act_kwargs)} is not supported (only {{\"approximate\": "
                     "\"tanh\"}})")
    if act_kwargs.get("approximate") == "tanh":
        if opts["activation"] == "quick_gelu":
            _fail(where, "text_cfg.act_kwargs approximate tanh with quick_gelu: open_clip's QuickGELU takes no such "
                         "argument")
        opts["text_activation"] = "gelu_tanh"
    else:
        opts["text_activation"] = opts["activation"]
    proj_type = tc.get("proj_type", "linear")
    if proj_type not in ("linear", "none"):
        _fail(where, f"text_cfg.proj_type {proj_type!r} is not supported (linear, none)")
    opts["text_proj"] = proj_type == "linear"
    twidth = _int(where, "text_cfg.width", tc.get("width", 512))
    tmlp = _float(where, "text_cfg.mlp_ratio", tc.get("mlp_ratio", 4.0))
    tpool = tc.get("pool_type", "argmax")
    if tpool not in ("argmax", "eos", "first", "last"):
        _fail(where, f"text_cfg.pool_type {tpool!r} is not supported (argmax, eos, first, last)")
    eos_id = tc.get("eos_id")
    if tpool == "eos" and eos_id is None:
        _fail(where, "text_cfg.pool_type eos needs text_cfg.eos_id (the id the text is pooled at)")
    if eos_id is not None:
        _int(where, "text_cfg.eos_id", eos_id, minimum=0)
    opts.update(
        context_length=_int(where, "text_cfg.context_length", tc.get("context_length", 77)),
        vocab_size=_int(where, "text_cfg.vocab_size", tc.get("vocab_size", 49408)),
        transformer_width=twidth, transformer_heads=_int(where, "text_cfg.heads", tc.get("heads", 8)),
        transformer_layers=_int(where, "text_cfg.layers", tc.get("layers", 12)),
        text_mlp_width=int(twidth * tmlp),
        text_causal_mask=not _bool(where, "text_cfg.no_causal_mask", tc.get("no_causal_mask", False)),
        text_pool=tpool, text_eos_id=eos_id,
        text_layer_norm_eps=_norm_eps(where, "text_cfg", tc),
        text_proj_bias=_bool(where, "text_cfg.proj_bias", tc.get("proj_bias", False)),
    )
    if twidth % opts["transformer_heads"]:
        _fail(where, f"text_cfg.width {twidth} is not a multiple of heads {opts['transformer_heads']}")
    if not opts["text_proj"] and opts["text_proj_bias"]:
        _fail(where, "text_cfg.proj_type none with proj_bias true: there is no projection to have a bias")


def _open_clip_preprocess(where: str, pp_cfg: Any, opts: Dict[str, Any]) -> Dict[str, Any]:
    if not isinstance(pp_cfg, dict):
        _fail(where, "preprocess_cfg is not an object")
    unknown = [k for k in pp_cfg if k not in OPEN_CLIP_PREPROCESS_KEYS]
    if unknown:
        _fail(where, f"preprocess_cfg.{unknown[0]} is not a key of open_clip's PreprocessCfg; refused rather than "
                     "ignored")
    size = pp_cfg.get("size", opts["image_resolution"])
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            _fail(where, f"preprocess_cfg.size {size}: only square inputs are supported")
        size = size[0]
    if size != opts["image_resolution"]:
        _fail(where, f"preprocess_cfg.size {size} differs from vision_cfg.image_size {opts['image_resolution']}")
    if pp_cfg.get("mode", "RGB") != "RGB":
        _fail(where, f"preprocess_cfg.mode {pp_cfg['mode']!r} is not supported (RGB)")
    interpolation = pp_cfg.get("interpolation", "bicubic")
    if interpolation not in ("bicubic", "bilinear"):
        _fail(where, f"preprocess_cfg.interpolation {interpolation!r} is not supported (bicubic, bilinear)")
    resize_mode = pp_cfg.get("resize_mode", "shortest")
    modes = {"shortest": ("shorter_side", "center"), "squash": ("stretch", "none"),
             "longest": ("longer_side", "center")}
    if resize_mode not in modes:
        _fail(where, f"preprocess_cfg.resize_mode {resize_mode!r} is not supported (shortest, squash, longest)")
    fill = pp_cfg.get("fill_color", 0)
    if type(fill) is not int or not 0 <= fill <= 255:
        _fail(where, f"preprocess_cfg.fill_color {fill!r} is not an integer 0-255")
    preprocess = {"resize": modes[resize_mode][0], "interpolation": interpolation, "crop": modes[resize_mode][1],
                  "fill": fill, "mean": _triple(where, "preprocess_cfg.mean", pp_cfg.get("mean", OPENAI_MEAN)),
                  "std": _triple(where, "preprocess_cfg.std", pp_cfg.get("std", OPENAI_STD))}
    if any(s <= 0 for s in preprocess["std"]):
        _fail(where, f"preprocess_cfg.std {preprocess['std']} has a value <= 0")
    return preprocess


def _open_clip_tensors(where: str, raw: Dict[str, torch.Tensor], opts: Dict[str, Any]) -> "OrderedDict[str, torch.Tensor]":
    """open_clip CLIP / CustomTextCLIP keys -> clip_model's (OpenAI's + text_projection_bias, logit_bias)."""
    sd: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, t in raw.items():
        if key.startswith("text.") and key[5:].split(".")[0] in ("token_embedding", "positional_embedding",
                                                                 "transformer", "ln_final", "text_projection"):
            key = key[5:]  # CustomTextCLIP keeps the text tower under text.*
        if key in sd:
            _fail(where, f"tensor {key} appears both at the top level and under text.")
        sd[key] = t
    if opts.get("vision_type") == "siglip":
        from layouts_siglip import timm_vision_tensors
        sd = timm_vision_tensors(where, sd)
    if not opts.get("text_proj", True):
        if any(k.startswith("text_projection") for k in sd):
            _fail(where, "text_cfg.proj_type is none but the checkpoint has a text_projection")
    elif opts["text_proj_bias"]:
        if "text_projection.weight" not in sd or "text_projection.bias" not in sd:
            _fail(where, "text_cfg.proj_bias is true but text_projection.weight / text_projection.bias are missing")
        sd["text_projection"] = sd.pop("text_projection.weight").t().contiguous()  # nn.Linear [E, W] -> [W, E]
        sd["text_projection_bias"] = sd.pop("text_projection.bias")
    elif "text_projection.weight" in sd or "text_projection.bias" in sd:
        _fail(where, "the checkpoint has text_projection.weight/.bias (an nn.Linear) but text_cfg.proj_bias is not "
                     "true")
    for key in ("logit_scale", "logit_bias"):
        if key in sd and tuple(sd[key].shape) == (1,):
            sd[key] = sd[key].reshape(())  # nonscalar_logit_scale
    if opts["logit_bias"] and "logit_bias" not in sd:
        _fail(where, "model_cfg.init_logit_bias is set but the checkpoint has no logit_bias tensor")
    if not opts["logit_bias"] and "logit_bias" in sd:
        _fail(where, "the checkpoint has a logit_bias tensor but model_cfg has no init_logit_bias")
    return sd


def _check_open_clip_dims(where: str, sd: Dict[str, torch.Tensor], opts: Dict[str, Any]) -> None:
    """The config's dimensions against the tensors (a mismatch names both)."""
    dims = _infer_openai_dims(where, sd)
    names = {"embed_dim": "model_cfg.embed_dim", "image_resolution": "vision_cfg.image_size",
             "vision_layers": "vision_cfg.layers", "vision_width": "vision_cfg.width",
             "vision_patch_size": "vision_cfg.patch_size", "context_length": "text_cfg.context_length",
             "vocab_size": "text_cfg.vocab_size", "transformer_width": "text_cfg.width",
             "transformer_layers": "text_cfg.layers", "vision_mlp_width": "vision_cfg.mlp_ratio (x width)",
             "text_mlp_width": "text_cfg.mlp_ratio (x width)"}
    for key, name in names.items():
        if key in dims and dims[key] != opts[key]:
            _fail(where, f"{name} gives {key} {opts[key]}, but the tensors have {dims[key]}")


def _load_open_clip(where: str, weights: str, cfg_path: str, activation: Optional[str], notes: List[str],
                    description: str, default_name: str) -> LoadedCheckpoint:
    cfg = _read_json(cfg_path)
    opts, preprocess = parse_open_clip_config(cfg_path, cfg, notes)
    if activation is not None and activation != opts["activation"]:
        _fail(cfg_path, f"--activation {activation} contradicts the config (quick_gelu "
                        f"{'true' if opts['activation'] == 'quick_gelu' else 'false/absent'}: {opts['activation']})")
    siglip = opts.get("vision_type") == "siglip"
    clean = opts.pop("_tokenizer_clean", None)
    raw, container = load_tensor_file(weights)
    sd = _open_clip_tensors(weights, raw, opts)
    if not siglip:
        _check_open_clip_dims(weights, sd, opts)
    source = OrderedDict((k, v) for k, v in raw.items())
    if opts["text_eos_id"] is None:
        opts["text_eos_id"] = opts["vocab_size"] - 1
    if siglip:
        from layouts_siglip import open_clip_siglip_features, sentencepiece_tokenizer
        folder = os.path.dirname(os.path.abspath(weights)) if os.path.isfile(where) else where
        tokenizer = sentencepiece_tokenizer(folder, opts["vocab_size"], opts["context_length"], "open_clip", clean,
                                            notes)
        opts["text_pad_id"] = tokenizer["pad_id"]
        reference = lambda arch, pixels, ids: open_clip_siglip_features(source, arch, pixels, ids)  # noqa: E731
        reference_name = "functional timm + open_clip forward (SigLIP, attention by hand)"
        what = "open_clip's SigLIP (timm image tower) with this config"
    else:
        tokenizer = {"format": "openai", "sot_token": OPEN_CLIP_SPECIALS[0], "eot_token": OPEN_CLIP_SPECIALS[1]}
        reference = _open_clip_reference(source)
        reference_name = "functional open_clip-layout forward (torch MHA)"
        what = "open_clip's CLIP with this config"
    return LoadedCheckpoint(
        layout="open_clip", description=description.replace("<container>", container),
        state_dict=OrderedDict((k, v.float()) for k, v in sd.items()), options=opts, preprocess=preprocess,
        tokenizer=tokenizer, reference=reference, reference_name=reference_name,
        source_sha256=tensors_sha256(raw), default_name=default_name, notes=notes,
        weights_path=weights, what=what)


def _open_clip_reference(source: Dict[str, torch.Tensor]) -> Callable:
    # The functional forward reads open_clip's own keys; only the CustomTextCLIP prefix and [1]-shaped
    # scalars are normalised, which changes no value.
    sd = {}
    for k, v in source.items():
        if k.startswith("text.") and k[5:].split(".")[0] in ("token_embedding", "positional_embedding", "transformer",
                                                             "ln_final", "text_projection"):
            k = k[5:]
        sd[k] = v
    return lambda arch, pixels, ids: openai_layout_features(sd, arch, pixels, ids)


# ---- HuggingFace CLIPModel -----------------------------------------------------------------------
# transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig defaults, used for keys a config.json
# leaves out (transformers writes only the values that differ from them).
HF_TEXT_DEFAULTS = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "projection_dim": 512,
                    "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
                    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0,
                    "initializer_range": 0.02, "initializer_factor": 1.0, "pad_token_id": 1, "bos_token_id": 49406,
                    "eos_token_id": 49407}
HF_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "projection_dim": 512, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 32,
                      "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0,
                      "initializer_range": 0.02, "initializer_factor": 1.0}
# Keys of transformers' PretrainedConfig that CLIPModel's forward does not read (generation settings,
# classification-head labels, output switches, provenance, init values, dropout which is off in eval).
HF_GENERIC_KEYS = {
    "transformers_version", "_name_or_path", "_commit_hash", "architectures", "torch_dtype", "dtype",
    "initializer_range", "initializer_factor", "logit_scale_init_value", "dropout", "attention_dropout",
    "return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tie_word_embeddings",
    "is_encoder_decoder", "is_decoder", "add_cross_attention", "tie_encoder_decoder", "cross_attention_hidden_size",
    "chunk_size_feed_forward", "problem_type", "finetuning_task", "id2label", "label2id", "tokenizer_class", "prefix",
    "bos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id", "task_specific_params", "max_length",
    "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature",
    "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "gradient_checkpointing",
    "_attn_implementation", "attn_implementation", "_attn_implementation_autoset", "use_cache",
    "tf_legacy_loss", "forced_decoder_ids", "output_past", "layerdrop", "pruned_heads",  # pruned_heads: must be empty
}
HF_TEXT_KEYS = set(HF_TEXT_DEFAULTS) | {"model_type", "eos_token_id"}
HF_VISION_KEYS = set(HF_VISION_DEFAULTS) | {"model_type"}
HF_TOP_KEYS = {"model_type", "text_config", "vision_config", "text_config_dict", "vision_config_dict", "projection_dim"}
HF_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}


def _hf_section(where: str, cfg: Dict[str, Any], name: str, defaults: Dict[str, Any], keys: set,
                notes: List[str]) -> Dict[str, Any]:
    sub = cfg.get(name)
    legacy = cfg.get(name + "_dict")
    if sub is None and legacy is None:
        notes.append(f"{name}: absent, transformers' defaults used")
    merged = dict(defaults)
    for label, part in ((name, sub), (name + "_dict", legacy)):
        if part is None:
            continue
        if not isinstance(part, dict):
            _fail(where, f"{label} is not an object")
        for key, value in part.items():
            if key not in keys and key not in HF_GENERIC_KEYS:
                _fail(where, f"{label}.{key} is not a key this exporter knows for HuggingFace's CLIP; refused "
                             "rather than ignored")
            if key == "pruned_heads" and value:
                _fail(where, f"{label}.pruned_heads is not supported")
    if sub is not None and legacy is not None:
        for key in set(sub) & set(legacy):
            if sub[key] != legacy[key] and key != "transformers_version":
                _fail(where, f"{name}.{key} = {sub[key]!r} and {name}_dict.{key} = {legacy[key]!r} disagree")
    merged.update(sub or {})
    merged.update(legacy or {})
    absent = sorted(k for k in ("num_attention_heads", "hidden_act", "layer_norm_eps")
                    if k not in (sub or {}) and k not in (legacy or {}))
    if absent:
        notes.append(f"{name}: {', '.join(absent)} absent, transformers' defaults used: "
                     + ", ".join(f"{k} {merged[k]}" for k in absent))
    return merged


def hf_tower_widths(where: str, vc: Dict[str, Any], tc: Dict[str, Any]) -> Tuple[int, int, int, int]:
    """(vision width, heads, text width, heads) of an HF config's towers; each width a multiple of its heads."""
    width, heads = _int(where, "vision_config.hidden_size", vc["hidden_size"]), \
        _int(where, "vision_config.num_attention_heads", vc["num_attention_heads"])
    twidth, theads = _int(where, "text_config.hidden_size", tc["hidden_size"]), \
        _int(where, "text_config.num_attention_heads", tc["num_attention_heads"])
    if width % heads or twidth % theads:
        _fail(where, "hidden_size is not a multiple of num_attention_heads")
    return width, heads, twidth, theads


def parse_hf_config(where: str, cfg: Dict[str, Any], notes: List[str]) -> Dict[str, Any]:
    if not isinstance(cfg, dict):
        _fail(where, "not a JSON object")
    model_type = cfg.get("model_type")
    if model_type != "clip":
        _fail(where, f"model_type {model_type!r} is not supported (only HuggingFace CLIPModel, model_type \"clip\")")
    archs = cfg.get("architectures")
    if archs is not None and archs != ["CLIPModel"]:
        _fail(where, f"architectures {archs} is not supported (only [\"CLIPModel\"])")
    for key, value in cfg.items():
        if key not in HF_TOP_KEYS and key not in HF_GENERIC_KEYS:
            _fail(where, f"{key} is not a key this exporter knows for HuggingFace's CLIPConfig; refused rather than "
                         "ignored")
        if key == "pruned_heads" and value:
            _fail(where, "pruned_heads is not supported")
    tc = _hf_section(where, cfg, "text_config", HF_TEXT_DEFAULTS, HF_TEXT_KEYS, notes)
    vc = _hf_section(where, cfg, "vision_config", HF_VISION_DEFAULTS, HF_VISION_KEYS, notes)
    for sec, c, mt in (("text_config", tc, "clip_text_model"), ("vision_config", vc, "clip_vision_model")):
        if c.get("model_type", mt) != mt:
            _fail(where, f"{sec}.model_type {c['model_type']!r} is not {mt!r}")
        if c["hidden_act"] not in HF_ACTIVATIONS:
            _fail(where, f"{sec}.hidden_act {c['hidden_act']!r} is not supported (quick_gelu, gelu)")
    if tc["hidden_act"] != vc["hidden_act"]:
        _fail(where, f"text_config.hidden_act {tc['hidden_act']!r} and vision_config.hidden_act {vc['hidden_act']!r} "
                     "differ; one activation for both towers is implemented")
    if vc["num_channels"] != 3:
        _fail(where, f"vision_config.num_channels {vc['num_channels']} is not supported (3)")
    eos = tc["eos_token_id"]
    _int(where, "text_config.eos_token_id", eos, minimum=0)
    if eos == 2:
        pool = "argmax"
        notes.append("text pooling: argmax of the ids (text_config.eos_token_id is the legacy value 2, for which "
                     "transformers pools at the largest id)")
    else:
        pool = "eos"
    width, heads, twidth, theads = hf_tower_widths(where, vc, tc)
    return {
        "embed_dim": _int(where, "projection_dim", cfg.get("projection_dim", 512)),
        "image_resolution": _int(where, "vision_config.image_size", vc["image_size"]),
        "vision_patch_size": _int(where, "vision_config.patch_size", vc["patch_size"]),
        "vision_width": width, "vision_heads": heads,
        "vision_layers": _int(where, "vision_config.num_hidden_layers", vc["num_hidden_layers"]),
        "vision_mlp_width": _int(where, "vision_config.intermediate_size", vc["intermediate_size"]),
        "vision_layer_norm_eps": _float(where, "vision_config.layer_norm_eps", vc["layer_norm_eps"]),
        "context_length": _int(where, "text_config.max_position_embeddings", tc["max_position_embeddings"]),
        "vocab_size": _int(where, "text_config.vocab_size", tc["vocab_size"]),
        "transformer_width": twidth, "transformer_heads": theads,
        "transformer_layers": _int(where, "text_config.num_hidden_layers", tc["num_hidden_layers"]),
        "text_mlp_width": _int(where, "text_config.intermediate_size", tc["intermediate_size"]),
        "text_layer_norm_eps": _float(where, "text_config.layer_norm_eps", tc["layer_norm_eps"]),
        "activation": HF_ACTIVATIONS[tc["hidden_act"]],
        "vision_ln_pre": True, "vision_pool": "tok", "vision_final_ln_after_pool": False,
        # eos_id is used by eos pooling only; with the legacy value the end-of-text id (the largest) is recorded.
        "text_causal_mask": True, "text_pool": pool,
        "text_eos_id": eos if pool == "eos" else _int(where, "text_config.vocab_size", tc["vocab_size"]) - 1,
        "text_proj_bias": False, "logit_bias": False,
    }


HF_PREPROCESS_DEFAULTS = {"do_resize": True, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
                          "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
                          "do_normalize": True, "image_mean": OPENAI_MEAN, "image_std": OPENAI_STD,
                          "do_convert_rgb": True}
HF_PREPROCESS_OTHER = {"image_processor_type", "feature_extractor_type", "processor_class"}
HF_PROCESSORS = ("CLIPImageProcessor", "CLIPImageProcessorFast", "CLIPFeatureExtractor")
HF_RESAMPLE = {3: "bicubic", 2: "bilinear"}


def parse_hf_preprocessor(where: str, cfg: Dict[str, Any], image_size: int) -> Dict[str, Any]:
    if not isinstance(cfg, dict):
        _fail(where, "not a JSON object")
    for key in cfg:
        if key not in HF_PREPROCESS_DEFAULTS and key not in HF_PREPROCESS_OTHER:
            _fail(where, f"{key} is not a key this exporter knows for CLIPImageProcessor; refused rather than ignored")
    for key in ("image_processor_type", "feature_extractor_type"):
        if key in cfg and cfg[key] not in HF_PROCESSORS:
            _fail(where, f"{key} {cfg[key]!r} is not supported ({', '.join(HF_PROCESSORS)})")
    c = dict(HF_PREPROCESS_DEFAULTS)
    c.update(cfg)
    for key in ("do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb"):
        _bool(where, key, c[key])
    if not c["do_convert_rgb"]:
        _fail(where, "do_convert_rgb false is not supported (images are always converted to RGB)")
    if not c["do_rescale"] or abs(_float(where, "rescale_factor", c["rescale_factor"]) * 255 - 1) > 1e-6:
        _fail(where, f"do_rescale {c['do_rescale']} / rescale_factor {c['rescale_factor']}: only do_rescale with "
                     "1/255 is supported")
    if not c["do_resize"]:
        _fail(where, "do_resize false is not supported (images are resized to the model's input size)")

    def edge(value, what):
        if isinstance(value, int):
            return {"shortest_edge": value}
        if not isinstance(value, dict):
            _fail(where, f"{what} {value!r} is not an integer or an object")
        return value

    size, crop = edge(c["size"], "size"), edge(c["crop_size"], "crop_size")
    if "shortest_edge" in crop:  # an int crop_size means a square crop
        crop = {"height": crop["shortest_edge"], "width": crop["shortest_edge"]}
    if set(size) == {"shortest_edge"}:
        if not c["do_center_crop"] or crop != {"height": image_size, "width": image_size} \
                or size["shortest_edge"] != image_size:
            _fail(where, f"size {c['size']} with do_center_crop {c['do_center_crop']} and crop_size {c['crop_size']}: "
                         f"only resizing the shorter side to {image_size} and centre-cropping {image_size}x"
                         f"{image_size} is supported for this model")
        resize, crop_rule = "shorter_side", "center"
    elif set(size) == {"height", "width"}:
        if size != {"height": image_size, "width": image_size}:
            _fail(where, f"size {c['size']} is not the model's {image_size}x{image_size}")
        if c["do_center_crop"] and crop != {"height": image_size, "width": image_size}:
            _fail(where, f"crop_size {c['crop_size']} after resizing to {image_size}x{image_size} is not supported")
        resize, crop_rule = "stretch", "none"
    else:
        _fail(where, f"size {c['size']} is not supported ({{\"shortest_edge\": n}} or {{\"height\", \"width\"}})")
    resample = c["resample"]
    if resample not in HF_RESAMPLE:
        _fail(where, f"resample {resample!r} is not supported (3 bicubic, 2 bilinear)")
    mean = _triple(where, "image_mean", c["image_mean"]) if c["do_normalize"] else [0.0, 0.0, 0.0]
    std = _triple(where, "image_std", c["image_std"]) if c["do_normalize"] else [1.0, 1.0, 1.0]
    if any(s <= 0 for s in std):
        _fail(where, f"image_std {std} has a value <= 0")
    return {"resize": resize, "interpolation": HF_RESAMPLE[resample], "crop": crop_rule, "fill": 0,
            "mean": mean, "std": std}


_HF_LAYER = re.compile(r"^(text|vision)_model\.encoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER_MAP = {"self_attn.out_proj.weight": "attn.out_proj.weight", "self_attn.out_proj.bias": "attn.out_proj.bias",
                 "layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
                 "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
                 "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
                 "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias"}
_HF_PLAIN = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight", "text_model.final_layer_norm.bias": "ln_final.bias",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight", "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "logit_scale": "logit_scale",
}
_HF_TRANSPOSED = {"visual_projection.weight": "visual.proj", "text_projection.weight": "text_projection"}
_HF_POSITION_IDS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")


def hf_to_openai(where: str, raw: Dict[str, torch.Tensor], notes: List[str]) -> "OrderedDict[str, torch.Tensor]":
    """HF CLIPModel keys -> OpenAI's: q/k/v fused into in_proj, the projections transposed to [width, embed]."""
    sd: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    qkv: Dict[Tuple[str, str], Dict[str, torch.Tensor]] = {}
    for key, t in raw.items():
        if key in _HF_POSITION_IDS:
            n = t.shape[-1]
            if t.dim() not in (1, 2) or not torch.equal(t.reshape(-1).long(), torch.arange(n)):
                _fail(where, f"{key} is not 0..{n - 1}; old transformers used such a buffer as the positions and new "
                             "ones ignore it, so the model's meaning is ambiguous")
            notes.append(f"{key}: an old transformers buffer (0..{n - 1}), dropped")
            continue
        if key in _HF_PLAIN:
            sd[_HF_PLAIN[key]] = t
            continue
        if key in _HF_TRANSPOSED:
            sd[_HF_TRANSPOSED[key]] = t.t().contiguous()  # nn.Linear weight [embed, width] -> [width, embed]
            continue
        m = _HF_LAYER.match(key)
        if m:
            tower, index, rest = m.groups()
            prefix = ("visual." if tower == "vision" else "") + f"transformer.resblocks.{index}."
            if rest in _HF_LAYER_MAP:
                sd[prefix + _HF_LAYER_MAP[rest]] = t
                continue
            mq = re.match(r"^self_attn\.([qkv])_proj\.(weight|bias)$", rest)
            if mq:
                qkv.setdefault((prefix, mq.group(2)), {})[mq.group(1)] = t
                continue
        _fail(where, f"tensor {key} is not part of HuggingFace's CLIPModel as this exporter maps it (refused "
                     "rather than ignored)")
    for (prefix, kind), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            _fail(where, f"{prefix}: self_attn has {sorted(parts)} {kind} projections, not q, k and v")
        # nn.MultiheadAttention's packed layout: rows [0, W) q, [W, 2W) k, [2W, 3W) v.
        sd[prefix + ("attn.in_proj_weight" if kind == "weight" else "attn.in_proj_bias")] = \
            torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return sd


def _hf_tokenizer(folder: str, vocab_size: int, context_length: int, pool: str, eos_id: int,
                  notes: List[str]) -> Dict[str, Any]:
    vocab_path, merges_path = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    sot, eot = OPENAI_SPECIALS
    allowed = {"tokenizer_class", "bos_token", "eos_token", "unk_token", "pad_token", "do_lower_case",
               "model_max_length", "errors", "add_prefix_space", "clean_up_tokenization_spaces", "name_or_path",
               "special_tokens_map_file", "added_tokens_decoder", "processor_class", "model_input_names",
               "padding_side", "truncation_side", "split_special_tokens", "extra_special_tokens", "additional_special_tokens"}

    def content(v):
        return v.get("content") if isinstance(v, dict) else v

    specials = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        c = _read_json(path)
        if not isinstance(c, dict):
            _fail(path, "not a JSON object")
        for key, value in c.items():
            if key not in allowed:
                _fail(path, f"{key} is not a key this exporter knows for CLIPTokenizer; refused rather than ignored")
        if c.get("tokenizer_class", "CLIPTokenizer") not in ("CLIPTokenizer", "CLIPTokenizerFast"):
            _fail(path, f"tokenizer_class {c['tokenizer_class']!r} is not CLIPTokenizer")
        if c.get("do_lower_case", True) is not True:
            _fail(path, "do_lower_case false is not supported (CLIP's tokenizer lower-cases)")
        if c.get("add_prefix_space", False) or c.get("split_special_tokens", False):
            _fail(path, "add_prefix_space / split_special_tokens true are not supported")
        if c.get("additional_special_tokens") or c.get("extra_special_tokens"):
            _fail(path, "additional special tokens are not supported")
        for tid, entry in (c.get("added_tokens_decoder") or {}).items():
            if content(entry) not in OPENAI_SPECIALS:
                _fail(path, f"added token {tid} {content(entry)!r} is not supported (only {', '.join(OPENAI_SPECIALS)})")
        mml = c.get("model_max_length")
        if isinstance(mml, int) and mml < 10 ** 6 and mml != context_length:
            _fail(path, f"model_max_length {mml} differs from the text tower's max_position_embeddings {context_length}")
        for key in ("bos_token", "eos_token"):
            if key in c:
                specials[key] = content(c[key])
    sot, eot = specials.get("bos_token", sot), specials.get("eos_token", eot)
    for path in (vocab_path, merges_path):
        if not os.path.isfile(path):
            return {"format": None, "missing": path, "sot_token": sot, "eot_token": eot}
    vocab = _read_json(vocab_path)
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and type(v) is int for k, v in vocab.items()):
        _fail(vocab_path, "not a JSON object of token -> integer id")
    if sorted(vocab.values()) != list(range(len(vocab))):
        _fail(vocab_path, "ids are not 0..N-1, each once")
    if len(vocab) != vocab_size:
        _fail(vocab_path, f"{len(vocab)} tokens, but the model's token embedding has {vocab_size} rows")
    for token in (sot, eot):
        if token not in vocab:
            _fail(vocab_path, f"special token {token!r} is not in the vocabulary")
    if pool == "eos" and vocab[eot] != eos_id:
        _fail(vocab_path, f"{eot!r} has id {vocab[eot]}, but the text is pooled at eos_token_id {eos_id}")
    if pool == "argmax" and vocab[eot] != vocab_size - 1:
        _fail(vocab_path, f"{eot!r} has id {vocab[eot]}, not the largest id, which argmax pooling needs")
    with open(merges_path, "r", encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    merges = lines[1:]  # CLIPTokenizer skips the first line ("#version: 0.2") whatever it holds
    if not lines or not lines[0].startswith("#version"):
        notes.append(f"{merges_path}: the first line is not a '#version' header; it is skipped as CLIPTokenizer does")
    for i, line in enumerate(merges[:1000]):
        if len(line.split(" ")) != 2:
            _fail(merges_path, f"line {i + 2} is not a BPE merge ('a b'): {line[:60]!r}")
    return {"format": "hf", "sot_token": sot, "eot_token": eot, "vocab_path": vocab_path, "merges_path": merges_path,
            "merges_available": len(merges)}


def _hf_files(folder: str, what: str) -> Tuple[str, str]:
    """(weights file, preprocessor_config.json) of an HF folder; a missing one is refused by name."""
    weights = None
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        if os.path.isfile(os.path.join(folder, name)):
            weights = os.path.join(folder, name)
            break
    if weights is None:
        _fail(folder, f"a HuggingFace {what} folder needs model.safetensors or pytorch_model.bin (or a sharded "
                      "checkpoint's *.index.json)")
    pp_path = os.path.join(folder, "preprocessor_config.json")
    if not os.path.isfile(pp_path):
        _fail(folder, "preprocessor_config.json is missing (the image processor settings are read from it)")
    return weights, pp_path


def _load_hf(folder: str, activation: Optional[str], notes: List[str]) -> LoadedCheckpoint:
    cfg_path = os.path.join(folder, "config.json")
    opts = parse_hf_config(cfg_path, _read_json(cfg_path), notes)
    if activation is not None and activation != opts["activation"]:
        _fail(cfg_path, f"--activation {activation} contradicts hidden_act {opts['activation']!r}")
    weights, pp_path = _hf_files(folder, "CLIP")
    preprocess = parse_hf_preprocessor(pp_path, _read_json(pp_path), opts["image_resolution"])
    raw, container = load_sharded(weights) if weights.endswith(".index.json") else load_tensor_file(weights)
    sd = hf_to_openai(weights, raw, notes)
    dims = _infer_openai_dims(weights, sd)
    for key, value in dims.items():
        if key in ("transformer_heads",):
            continue
        if opts[key] != value:
            _fail(weights, f"config.json gives {key} {opts[key]}, but the tensors have {value}")
    tokenizer = _hf_tokenizer(folder, opts["vocab_size"], opts["context_length"], opts["text_pool"],
                              opts["text_eos_id"], notes)
    source = {k: v for k, v in raw.items() if k not in _HF_POSITION_IDS}
    return LoadedCheckpoint(
        layout="hf_clip", description=f"HuggingFace CLIPModel folder (config.json + {os.path.basename(weights)})",
        state_dict=OrderedDict((k, v.float()) for k, v in sd.items()), options=opts, preprocess=preprocess,
        tokenizer=tokenizer,
        reference=lambda arch, pixels, ids: hf_clip_features(source, arch, pixels, ids),
        reference_name="functional HF-layout forward (separate q/k/v)", source_sha256=tensors_sha256(raw),
        default_name=os.path.basename(os.path.abspath(folder)), notes=notes,
        weights_path=weights, what="HuggingFace's CLIPModel")


def _load_hf_siglip(folder: str, cfg: Dict[str, Any], activation: Optional[str], notes: List[str]) -> LoadedCheckpoint:
    """A HuggingFace SiglipModel folder (layouts_siglip.py): HF's semantics, activations as its config says."""
    from layouts_siglip import hf_siglip_features, hf_siglip_tensors, parse_hf_siglip_config, sentencepiece_tokenizer
    cfg_path = os.path.join(folder, "config.json")
    opts = parse_hf_siglip_config(cfg_path, cfg, notes)
    if activation is not None:
        _fail(cfg_path, "--activation does not apply: config.json's hidden_act gives each tower's activation")
    weights, pp_path = _hf_files(folder, "SigLIP")
    pp = _read_json(pp_path)
    if not isinstance(pp, dict):
        _fail(pp_path, "not a JSON object")
    for key in ("image_processor_type", "feature_extractor_type"):
        if key in pp and pp[key] not in ("SiglipImageProcessor", "SiglipImageProcessorFast"):
            _fail(pp_path, f"{key} {pp[key]!r} is not supported (SiglipImageProcessor)")
    pp = dict(pp)
    pp.setdefault("do_center_crop", False)  # SiglipImageProcessor resizes to size, it never crops
    pp.setdefault("size", {"height": opts["image_resolution"], "width": opts["image_resolution"]})
    pp.setdefault("image_mean", [0.5, 0.5, 0.5])
    pp.setdefault("image_std", [0.5, 0.5, 0.5])
    pp.setdefault("resample", 3)
    for key in ("image_processor_type", "feature_extractor_type"):
        pp.pop(key, None)
    preprocess = parse_hf_preprocessor(pp_path, pp, opts["image_resolution"])
    raw, container = load_sharded(weights) if weights.endswith(".index.json") else load_tensor_file(weights)
    sd = hf_siglip_tensors(weights, raw, notes)
    tokenizer = sentencepiece_tokenizer(folder, opts["vocab_size"], opts["context_length"], "hf_siglip", None, notes)
    opts["text_pad_id"] = tokenizer["pad_id"]
    opts["text_eos_id"] = opts["vocab_size"] - 1
    source = {k: v for k, v in raw.items() if k not in _HF_POSITION_IDS}
    return LoadedCheckpoint(
        layout="hf_siglip", description=f"HuggingFace SiglipModel folder (config.json + {os.path.basename(weights)})",
        state_dict=OrderedDict((k, v.float()) for k, v in sd.items()), options=opts, preprocess=preprocess,
        tokenizer=tokenizer,
        reference=lambda arch, pixels, ids: hf_siglip_features(source, arch, pixels, ids),
        reference_name="functional HF SiglipModel forward (separate q/k/v, torch MHA head)",
        source_sha256=tensors_sha256(raw), default_name=os.path.basename(os.path.abspath(folder)), notes=notes,
        weights_path=weights, what="HuggingFace's SiglipModel")


# ---- detection -----------------------------------------------------------------------------------

def load_checkpoint(path: str, activation: Optional[str] = None, open_clip_config: Optional[str] = None,
                    layout: Optional[str] = None, trust_code: bool = False) -> LoadedCheckpoint:
    """Detects the layout of `path` (a file or a folder) and loads it; CheckpointError when refused.
    trust_code: load TorchScript archives with torch.jit.load, which runs their code (default: their
    tensors are read without running anything, and an archive that needs its code is refused)."""
    token = _TRUST_CODE.set(bool(trust_code))
    try:
        return _load_checkpoint(path, activation, open_clip_config, layout)
    finally:
        _TRUST_CODE.reset(token)


def _load_checkpoint(path: str, activation: Optional[str], open_clip_config: Optional[str],
                     layout: Optional[str]) -> LoadedCheckpoint:
    notes: List[str] = []
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if os.path.isdir(path):
        has_oc = os.path.isfile(os.path.join(path, "open_clip_config.json"))
        has_hf = os.path.isfile(os.path.join(path, "config.json"))
        if open_clip_config is not None:
            _fail(path, "--open-clip-config is for a bare checkpoint file; a folder carries its own config")
        if layout is None:
            if has_oc and has_hf:
                notes.append("the folder holds both open_clip and HuggingFace files; using open_clip's (pass "
                             "--layout hf_clip for the others)")
            layout = "open_clip" if has_oc else "hf_clip" if has_hf else None
        if layout == "open_clip":
            if not has_oc:
                _fail(path, "no open_clip_config.json in this folder")
            for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
                weights = os.path.join(path, name)
                if os.path.isfile(weights):
                    break
            else:
                _fail(path, "an open_clip folder needs open_clip_model.safetensors or open_clip_pytorch_model.bin")
            return _load_open_clip(path, weights, os.path.join(path, "open_clip_config.json"), activation, notes,
                                   f"open_clip hub folder (open_clip_config.json + {os.path.basename(weights)})",
                                   os.path.basename(os.path.abspath(path)))
        if layout in ("hf_clip", "hf_siglip"):
            if not has_hf:
                _fail(path, "no config.json in this folder")
            cfg = _read_json(os.path.join(path, "config.json"))
            if isinstance(cfg, dict) and cfg.get("model_type") in ("siglip", "siglip2"):
                return _load_hf_siglip(path, cfg, activation, notes)
            if isinstance(cfg, dict) and cfg.get("model_type") != "clip":
                _fail(os.path.join(path, "config.json"), f"model_type {cfg.get('model_type')!r} is not supported (only "
                      "HuggingFace CLIPModel, model_type \"clip\"; e.g. SigLIP is a different architecture)")
            return _load_hf(path, activation, notes)
        if layout is not None:
            _fail(path, f"--layout {layout} does not apply to a folder (open_clip, hf_clip, hf_siglip)")
        _fail(path, "a folder must hold an open_clip model (open_clip_config.json + open_clip_model.safetensors or "
                    "open_clip_pytorch_model.bin) or a HuggingFace CLIPModel (config.json + model.safetensors or "
                    "pytorch_model.bin)")
    if layout not in (None, "openai_torchscript", "openai_state_dict", "open_clip"):
        _fail(path, f"--layout {layout} does not apply to a checkpoint file")
    if open_clip_config is not None or layout == "open_clip":
        if open_clip_config is None:
            _fail(path, "--layout open_clip for a file needs --open-clip-config")
        return _load_open_clip(path, path, open_clip_config, activation, notes,
                               "open_clip checkpoint file (<container>) + "
                               f"{os.path.basename(open_clip_config)}",
                               os.path.splitext(os.path.basename(path))[0])
    ckpt = _load_openai(path, activation, notes)
    if layout is not None and layout != ckpt.layout:
        _fail(path, f"--layout {layout}, but the file is a {ckpt.layout}")
    return ckpt
