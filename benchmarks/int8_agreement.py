#!/usr/bin/python3
"""int8 vs float32 agreement on real photos, through the zsclip tool.

Makes scaled, cropped and mirrored copies of ../shared/images (deterministic), embeds them with both
exports and 1000 ImageNet prompts ("a photo of a {}.", class names from ../shared/clip/prompts.json)
with `zsclip embed`, and prints the per-image cosine of the image features and the top-1 agreement:
each model with its own text features (what a user of the int8 export gets) and both with the float32
text features (the image tower alone).

  /usr/bin/python3 benchmarks/int8_agreement.py --fp32 /tmp/zt/b32/fold --int8 /tmp/zt/b32/int8fold
  # a load-time precision of the same float32 export (ModelOptions::dtype, `--precision`):
  /usr/bin/python3 benchmarks/int8_agreement.py --fp32 /tmp/zt/b32/fold --precision bfloat16   # or int8
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))


def photo_set(shared, out_dir, count):
    """count variants of the photos: scale 0.4-1.6, a random crop of 60-100% of each side, half mirrored."""
    rng = np.random.default_rng(0)
    src = sorted(p for p in os.listdir(os.path.join(shared, "images"))
                 if p.lower().endswith((".png", ".jpg")) and p != "truncated.jpg")
    paths = []
    for k in range(count):
        im = Image.open(os.path.join(shared, "images", src[k % len(src)])).convert("RGB")
        s = rng.uniform(0.4, 1.6)
        im = im.resize((max(16, int(im.width * s)), max(16, int(im.height * s))), Image.BICUBIC)
        cw, ch = int(im.width * rng.uniform(0.6, 1.0)), int(im.height * rng.uniform(0.6, 1.0))
        x0, y0 = rng.integers(0, im.width - cw + 1), rng.integers(0, im.height - ch + 1)
        im = im.crop((x0, y0, x0 + cw, y0 + ch))
        if k % 2:
            im = ImageOps.mirror(im)
        path = os.path.join(out_dir, f"photo_{k:03d}.png")
        im.save(path)
        paths.append(path)
    return paths


def embed(zsclip, model, images, texts, extra=()):
    cmd = [zsclip, "embed", "--model", model, *extra]
    for p in images:
        cmd += ["--image", p]
    for t in texts:
        cmd += ["--text", t]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    d = json.loads(out)
    img = np.array([x["features"] for x in d["images"]], dtype=np.float64)
    txt = np.array([x["features"] for x in d["texts"]], dtype=np.float64)
    return img, txt


def normalise(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fp32", required=True)
    ap.add_argument("--int8", help="the export to compare (default: --fp32, with --precision)")
    ap.add_argument("--precision", help="load the compared model with `--precision P` (bfloat16, int8)")
    ap.add_argument("--zsclip", default=os.path.join(HERE, "..", "build", "bin", "zsclip"))
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared"))
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--classes", type=int, default=1000)
    args = ap.parse_args()
    if not args.int8 and not args.precision:
        ap.error("give --int8 DIR, --precision P, or both")
    other = args.int8 or args.fp32
    extra = ["--precision", args.precision] if args.precision else []
    name = (args.precision or "int8") + ("" if not args.int8 else f" ({args.int8})")
    with open(os.path.join(args.shared, "clip", "prompts.json")) as f:
        classes = json.load(f)["ImageNet"]["classes"][: args.classes]
    texts = [f"a photo of a {c}." for c in classes]
    with tempfile.TemporaryDirectory() as tmp:
        images = photo_set(args.shared, tmp, args.images)
        fi, ft = embed(args.zsclip, args.fp32, images, texts)
        qi, qt = embed(args.zsclip, other, images, texts, extra)
    cos = (normalise(fi) * normalise(qi)).sum(axis=1)
    top_f = (normalise(fi) @ normalise(ft).T).argmax(axis=1)
    top_q_own = (normalise(qi) @ normalise(qt).T).argmax(axis=1)
    top_q_img = (normalise(qi) @ normalise(ft).T).argmax(axis=1)
    print(f"{len(images)} photos (scaled/cropped/mirrored copies of {args.shared}/images), {len(classes)} classes")
    tcos = (normalise(ft) * normalise(qt)).sum(axis=1)
    print(f"image feature cosine {name} vs fp32: min {cos.min():.5f}  mean {cos.mean():.5f}")
    print(f"text feature cosine {name} vs fp32 ({len(texts)} prompts): min {tcos.min():.5f}  mean {tcos.mean():.5f}")
    print(f"top-1 agreement, each model with its own text features: {100 * (top_f == top_q_own).mean():.1f}%")
    print(f"top-1 agreement, both with the fp32 text features:       {100 * (top_f == top_q_img).mean():.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
