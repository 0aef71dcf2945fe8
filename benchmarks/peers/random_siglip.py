#!/usr/bin/python3
"""A random-weight SigLIP in open_clip's hub layout, at a released model's size, for the peer benchmark.

    /usr/bin/python3 benchmarks/peers/random_siglip.py --model siglip-b16 --out W/random-siglip [--seed 0]

writes the folder models/export_clip.py reads for open_clip's `ViT-*-SigLIP*` checkpoints (see
../shared/clip/README.md, siglip-tiny/): open_clip_config.json (model_cfg as open_clip's
model_configs/ViT-B-16-SigLIP.json or ViT-SO400M-14-SigLIP.json, with siglip-tiny's tokenizer keys and
preprocess_cfg), open_clip_model.safetensors (keys `visual.trunk.*` of timm's VisionTransformer with its
MAP head, `text.*`, `logit_scale`, `logit_bias`) and the tokenizer files of ../shared/clip/siglip-tiny
(its T5-style spiece.model has 4000 pieces, not the released 32000: the token embedding keeps its 32000
rows, the tokenizer never produces ids >= 4000; the benchmark times the towers on fixed ids, so only the
ids' values, not their count, differ from a real checkpoint's).

The tensors are models/clip_model.py's CLIP built from the exporter's own reading of that config
(CLIP paper initialisation; the tensors it leaves at zero -- patch position embeddings, MAP probe,
projection bias -- drawn too), renamed with the inverse of models/layouts/siglip.py's tables.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

import torch

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TINY = os.path.abspath(os.path.join(REPO, "..", "shared", "clip", "siglip-tiny"))
sys.path.insert(0, os.path.join(REPO, "models"))

from layouts.open_clip import parse_open_clip_config  # noqa: E402
from clip_model import CLIP  # noqa: E402
from layouts.siglip import _TIMM_BLOCK, _TIMM_POOL, _map_prefix  # noqa: E402
from safetensors_io import write_safetensors  # noqa: E402

# open_clip's model_configs/NAME.json (text_cfg; vision_cfg is the timm entry at its default size).
MODELS = {
    "siglip-b16": ("ViT-B-16-SigLIP", "vit_base_patch16_siglip_224", 768,
                   dict(context_length=64, vocab_size=32000, width=768, heads=12, layers=12)),
    "siglip-so400m14": ("ViT-SO400M-14-SigLIP", "vit_so400m_patch14_siglip_224", 1152,
                        dict(context_length=16, vocab_size=32000, width=1152, heads=16, layers=27, mlp_ratio=3.7362)),
}


def open_clip_config(model: str) -> dict:
    with open(os.path.join(TINY, "open_clip_config.json")) as f:
        cfg = json.load(f)
    name, timm_name, embed_dim, text = MODELS[model]
    mc = cfg["model_cfg"]
    mc["embed_dim"] = embed_dim
    mc["vision_cfg"] = {"image_size": 224, "timm_model_name": timm_name, "timm_model_pretrained": False,
                        "timm_pool": "map", "timm_proj": "none"}
    mc["text_cfg"] = dict(text, hf_tokenizer_name="timm/" + name,
                          tokenizer_kwargs=mc["text_cfg"]["tokenizer_kwargs"], no_causal_mask=True, proj_bias=True,
                          pool_type="last", norm_kwargs={"eps": 1e-6})
    return cfg


def open_clip_tensors(sd: dict) -> dict:
    """clip_model's state dict (OpenAI names) -> open_clip's SigLIP keys (CustomTextCLIP + timm trunk)."""
    block = {dst: src for src, dst in _TIMM_BLOCK.items()}
    pool = {dst: src for src, dst in _TIMM_POOL.items()}
    out = {}
    for k, t in sd.items():
        if k.startswith("visual.transformer.resblocks."):
            index, _, sub = k[len("visual.transformer.resblocks."):].partition(".")
            out[f"visual.trunk.blocks.{index}.{_map_prefix(sub, block)}"] = t
        elif k.startswith("visual.attn_pool."):
            out["visual.trunk.attn_pool." + _map_prefix(k[len("visual.attn_pool."):], pool)] = t
        elif k == "visual.positional_embedding":
            out["visual.trunk.pos_embed"] = t.unsqueeze(0)
        elif k.startswith(("visual.conv1.", "visual.ln_post.")):
            out[("visual.trunk.patch_embed.proj." if "conv1" in k else "visual.trunk.norm.") + k.split(".")[-1]] = t
        elif k == "text_projection":
            out["text.text_projection.weight"] = t.t().contiguous()
        elif k == "text_projection_bias":
            out["text.text_projection.bias"] = t
        elif k.startswith("logit_"):
            out[k] = t
        else:
            out["text." + k] = t
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--out", required=True, help="output folder (replaced)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cfg = open_clip_config(args.model)
    opts, _ = parse_open_clip_config(args.out, cfg, [])
    opts.pop("_tokenizer_clean", None)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        model = CLIP(**opts)
        for t in (model.visual.positional_embedding, model.visual.attn_pool.latent, model.text_projection_bias):
            t.normal_(std=0.02)
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    tensors = open_clip_tensors(model.state_dict())
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    for name in ("spiece.model", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(TINY, name), os.path.join(args.out, name))
    with open(os.path.join(TINY, "tokenizer_config.json")) as f:
        tok = json.load(f)
    tok["model_max_length"] = opts["context_length"]
    for name, obj in (("tokenizer_config.json", tok), ("open_clip_config.json", cfg)):
        with open(os.path.join(args.out, name), "w") as f:
            json.dump(obj, f, indent=1)
    write_safetensors(os.path.join(args.out, "open_clip_model.safetensors"), tensors)
    n = sum(t.numel() for t in tensors.values())
    print(f"random_siglip: {args.model}: {len(tensors)} tensors, {n / 1e6:.1f}M parameters -> {args.out} (seed "
          f"{args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
