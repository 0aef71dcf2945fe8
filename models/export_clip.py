#!/usr/bin/python3
"""Exports a ViT CLIP checkpoint to zsclip's model directory (TorchScript towers + config.json).

    /usr/bin/python3 models/export_clip.py --checkpoint ViT-B-32.pt \
        --vocab bpe_simple_vocab_16e6.txt.gz --out models/vit-b-32 [--name NAME] \
        [--dtype float32|float16] [--quantize none|int8] [--num-merges N]

--checkpoint is an OpenAI TorchScript archive (as released: ViT-B-32.pt) or a plain state dict saved
with torch.save; the format is detected. Writes into --out:
    image_encoder.pt   scripted VisionTower: float pixels [N, 3, S, S] -> pooled [N, vision_width] (float32)
    text_encoder.pt    scripted TextTower:   int64 ids [N, L<=context] -> pooled [N, text_width] (float32)
    projection.pt      scripted Projection: image_projection, text_projection, logit_scale (log);
                       project_image(x), project_text(x) (computed in float32)
    <vocab file>       a copy of the BPE merges
    config.json        format_version 1, see include/zsclip/config.h (written last)
After writing, the files are reloaded with torch.jit.load and compared with the eager model; any
relative difference over 1e-5 is an error (exit status 1).
"""
from __future__ import annotations

import argparse
import copy
import gzip
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import warnings
import zipfile
from typing import Dict, Tuple

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_model import (CLIP, CheckpointError, Projection, build_from_state_dict, clean_state_dict,  # noqa: E402
                        fold_for_inference)

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]
BYTE_SYMBOLS = 512  # 256 byte symbols + the same with </w>
SPECIAL_TOKENS = 2  # <|startoftext|>, <|endoftext|>
REL_TOLERANCE = 1e-5


class ExportError(Exception):
    pass


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_torchscript_archive(path: str) -> bool:
    # TorchScript archives carry compiled code (<root>/code/...); torch.save zips only data.pkl + tensors.
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.endswith("/constants.pkl") for n in z.namelist())


def load_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], str]:
    """(state dict, "torchscript" | "state_dict") of a checkpoint file."""
    if not os.path.exists(path):
        raise ExportError(f"checkpoint not found: {path}")
    if not os.path.isfile(path):
        raise ExportError(f"checkpoint is not a file: {path}")
    if is_torchscript_archive(path):
        try:
            return dict(torch.jit.load(path, map_location="cpu").state_dict()), "torchscript"
        except Exception as e:  # noqa: BLE001 - any loader failure means "not a usable archive"
            raise ExportError(f"{path}: looks like a TorchScript archive but cannot be loaded: {e}") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"{path}: not a PyTorch checkpoint (neither a TorchScript archive nor a torch.save "
                          f"state dict; torch.load failed with {type(e).__name__})") from e
    if not isinstance(obj, dict):
        raise ExportError(f"{path}: torch.load gave a {type(obj).__name__}, not a state dict")
    return obj, "state_dict"


