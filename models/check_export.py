#!/usr/bin/python3
"""Checks an exported zsclip model directory against OpenAI CLIP reference outputs.

    /usr/bin/python3 models/check_export.py --model DIR \
        --reference /work/shared/clip/openai-tiny/reference.json --shared /work/shared

Loads DIR/config.json and the three TorchScript files, runs them on the reference's pixel tensors
(pixels/*.f32, next to reference.json) and token ids, and compares image_features, text_features,
logits_per_image and the zero-shot logits/probs (prompts tokenised with models/clip_bpe.py, checked
first against <shared>/clip/tokenizer_cases.jsonl). Each quantity passes when its max abs
error is <= 1e-4 of its largest reference magnitude and every row has the same argmax.
Exit status 0 when everything passes, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_bpe import ClipTokenizer  # noqa: E402  (the CLIP BPE tokenizer the scripts share)

REL_TOL = 1e-4


def pad(rows: List[List[int]], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def compare(name: str, got: torch.Tensor, want: torch.Tensor, results: Dict[str, bool], tol: float) -> None:
    got, want = got.double(), want.double()
    if got.shape != want.shape:
        print(f"FAIL {name}: shape {tuple(got.shape)} != reference {tuple(want.shape)}")
        results[name] = False
        return
    err = (got - want).abs().max().item()
    scale = want.abs().max().item()
    same_argmax = bool(torch.equal(got.argmax(dim=-1), want.argmax(dim=-1)))
    ok = err <= tol * scale and same_argmax
    results[name] = ok
    print(f"{'ok  ' if ok else 'FAIL'} {name:18s} max abs err {err:.3e} (limit {tol * scale:.3e}, "
          f"relative {err / max(scale, 1e-30):.2e}), argmax {'same' if same_argmax else 'DIFFERENT'}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="exported model directory (config.json + *.pt)")
    p.add_argument("--reference", required=True, help="reference.json from openai/CLIP")
    p.add_argument("--shared", required=True, help="the shared reference folder (holds clip/tokenizer_cases.jsonl)")
    p.add_argument("--tolerance", type=float, default=REL_TOL,
                   help="allowed max abs error as a fraction of the largest reference magnitude (default 1e-4; "
                        "reduced-precision exports need more, e.g. 2e-3 for float16)")
    args = p.parse_args(argv)

    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    with open(args.reference) as f:
        ref = json.load(f)
    ref_dir = os.path.dirname(os.path.abspath(args.reference))
    load = lambda key: torch.jit.load(os.path.join(args.model, cfg["files"][key]), map_location="cpu").eval()  # noqa: E731
    image_encoder, text_encoder, projection = load("image_encoder"), load("text_encoder"), load("projection")
    if cfg["dtype"] == "float16":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":  # no half conv/matmul on CPU: run the stored half weights in float32
            image_encoder, text_encoder = image_encoder.float(), text_encoder.float()
        else:
            image_encoder, text_encoder = image_encoder.to(device), text_encoder.to(device)
    else:
        device = "cpu"
    print(f"model {args.model}: {cfg['name']} dtype {cfg['dtype']} quantization {cfg['quantization']} on {device}")
    results: Dict[str, bool] = {}

    # Shape/config consistency with the reference.
    shape = ref["shape"]
    expect = {"embed_dim": cfg["embed_dim"], "image_resolution": cfg["vision"]["image_size"],
              "vision_layers": cfg["vision"]["layers"], "vision_width": cfg["vision"]["width"],
              "vision_patch_size": cfg["vision"]["patch_size"], "context_length": cfg["text"]["context_length"],
              "vocab_size": cfg["text"]["vocab_size"], "transformer_width": cfg["text"]["width"],
              "transformer_heads": cfg["text"]["heads"], "transformer_layers": cfg["text"]["layers"]}
    results["config"] = expect == shape
    print(f"{'ok  ' if results['config'] else 'FAIL'} config shape matches reference shape")

    ctx = cfg["text"]["context_length"]
    size = cfg["preprocess"]["image_size"]
    pixels = torch.stack([
        torch.from_numpy(np.fromfile(os.path.join(ref_dir, im["pixels"]), dtype="<f4").reshape(3, size, size))
        for im in ref["images"]])
    ids = pad([t["tokens"] for t in ref["texts"]], ctx)
    with torch.no_grad():
        img = projection.project_image(image_encoder(pixels.to(device)).cpu())
        txt = projection.project_text(text_encoder(ids.to(device)).cpu())
        scale = projection.logit_scale.float().exp()
    compare("image_features", img, torch.tensor([im["image_features"] for im in ref["images"]]), results, args.tolerance)
    compare("text_features", txt, torch.tensor([t["text_features"] for t in ref["texts"]]), results, args.tolerance)
    img_n = img / img.norm(dim=1, keepdim=True)
    txt_n = txt / txt.norm(dim=1, keepdim=True)
    compare("logits_per_image", scale * img_n @ txt_n.t(), torch.tensor(ref["logits_per_image"]), results, args.tolerance)
    ok_scale = abs(scale.item() - ref["logit_scale_exp"]) <= 1e-5 * ref["logit_scale_exp"]
    results["logit_scale"] = ok_scale
    print(f"{'ok  ' if ok_scale else 'FAIL'} logit_scale exp {scale.item():.6f} vs {ref['logit_scale_exp']:.6f}")

    # Zero-shot: tokenizer checked on OpenAI's cases first, then class weights from the templates.
    tok = ClipTokenizer.from_file(os.path.join(args.model, cfg["tokenizer"]["vocab_file"]), cfg["tokenizer"]["num_merges"])
    cases_path = os.path.join(args.shared, "clip", "tokenizer_cases.jsonl")
    with open(cases_path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    bad = [c["text"] for c in cases if tok.encode_with_specials(c["text"], ctx, truncate=True) != c["tokens"]]
    results["tokenizer_cases"] = not bad
    print(f"{'ok  ' if not bad else 'FAIL'} python tokenizer on {len(cases)} tokenizer_cases: {len(bad)} mismatches"
          + (f" (first: {bad[0]!r})" if bad else ""))
    zs = ref["zero_shot"]
    weights = []
    with torch.no_grad():
        for cls in zs["classes"]:
            rows = tok.tokenize([t.format(cls) for t in zs["templates"]], ctx, truncate=True)
            f = projection.project_text(text_encoder(rows.to(device)).cpu())
            f = f / f.norm(dim=1, keepdim=True)
            mean = f.mean(dim=0)
            weights.append(mean / mean.norm())
    w = torch.stack(weights, dim=1)
    zs_logits = scale * img_n @ w
    compare("zero_shot.logits", zs_logits, torch.tensor(zs["logits"]), results, args.tolerance)
    compare("zero_shot.probs", zs_logits.softmax(dim=-1), torch.tensor(zs["probs"]), results, args.tolerance)

    failed = [k for k, v in results.items() if not v]
    print(f"SUMMARY: {len(results) - len(failed)}/{len(results)} checks passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
