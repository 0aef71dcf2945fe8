#!/usr/bin/python3
"""Checks an exported zsclip model directory against OpenAI CLIP reference outputs.

    /usr/bin/python3 models/check_export.py --model DIR \
        --reference /work/shared/clip/openai-tiny/reference.json --shared /work/shared

Loads DIR/config.json and the three TorchScript files, runs them on the reference's pixel tensors
(pixels/*.f32, next to reference.json) and token ids, and compares image_features, text_features,
logits_per_image and the zero-shot logits/probs (prompts tokenised with the CLIP BPE tokenizer below,
checked first against <shared>/clip/tokenizer_cases.jsonl). Each quantity passes when its max abs
error is <= 1e-4 of its largest reference magnitude and every row has the same argmax.
Exit status 0 when everything passes, 1 otherwise.
"""
from __future__ import annotations

import argparse
import gzip
import html
import json
import os
import sys
from functools import lru_cache
from typing import Dict, List

import numpy as np
import torch

try:
    import regex as _re  # \p{L} / \p{N} classes
    _PATTERN = _re.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", _re.IGNORECASE)
except ImportError:  # approximation with the standard library (exact for ASCII prompts)
    import re as _re
    _PATTERN = _re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+""",
                           _re.IGNORECASE)

REL_TOL = 1e-4


def _byte_symbols() -> List[str]:
    """The 256 printable stand-ins for bytes, in vocabulary order (printable Latin-1 bytes map to themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    order, chars = list(keep), [chr(b) for b in keep]
    extra = 0
    for b in range(256):
        if b not in keep:
            order.append(b)
            chars.append(chr(256 + extra))
            extra += 1
    return [c for _, c in sorted(zip(order, chars))], chars  # (by byte value, vocabulary order)


class ClipBpe:
    """CLIP's byte-level BPE tokenizer, written from its description (lower-cased, </w> word ends)."""

    def __init__(self, vocab_path: str, num_merges: int):
        with open(vocab_path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        lines = raw.decode("utf-8").split("\n")[1:1 + num_merges]
        merges = [tuple(line.split()) for line in lines]
        self.byte_char, vocab_chars = _byte_symbols()
        vocab = vocab_chars + [c + "</w>" for c in vocab_chars] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.sot, self.eot = self.ids["<|startoftext|>"], self.ids["<|endoftext|>"]

    @lru_cache(maxsize=None)
    def bpe(self, word: str) -> List[str]:
        if word in ("<|startoftext|>", "<|endoftext|>"):
            return [word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = [(self.ranks.get((a, b), None), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
            ranked = [p for p in pairs if p[0] is not None]
            if not ranked:
                break
            best = min(ranked)[0]
            first, second = next((parts[i], parts[i + 1]) for r, i in ranked if r == best)
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts

    def encode(self, text: str) -> List[int]:
        text = html.unescape(html.unescape(text)).strip()
        text = " ".join(text.split()).strip().lower()
        out = []
        for piece in _PATTERN.findall(text):
            mapped = "".join(self.byte_char[b] for b in piece.encode("utf-8"))
            out.extend(self.ids[t] for t in self.bpe(mapped))
        return out

    def tokenize(self, text: str, context_length: int) -> List[int]:
        ids = [self.sot] + self.encode(text) + [self.eot]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = self.eot
        return ids


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
    tok = ClipBpe(os.path.join(args.model, cfg["tokenizer"]["vocab_file"]), cfg["tokenizer"]["num_merges"])
    cases_path = os.path.join(args.shared, "clip", "tokenizer_cases.jsonl")
    with open(cases_path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    bad = [c["text"] for c in cases if tok.tokenize(c["text"], ctx) != c["tokens"]]
    results["tokenizer_cases"] = not bad
    print(f"{'ok  ' if not bad else 'FAIL'} python tokenizer on {len(cases)} tokenizer_cases: {len(bad)} mismatches"
          + (f" (first: {bad[0]!r})" if bad else ""))
    zs = ref["zero_shot"]
    weights = []
    with torch.no_grad():
        for cls in zs["classes"]:
            rows = pad([tok.tokenize(t.format(cls), ctx) for t in zs["templates"]], ctx)
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
