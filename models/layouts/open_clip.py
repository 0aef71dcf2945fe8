"""open_clip's layout: a hub folder (open_clip_config.json + open_clip_model.safetensors or
open_clip_pytorch_model.bin), or a checkpoint file plus an open_clip config (that JSON, or a plain
model_cfg as in open_clip's model_configs/*.json). Native CLIP towers here; the timm SigLIP image
towers and SentencePiece tokenizers of its SigLIP configs are siglip.py's."""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from reference_forward import openai_layout_features

from .common import (OPENAI_MEAN, OPENAI_STD, LoadedCheckpoint, _bool, _fail, _float, _infer_openai_dims, _int,
                     _read_json, _triple, load_tensor_file, tensors_sha256)
from .siglip import open_clip_siglip_features, sentencepiece_tokenizer, timm_vision_options, timm_vision_tensors

OPEN_CLIP_SPECIALS = ("<start_of_text>", "<end_of_text>")

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
    siglip = bool(vc.get("timm_model_name"))  # a timm SigLIP image tower (siglip.py)
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
