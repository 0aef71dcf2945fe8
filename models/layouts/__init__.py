"""Checkpoint layouts the exporter reads, each turned into clip_model's OpenAI-style state dict plus the
architecture options, preprocessing and tokenizer settings that its files declare.

    ckpt = load_checkpoint("laion/CLIP-ViT-B-32-laion2B-s34B-b79K/", activation=None, open_clip_config=None)
    ckpt.layout        # "openai_torchscript" | "openai_state_dict" | "open_clip" | "hf_clip"
    ckpt.state_dict    # OpenAI key names (+ text_projection_bias, logit_bias), float tensors
    ckpt.options       # clip_model.CLIP keyword options: activation, head counts, pooling, eps, ...
    ckpt.preprocess    # config.json "preprocess" (image_size filled in by the caller's model)
    ckpt.tokenizer     # {"format", "sot_token", "eot_token", "vocab_path", "merges_path"}
    ckpt.reference(pixels, ids)   # independent eager forward of the source layout (reference_forward.py)

Layouts, one module each (common.py: what they share; this module: the detection):
- openai.py: OpenAI TorchScript archive (ViT-B-32.pt as released): QuickGELU by construction; or
  a bare state dict (torch.save or .safetensors) with OpenAI's keys: the weights do not say which
  activation they were trained with, so `activation` must be given (or an open_clip config).
- open_clip.py: a hub folder (open_clip_config.json + open_clip_model.safetensors or
  open_clip_pytorch_model.bin), or a checkpoint file plus `open_clip_config` (that JSON, or a plain
  model_cfg as in open_clip's model_configs/*.json).
- hf_clip.py: a HuggingFace CLIPModel folder: config.json (model_type "clip"), model.safetensors or
  pytorch_model.bin (or a sharded checkpoint's *.index.json), preprocessor_config.json, vocab.json +
  merges.txt (+ tokenizer_config.json, special_tokens_map.json).
- siglip.py: SigLIP / SigLIP2, as open_clip folders (timm image towers) or HF SiglipModel folders.

Nothing is guessed: every key of every config file is either implemented, accepted because it cannot
change inference (each module's tables say why, key by key), or refused with its name; every tensor is
mapped or refused with its name.
"""
from __future__ import annotations

import os
from typing import List, Optional

from clip_model import CheckpointError

from .common import (_TRUST_CODE, ACTIVATION_HELP, LAYOUTS, OPENAI_MEAN, OPENAI_STD, LoadedCheckpoint, _fail,
                     _read_json, build_model, hash_tensors, load_tensor_file, tensors_sha256)
from .hf_clip import _load_hf
from .open_clip import _load_open_clip
from .openai import _load_openai
from .siglip import _load_hf_siglip

__all__ = ["LoadedCheckpoint", "load_checkpoint", "build_model", "load_tensor_file", "tensors_sha256", "hash_tensors",
           "LAYOUTS", "OPENAI_MEAN", "OPENAI_STD", "ACTIVATION_HELP"]


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
