"""OpenAI's layout: a TorchScript archive as released (ViT-B-32.pt; QuickGELU by construction), or a
bare state dict with OpenAI's key names (torch.save or .safetensors), whose activation must be given."""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional

import torch

from clip_model import clean_state_dict
from reference_forward import openai_layout_features

from .common import (_TRUST_CODE, ACTIVATION_HELP, OPENAI_MEAN, OPENAI_SPECIALS, OPENAI_STD, LoadedCheckpoint, _fail,
                     _infer_openai_dims, load_tensor_file, tensors_sha256)


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
