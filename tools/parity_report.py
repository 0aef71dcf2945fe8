#!/usr/bin/env python3
"""Measures zsclip's parity with OpenAI's code on ../shared/clip/openai-tiny, through the CLI:
image features (from the image files), text features, logits_per_image and zero-shot probabilities
against reference.json. Prints the worst error of each, relative to the largest magnitude.

    python3 tools/parity_report.py [--zsclip build/bin/zsclip] [--model build/fixtures/openai-tiny-jit_archive]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def worst(rows_got, rows_want):
    err = ref = 0.0
    argmax_same = True
    for g, w in zip(rows_got, rows_want):
        err = max(err, max(abs(a - b) for a, b in zip(g, w)))
        ref = max(ref, max(abs(b) for b in w))
        argmax_same &= g.index(max(g)) == w.index(max(w))
    return err / ref, argmax_same


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zsclip", default=os.path.join(here, "build/bin/zsclip"))
    p.add_argument("--model", default=os.path.join(here, "build/fixtures/openai-tiny-jit_archive"))
    p.add_argument("--shared", default=os.path.join(here, "../shared"))
    a = p.parse_args()
    ref = json.load(open(os.path.join(a.shared, "clip/openai-tiny/reference.json")))
    images = [os.path.join(a.shared, "images", im["file"]) for im in ref["images"]]
    texts = [t["text"] for t in ref["texts"]]
    cmd = [a.zsclip, "embed", "--model", a.model]
    for f in images:
        cmd += ["--image", f]
    for t in texts:
        cmd += ["--text", t]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    rows = [
        ("image features", [x["features"] for x in out["images"]], [x["image_features"] for x in ref["images"]]),
        ("text features", [x["features"] for x in out["texts"]], [x["text_features"] for x in ref["texts"]]),
        ("logits_per_image", out["logits_per_image"], ref["logits_per_image"]),
    ]
    zs = ref["zero_shot"]
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "t.txt"), "w") as f:
            f.write("\n".join(zs["templates"]) + "\n")
        with open(os.path.join(tmp, "l.txt"), "w") as f:
            f.write("\n".join(zs["classes"]) + "\n")
        cls = json.loads(subprocess.run(
            [a.zsclip, "classify", "--json", "--model", a.model, "--labels-file", os.path.join(tmp, "l.txt"),
             "--templates", os.path.join(tmp, "t.txt")] + images, check=True, capture_output=True, text=True).stdout)
    rows.append(("zero-shot probs", [c["probs"] for c in cls], zs["probs"]))
    tokens_same = all(x["tokens"] == y["tokens"] for x, y in zip(out["texts"], ref["texts"]))
    print(f"model: {a.model}")
    print(f"token ids identical to OpenAI's: {tokens_same}")
    ok = tokens_same
    for name, got, want in rows:
        rel, same = worst(got, want)
        ok &= rel <= 1e-4 and same
        print(f"{name:18s} max abs error / max |ref| = {rel:.2e}   same argmax: {same}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
