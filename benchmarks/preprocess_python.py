#!/usr/bin/python3
"""Reference timing for benchmarks/preprocess_bench.cpp: PIL decode + OpenAI CLIP's _transform(224)
(torchvision 0.14) on the same ../shared images, one thread.
    /usr/bin/python3 benchmarks/preprocess_python.py [--repeat 20]
"""
import argparse
import os
import time

import torch
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

IMAGES = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "horse.png", "rocket.jpg",
          "green_palette.png"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                     "shared"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    n = 224
    transform = Compose([Resize(n, interpolation=InterpolationMode.BICUBIC), CenterCrop(n),
                         lambda im: im.convert("RGB"), ToTensor(),
                         Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    paths = [os.path.join(args.shared, "images", f) for f in IMAGES]
    for p in paths:  # warm-up
        transform(Image.open(p))
    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.process_time()
        for p in paths:
            transform(Image.open(p))
        best = min(best, (time.process_time() - t0) / len(paths))
    print("PIL+torchvision decode+preprocess: %.3f ms per image (CPU time, best of %d passes over %d images)"
          % (best * 1e3, args.repeat, len(paths)))


if __name__ == "__main__":
    main()
