#!/usr/bin/python3
"""Writes a random-weight CLIP state dict with the exact shape of a released OpenAI model.

    /usr/bin/python3 models/make_random_checkpoint.py --arch ViT-B/32 --out /tmp/vit-b-32-random.pt [--seed 0]

The file has OpenAI's key names (torch.save of CLIP.state_dict()), so models/export_clip.py and OpenAI's
own build_model accept it; it lets a real-size export and runtime be tested without downloading weights.
A bare state dict does not record its activation; these weights are OpenAI's QuickGELU architecture:

    /usr/bin/python3 models/export_clip.py --checkpoint /tmp/vit-b-32-random.pt --activation quick_gelu \
        --vocab bpe_simple_vocab_16e6.txt.gz --out /tmp/vit-b-32-random
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_model import CLIP  # noqa: E402

# Constructor arguments of OpenAI's released ViT models (published shapes).
ARCHS = {
    "ViT-B/32": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
    "ViT-B/16": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
    "ViT-L/14": dict(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024, vision_patch_size=14,
                     context_length=77, vocab_size=49408, transformer_width=768, transformer_heads=12,
                     transformer_layers=12),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, choices=sorted(ARCHS), help="architecture to mimic")
    p.add_argument("--out", required=True, help="output .pt path (torch.save of the state dict)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    model = CLIP(**ARCHS[args.arch])
    sd = model.state_dict()
    n_params = sum(t.numel() for t in sd.values())
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(sd, args.out)
    print(f"{args.arch}: {len(sd)} tensors, {n_params / 1e6:.1f}M parameters -> {args.out} "
          f"({os.path.getsize(args.out) / 1e6:.1f} MB, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
