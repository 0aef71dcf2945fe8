#!/usr/bin/python3
"""OpenAI's CLIP pipeline as users run it in Python, against `zsclip bench` on the same images.

Python side: models/clip_model.py in eager mode (build_from_state_dict on the checkpoint), PIL +
torchvision preprocessing (Resize(224, BICUBIC), CenterCrop, ToTensor, Normalize), encode_image,
then the zero-shot head (normalise, scale * features @ W^T for a 1000-class W, softmax, top-5).
Each figure is taken with torch.set_num_threads 1 and 2 and the faster one is kept.
Then `zsclip bench --json` runs on the same images; Python and zsclip alternate --rounds times (this VM's
speed drifts by +-10% over minutes) and the ratio of the medians zsclip/Python is printed.

  /usr/bin/python3 benchmarks/bench_python.py --checkpoint /tmp/zt/b32/random.pt \
      --model /tmp/zt/b32/fp32 [--zsclip build-perf/bin/zsclip] [--batch-size 16] [--iterations 3]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

import torch
from PIL import Image
from torchvision import transforms as T

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))
import clip_model  # noqa: E402

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def default_images():
    d = os.path.join(HERE, "..", "..", "shared", "images")
    if not os.path.isdir(d):
        d = os.path.join(HERE, "..", "examples", "images")
    return sorted(p for p in glob.glob(os.path.join(d, "*"))
                  if os.path.basename(p) != "truncated.jpg" and p.lower().endswith((".jpg", ".jpeg", ".png")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="/tmp/zt/b32/random.pt")
    ap.add_argument("--model", default="/tmp/zt/b32/fp32", help="the zsclip export of the same checkpoint")
    ap.add_argument("--zsclip", default=os.path.join(HERE, "..", "build-perf", "bin", "zsclip"))
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="thread counts to try; the fastest is kept")
    ap.add_argument("--images", nargs="*")
    ap.add_argument("--skip-zsclip", action="store_true")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternate Python and zsclip this many times and report medians (the VM's speed drifts)")
    args = ap.parse_args()
    images = args.images or default_images()
    bs, iters = args.batch_size, args.iterations

    sd = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    model = clip_model.build_from_state_dict(sd).eval()
    size = 224  # ViT-B/32 input
    pre = T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
                     T.ToTensor(), T.Normalize(MEAN, STD)])
    d = model.image_projection.shape[1]
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1000, d, generator=g)
    w = w / w.norm(dim=-1, keepdim=True)
    scale = model.logit_scale.exp()

    def head(f):
        f = f / f.norm(dim=-1, keepdim=True)
        probs = (scale * f @ w.t()).softmax(dim=-1)
        return probs.topk(5, dim=-1)

    paths = [images[i % len(images)] for i in range(bs * iters)]
    batch = torch.stack([pre(Image.open(p).convert("RGB")) for p in paths[:bs]])

    def python_round():
        results = {}
        for nt in [int(x) for x in args.threads.split(",")]:
            torch.set_num_threads(nt)
            with torch.no_grad():
                model.encode_image(batch)  # warm-up
                t0 = time.perf_counter()
                for _ in range(iters):
                    feats = model.encode_image(batch)
                enc = bs * iters / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                reps = 0
                while time.perf_counter() - t0 < 0.3:
                    head(feats)
                    reps += 1
                head_ms = (time.perf_counter() - t0) * 1000 / (reps * bs)
                t0 = time.perf_counter()
                for b in range(0, len(paths), bs):
                    x = torch.stack([pre(Image.open(p).convert("RGB")) for p in paths[b:b + bs]])
                    head(model.encode_image(x))
                pipe = len(paths) / (time.perf_counter() - t0)
            results[nt] = {"encode_images_per_s": enc, "pipeline_images_per_s": pipe, "head_ms_per_image": head_ms}
            print(f"python threads={nt}: encode {enc:.2f} img/s, pipeline {pipe:.2f} img/s, head {head_ms:.3f} ms/img",
                  flush=True)
        return {k: (max if k.endswith("per_s") else min)(r[k] for r in results.values())
                for k in results[next(iter(results))]}

    cmd = [args.zsclip, "bench", "--model", args.model, "--batch-size", str(bs), "--iterations", str(iters),
           "--json", "--text-classes", "0"] + [a for p in images for a in ("--images", p)]

    def zsclip_round():
        z = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(f"zsclip: encode {z['encode_images_per_s']:.2f} img/s, pipeline {z['pipeline_images_per_s']:.2f} img/s, "
              f"head {z['head_ms_per_image']:.3f} ms/img", flush=True)
        return z

    if not args.skip_zsclip:
        print("zsclip command:", " ".join(cmd), flush=True)
    py_rounds, z_rounds = [], []
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        py_rounds.append(python_round())
        if not args.skip_zsclip:
            z_rounds.append(zsclip_round())
    best = {k: statistics.median(r[k] for r in py_rounds) for k in py_rounds[0]}
    print("python (median of rounds, each the faster thread setting):", json.dumps(best))
    if args.skip_zsclip:
        return
    z = {k: statistics.median(r[k] for r in z_rounds) for k in best}
    for k in best:
        ratio = (z[k] / best[k]) if k.endswith("per_s") else (best[k] / z[k])
        print(f"{k}: zsclip {z[k]:.3f}  python {best[k]:.3f}  zsclip/python speed ratio {ratio:.2f}x")
    print("zsclip (last round):", json.dumps(z_rounds[-1]))


if __name__ == "__main__":
    main()
