#!/usr/bin/env python3
"""Zero-shot accuracy of the shipped shapes model measured through the C++ zsclip tool: renders
fresh images with models/shapes_data.py (seed 1000, the model card's eval seed), classifies them
with `zsclip classify --json` over all 48 "a photo of a {colour} {shape}." classes, and prints
top-1 on seen and held-out pairs.

    /usr/bin/python3 tools/eval_shapes_cpp.py [--per-class 20] [--zsclip build/bin/zsclip]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, "models"))
from shapes_data import ALL_PAIRS, HELD_OUT, ShapeGenerator  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--zsclip", default=os.path.join(HERE, "build/bin/zsclip"))
    p.add_argument("--model", default=os.path.join(HERE, "models/shapes"))
    p.add_argument("--compare", metavar="MODEL",
                   help="also classify with this export (e.g. an int8 one) and print the top-1 agreement")
    p.add_argument("--compare-precision", metavar="P",
                   help="compare with the same model loaded with `--precision P` (bfloat16, int8; with "
                        "--compare: that export loaded so)")
    a = p.parse_args()
    if a.compare_precision and not a.compare:
        a.compare = a.model
    labels = [f"{c} {s}" for c, s in ALL_PAIRS]
    gen = ShapeGenerator(seed=1000)
    held = {tuple(x) for x in HELD_OUT}
    with tempfile.TemporaryDirectory() as tmp:
        files, truth = [], []
        for pair in ALL_PAIRS:
            for i in range(a.per_class):
                path = os.path.join(tmp, f"{pair[0]}_{pair[1]}_{i}.png")
                gen.sample(pair).image.save(path)
                files.append(path)
                truth.append(pair)
        def classify(model, extra=()):
            out = subprocess.run([a.zsclip, "classify", "--json", "--top-k", "1", "--batch-size", "64",
                                  "--model", model, "--labels", ",".join(labels), "--templates", "simple",
                                  *extra] + files,
                                 check=True, capture_output=True, text=True).stdout
            return json.loads(out)

        res = classify(a.model)
        extra = ["--precision", a.compare_precision] if a.compare_precision else []
        other = classify(a.compare, extra) if a.compare else None
    hits = {"seen": [0, 0], "held-out": [0, 0]}
    for r, pair in zip(res, truth):
        k = "held-out" if pair in held else "seen"
        hits[k][1] += 1
        hits[k][0] += r["top"][0]["label"] == f"{pair[0]} {pair[1]}"
    for k, (h, n) in hits.items():
        print(f"{k:9s} top-1 {100.0 * h / n:.1f}% ({h}/{n})")
    if other is not None:
        same = sum(x["top"][0]["label"] == y["top"][0]["label"] for x, y in zip(res, other))
        hit = sum(y["top"][0]["label"] == f"{c} {s}" for y, (c, s) in zip(other, truth))
        name = a.compare + (f" --precision {a.compare_precision}" if a.compare_precision else "")
        print(f"{name}: top-1 {100.0 * hit / len(res):.1f}% over all 48 classes; "
              f"same top-1 as {a.model}: {100.0 * same / len(res):.1f}% ({same}/{len(res)})")


if __name__ == "__main__":
    main()