def read_merges_count(vocab_path: str) -> int:
    """Number of merge lines after the header in a (gzipped or plain) BPE merges file."""
    if not os.path.isfile(vocab_path):
        raise ExportError(f"vocabulary file not found: {vocab_path}")
    with open(vocab_path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise ExportError(f"vocabulary file {vocab_path}: corrupt gzip data: {e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ExportError(f"vocabulary file {vocab_path}: not UTF-8 text: {e}") from e
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    merges = lines[1:]
    for i, line in enumerate(merges[:1000]):
        if len(line.split(" ")) != 2:
            raise ExportError(f"vocabulary file {vocab_path}: line {i + 2} is not a BPE merge ('a b'): {line[:60]!r}")
    return len(merges)


def fingerprint(sd: Dict[str, torch.Tensor], quantization: str) -> str:
    """sha256 over sorted key names, dtypes, shapes and bytes of the stored weights (+ quantization)."""
    h = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        h.update(key.encode("utf-8") + b"\0" + str(t.dtype).encode() + b"\0" + str(tuple(t.shape)).encode() + b"\0")
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if quantization != "none":
        h.update(b"quantization=" + quantization.encode())
    return h.hexdigest()


def test_inputs(model: CLIP, batch: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size = model.visual.image_resolution
    pixels = torch.randn(batch, 3, size, size, generator=g)
    ctx, vocab = model.text.context_length, model.text.vocab_size
    ids = torch.zeros(batch, ctx, dtype=torch.long)
    for i in range(batch):
        n = int(torch.randint(1, ctx - 1, (1,), generator=g))
        ids[i, 0] = vocab - 2
        ids[i, 1:n + 1] = torch.randint(0, vocab - 2, (n,), generator=g)
        ids[i, n + 1 if n + 1 < ctx else ctx - 1] = vocab - 1
    return pixels, ids


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> Tuple[float, float]:
    d = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
    scale = max(b.float().abs().max().item() if b.numel() else 0.0, 1e-12)
    return d, d / scale


def min_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1).min().item()


def bench(fn, *args, repeat: int = 3) -> float:
    with torch.no_grad():
        fn(*args)
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            fn(*args)
            best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Export a ViT CLIP checkpoint to a zsclip model directory.")
    p.add_argument("--checkpoint", required=True, help="OpenAI TorchScript archive or torch.save state dict")
    p.add_argument("--vocab", required=True, help="BPE merges file (bpe_simple_vocab_16e6.txt.gz)")
    p.add_argument("--out", required=True, help="output model directory (created if missing)")
    p.add_argument("--name", default=None, help="model name for config.json (default: checkpoint file stem)")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--quantize", choices=["none", "int8"], default="none")
    p.add_argument("--num-merges", type=int, default=None, help="BPE merges to use (default vocab_size - 514)")
    p.add_argument("--quantize-text", action="store_true",
                   help="with --quantize int8, quantise the text tower too (default: the image tower only)")
    p.add_argument("--no-fold", action="store_true",
                   help="export the towers as trained, without clip_model.fold_for_inference (SiLU-folded MLPs, "
                        "pre-scaled q, patch GEMM): for comparisons")
    args = p.parse_args(argv)
    if args.dtype == "float16" and args.quantize == "int8":
        raise ExportError("--dtype float16 and --quantize int8 cannot be combined (dynamic int8 runs on CPU in float32)")

    t_start = time.perf_counter()
    torch.manual_seed(0)
    # Vocabulary first: cheap and a common mistake.
    merges_available = read_merges_count(args.vocab)
    raw_sd, source_format = load_checkpoint(args.checkpoint)
    try:
        sd = clean_state_dict(raw_sd)
        model = build_from_state_dict(sd)
    except CheckpointError as e:
        raise ExportError(f"{args.checkpoint}: {e}") from e
    shape = model.shape
    vocab_size = shape["vocab_size"]
    num_merges = args.num_merges if args.num_merges is not None else vocab_size - BYTE_SYMBOLS - SPECIAL_TOKENS
    if num_merges < 0:
        raise ExportError(f"--num-merges {num_merges} is negative (vocab_size {vocab_size})")
    if BYTE_SYMBOLS + num_merges + SPECIAL_TOKENS > vocab_size:
        raise ExportError(f"num_merges {num_merges} gives {BYTE_SYMBOLS + num_merges + SPECIAL_TOKENS} tokens, more "
                          f"than the model's vocab_size {vocab_size}")
    if merges_available < num_merges:
        raise ExportError(f"vocabulary file {args.vocab} has {merges_available} merge lines after the header, "
                          f"fewer than num_merges {num_merges} (vocab_size {vocab_size})")
    if BYTE_SYMBOLS + num_merges + SPECIAL_TOKENS < vocab_size:
        print(f"warning: num_merges {num_merges} uses only {BYTE_SYMBOLS + num_merges + SPECIAL_TOKENS} of "
              f"{vocab_size} token embeddings", file=sys.stderr)

    # The model as it will be stored: folded for inference (in float32, before any dtype change), checked
    # below against the unfolded float32 model.
    fp32_model = model
    if not args.no_fold:
        model = copy.deepcopy(model)
        fold_for_inference(model.visual)
        fold_for_inference(model.text)
    if args.dtype == "float16":
        stored = copy.deepcopy(model).half()
        stored.logit_scale.data = model.logit_scale.data.float()  # a scalar; keep its precision
    else:
        stored = model
    stored.eval()
    stored_sd = stored.state_dict()
    engine = None
    if args.quantize == "int8":
        engine = torch.backends.quantized.engine
        # Per-output-channel weight scales: one scale per row of each Linear instead of one per matrix.
        qspec = {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
        visual = torch.ao.quantization.quantize_dynamic(copy.deepcopy(stored.visual), qspec, dtype=torch.qint8)
        # The text tower runs once per label set (its features are cached in the zero-shot head), so by
        # default it stays float32: int8 there bought nothing for images/s and moved near-tied labels.
        text = (torch.ao.quantization.quantize_dynamic(copy.deepcopy(stored.text), qspec, dtype=torch.qint8)
                if args.quantize_text else stored.text)
        n_quant = sum(1 for m in list(visual.modules()) + list(text.modules())
                      if type(m).__module__.startswith("torch.ao.nn.quantized") or "quantized" in type(m).__module__)
        print(f"int8: quantised {n_quant} Linear layers (attention in/out projections included), engine {engine}")
    else:
        visual, text = stored.visual, stored.text
    projection = Projection(stored.image_projection, stored.text_projection, stored.logit_scale.float()).eval()

    os.makedirs(args.out, exist_ok=True)
    files = {"image_encoder": "image_encoder.pt", "text_encoder": "text_encoder.pt", "projection": "projection.pt"}
    config_path = os.path.join(args.out, "config.json")
    if os.path.exists(config_path):
        os.remove(config_path)  # a half-written directory must not look complete
    t_script = time.perf_counter()
    for key, module in (("image_encoder", visual), ("text_encoder", text), ("projection", projection)):
        torch.jit.save(torch.jit.script(module.eval()), os.path.join(args.out, files[key]))
    script_seconds = time.perf_counter() - t_script
    vocab_name = os.path.basename(args.vocab)
    vocab_dst = os.path.join(args.out, vocab_name)
    if os.path.abspath(vocab_dst) != os.path.abspath(args.vocab):
        shutil.copyfile(args.vocab, vocab_dst)

    # ---- verification: reload and compare with the eager model ----------------------------------
    img_s = torch.jit.load(os.path.join(args.out, files["image_encoder"]), map_location="cpu").eval()
    txt_s = torch.jit.load(os.path.join(args.out, files["text_encoder"]), map_location="cpu").eval()
    prj_s = torch.jit.load(os.path.join(args.out, files["projection"]), map_location="cpu").eval()
    for name in ("image_projection", "text_projection", "logit_scale"):
        if not hasattr(prj_s, name):
            raise ExportError(f"projection.pt lacks {name}")
    on_cuda = args.dtype == "float16" and torch.cuda.is_available()
    if args.dtype == "float16" and not on_cuda:
        # CPU has no half matmul/conv in torch 1.13: check the stored half weights, computed in float32.
        img_run, txt_run = copy.deepcopy(img_s).float(), copy.deepcopy(txt_s).float()
        eager = copy.deepcopy(stored).float()
        eager_visual, eager_text = eager.visual, eager.text
        device = "cpu"
    elif on_cuda:
        device = "cuda"
        img_run, txt_run = img_s.to(device), txt_s.to(device)
        eager_visual, eager_text = copy.deepcopy(stored.visual).to(device), copy.deepcopy(stored.text).to(device)
    else:
        device = "cpu"
        img_run, txt_run, eager_visual, eager_text = img_s, txt_s, visual, text
    report = {}
    worst = 0.0
    with torch.no_grad():
        for batch in (1, 3):
            pixels, ids = test_inputs(fp32_model, batch, seed=batch)
            pixels, ids = pixels.to(device), ids.to(device)
            pi_s, pt_s = img_run(pixels), txt_run(ids)
            pi_e, pt_e = eager_visual(pixels), eager_text(ids)
            if tuple(pi_s.shape) != (batch, shape["vision_width"]) or tuple(pt_s.shape) != (batch, shape["transformer_width"]):
                raise ExportError(f"exported towers give shapes {tuple(pi_s.shape)}, {tuple(pt_s.shape)} for batch {batch}")
            fi_s, ft_s = prj_s.project_image(pi_s.cpu()), prj_s.project_text(pt_s.cpu())
            with torch.no_grad():
                ref = fp32_model if args.quantize == "none" and args.dtype == "float32" else None
            checks = {
                "image_encoder": rel_diff(pi_s, pi_e),
                "text_encoder": rel_diff(pt_s, pt_e),
                "image_features": rel_diff(fi_s, projection.project_image(pi_e.cpu())),
                "text_features": rel_diff(ft_s, projection.project_text(pt_e.cpu())),
            }
            if ref is not None:
                checks["encode_image_vs_clip"] = rel_diff(fi_s, ref.encode_image(pixels))
                checks["encode_text_vs_clip"] = rel_diff(ft_s, ref.encode_text(ids))
            for k, (a, r) in checks.items():
                report[f"{k}[N={batch}]"] = {"max_abs_diff": a, "relative": r}
                worst = max(worst, r)
                print(f"verify {k:22s} N={batch}: max abs diff {a:.3e} (relative {r:.3e})")
    if worst > REL_TOLERANCE:
        raise ExportError(f"exported model differs from the eager model: worst relative diff {worst:.3e} > "
                          f"{REL_TOLERANCE:.0e} (files left in {args.out} without config.json)")

    # ---- quality/speed of reduced precision vs the float32 model ----------------------------------
    quality = {}
    if args.quantize != "none" or args.dtype != "float32":
        pixels, ids = test_inputs(fp32_model, 8, seed=8)
        with torch.no_grad():
            f32_i, f32_t = fp32_model.encode_image(pixels), fp32_model.encode_text(ids)
            dev = device
            q_i = prj_s.project_image(img_run(pixels.to(dev)).cpu())
            q_t = prj_s.project_text(txt_run(ids.to(dev)).cpu())
        quality["min_cosine_image_vs_fp32"] = min_cosine(q_i, f32_i)
        quality["min_cosine_text_vs_fp32"] = min_cosine(q_t, f32_t)
        print(f"{args.dtype}/{args.quantize}: min cosine vs float32: image {quality['min_cosine_image_vs_fp32']:.5f}, "
              f"text {quality['min_cosine_text_vs_fp32']:.5f} (random inputs, batch 8)")
        if args.quantize == "int8":
            f32_img_s, f32_txt_s = torch.jit.script(fp32_model.visual), torch.jit.script(fp32_model.text)
            ti_f, ti_q = bench(f32_img_s, pixels), bench(img_s, pixels)
            tt_f, tt_q = bench(f32_txt_s, ids), bench(txt_s, ids)
            quality.update(image_seconds_fp32=ti_f, image_seconds_int8=ti_q, text_seconds_fp32=tt_f,
                           text_seconds_int8=tt_q, threads=torch.get_num_threads())
            print(f"int8 speed (batch 8, {torch.get_num_threads()} threads): image {ti_f * 1e3:.1f} -> {ti_q * 1e3:.1f} ms "
                  f"(x{ti_f / ti_q:.2f}), text {tt_f * 1e3:.1f} -> {tt_q * 1e3:.1f} ms (x{tt_f / tt_q:.2f})")

    vision_heads = fp32_model.vision_heads
    config = {
        "format_version": 1,
        "name": args.name if args.name else os.path.splitext(os.path.basename(args.checkpoint))[0],
        "fingerprint": fingerprint(stored_sd, args.quantize),
        "architecture": "clip-vit",
        "dtype": args.dtype,
        "quantization": args.quantize,
        "embed_dim": shape["embed_dim"],
        "vision": {"image_size": shape["image_resolution"], "patch_size": shape["vision_patch_size"],
                   "width": shape["vision_width"], "layers": shape["vision_layers"], "heads": vision_heads},
        "text": {"context_length": shape["context_length"], "vocab_size": vocab_size,
                 "width": shape["transformer_width"], "layers": shape["transformer_layers"],
                 "heads": shape["transformer_heads"]},
        "preprocess": {"image_size": shape["image_resolution"], "resize": "shorter_side", "interpolation": "bicubic",
                       "crop": "center", "mean": OPENAI_MEAN, "std": OPENAI_STD},
        "tokenizer": {"type": "clip_bpe", "vocab_file": vocab_name, "num_merges": num_merges},
        "files": files,
        "export": {
            "tool": "models/export_clip.py",
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "source_checkpoint": os.path.basename(args.checkpoint),
            "source_format": source_format,
            "source_sha256": sha256_file(args.checkpoint),
            "quantized_engine": engine,
            "outputs": "encoders return float32 pooled features; projection computes in float32",
            "folded_for_inference": not args.no_fold,
            "int8_towers": ([] if args.quantize == "none" else ["image", "text"] if args.quantize_text else ["image"]),
            "verification": {"tolerance_relative": REL_TOLERANCE, "device": device, "worst_relative": worst},
            "reduced_precision": quality or None,
        },
    }
    tmp = config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, config_path)
    sizes = {n: os.path.getsize(os.path.join(args.out, n)) for n in list(files.values()) + [vocab_name]}
    print("wrote " + ", ".join(f"{n} ({s / 1e6:.2f} MB)" for n, s in sizes.items()) + f", config.json to {args.out}")
    print(f"export took {time.perf_counter() - t_start:.1f} s (scripting+saving {script_seconds:.1f} s); "
          f"fingerprint {config['fingerprint'][:16]}...")
    return 0


if __name__ == "__main__":
    # module.float() on loaded ScriptModules touches .grad of their parameters; harmless here.
    warnings.filterwarnings("ignore", message="The .grad attribute of a Tensor that is not a leaf")
    try:
        sys.exit(main())
    except (ExportError, CheckpointError) as e:
        print(f"export_clip.py: error: {e}", file=sys.stderr)
        sys.exit(1)
