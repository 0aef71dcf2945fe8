#!/usr/bin/python3
"""Exports a ViT CLIP checkpoint to zsclip's model directory (TorchScript towers + config.json).

    /usr/bin/python3 models/export_clip.py --checkpoint PATH --out DIR [--vocab FILE] [--name NAME] \
        [--activation quick_gelu|gelu] [--open-clip-config FILE] [--layout LAYOUT] \
        [--dtype float32|float16] [--quantize none|int8] [--num-merges N] [--no-fold] [--trust-code]

--checkpoint is a file or a folder; the layout is detected and printed (models/layouts/):
    openai_torchscript  OpenAI's TorchScript archive as released (ViT-B-32.pt): QuickGELU by construction
    openai_state_dict   a bare state dict (torch.save or .safetensors) with OpenAI's key names: its activation
                        is not recorded in it, so --activation quick_gelu|gelu is required
    open_clip           an open_clip hub folder (open_clip_config.json + open_clip_model.safetensors or
                        open_clip_pytorch_model.bin), or a checkpoint file + --open-clip-config FILE
    hf_clip             a HuggingFace CLIPModel folder (config.json, model.safetensors or pytorch_model.bin,
                        preprocessor_config.json, vocab.json + merges.txt)
A TorchScript archive (OpenAI's released checkpoints are such archives, and so is a pytorch_model.bin
that is a TorchScript zip) is code: torch.jit.load runs the __setstate__ methods stored in it. The
exporter reads such an archive's tensors without running any of it (models/torchscript_reader.py) and
refuses one that needs its code, unless --trust-code is given; torch.save pickles are read with
weights_only=True.
--vocab (the BPE merges, bpe_simple_vocab_16e6.txt.gz) is needed unless the folder carries its tokenizer
(HF: vocab.json + merges.txt, copied). Any config key or tensor that is not implemented is refused with
its name. Writes into --out:
    image_encoder.pt   scripted VisionTower: float pixels [N, 3, S, S] -> pooled [N, vision_width] (float32)
    text_encoder.pt    scripted TextTower:   int64 ids [N, L<=context] -> pooled [N, text_width] (float32)
    projection.pt      scripted Projection: image_projection, text_projection, logit_scale (log),
                       image_projection_bias, text_projection_bias ([embed_dim] or [0]), logit_bias ([] or
                       [0]); project_image(x), project_text(x) (computed in float32)
    tokenizer files    a copy of the BPE merges (or HF's vocab.json + merges.txt)
    config.json        format_version 2, see include/zsclip/config.h and models/README.md (written last)
After writing, the files are reloaded with torch.jit.load and compared with the eager model and with an
independent eager forward of the source layout; any relative difference over 1e-5 is an error (exit
status 1). The exporter runs itself with PYTHONHASHSEED=0: TorchScript writes the constants of torch.nn
modules in Python set order, so that exports of the same weights are byte-identical.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    # TorchScript serialises each torch.nn module's __constants__ (a set of names) in set iteration order,
    # which follows the per-process string hash seed; a fixed seed makes the archives byte-identical.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import argparse  # noqa: E402
import copy  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any, Dict, NamedTuple, Optional, Tuple  # noqa: E402

import torch  # noqa: E402
import xxhash  # noqa: E402  (Debian's python3-xxhash)
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layouts import LAYOUTS, LoadedCheckpoint, build_model, hash_tensors, load_checkpoint  # noqa: E402
from clip_model import CLIP, CheckpointError, Projection, fold_for_inference  # noqa: E402

BYTE_SYMBOLS = 512  # 256 byte symbols + the same with </w>
SPECIAL_TOKENS = 2  # <|startoftext|>, <|endoftext|>
REL_TOLERANCE = 1e-5
FORMAT_VERSION = 2
FORMAT_VERSION_SENTENCEPIECE = 3  # SigLIP / SigLIP2: the SentencePiece tokenizer section needs a newer reader


class ExportError(Exception):
    pass


def file_check(path: str) -> Dict[str, Any]:
    """{"bytes", "xxh3_64"} of a file, as zsclip's ModelConfig::verify_files checks it."""
    h = xxhash.xxh3_64()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return {"bytes": os.path.getsize(path), "xxh3_64": h.hexdigest()}


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


# The architecture options the weights do not show, with OpenAI's values: an export whose options
# differ (e.g. GELU instead of QuickGELU) gets a different fingerprint even for the same weights, while
# OpenAI-architecture exports keep the fingerprint format_version 1 gave them.
def _knob_defaults(shape: Dict[str, Any]) -> Dict[str, Any]:
    return {"activation": "quick_gelu", "vision_heads": max(shape["vision_width"] // 64, 1),
            "transformer_heads": max(shape["transformer_width"] // 64, 1), "vision_pool": "tok",
            "vision_final_ln_after_pool": False, "vision_layer_norm_eps": 1e-5, "text_causal_mask": True,
            "text_pool": "argmax", "text_eos_id": shape["vocab_size"] - 1, "text_layer_norm_eps": 1e-5,
            "vision_type": "clip", "vision_activation": shape["activation"], "text_activation": shape["activation"],
            "text_pad_id": 0, "text_proj": True}


def fingerprint(sd: Dict[str, torch.Tensor], quantization: str, shape: Dict[str, Any],
                quantize_text: bool = False) -> str:
    """sha256 over sorted key names, dtypes, shapes and bytes of the stored weights, then the quantization
    mode (and whether it reached the text tower) and every architecture option that differs from
    OpenAI's (name=value, sorted)."""
    h = hashlib.sha256()
    hash_tensors(h, sd)
    if quantization != "none":
        h.update(b"quantization=" + quantization.encode())
        if quantize_text:  # int8 text features differ, so zero-shot heads built with them do
            h.update(b";text")
    for key, default in sorted(_knob_defaults(shape).items()):
        if key == "text_eos_id" and shape["text_pool"] != "eos":
            continue
        if shape[key] != default:
            h.update(f"{key}={shape[key]!r}".encode())
    return h.hexdigest()


def test_inputs(model: CLIP, batch: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size = model.visual.image_resolution
    pixels = torch.randn(batch, 3, size, size, generator=g)
    ctx, vocab = model.text.context_length, model.text.vocab_size
    eot = model.text.eos_id if model.text.pool == "eos" else vocab - 1
    ids = torch.full((batch, ctx), model.text.pad_id, dtype=torch.long)
    for i in range(batch):
        n = int(torch.randint(1, ctx - 1, (1,), generator=g))
        ids[i, 0] = vocab - 2
        ids[i, 1:n + 1] = torch.randint(1, vocab - 2, (n,), generator=g)
        ids[i, n + 1 if n + 1 < ctx else ctx - 1] = eot
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


def resolve_tokenizer(ckpt, args, shape: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """(config.json "tokenizer", {destination name: source path} of the files to copy)."""
    tok = ckpt.tokenizer
    vocab_size, ctx = shape["vocab_size"], shape["context_length"]
    if tok.get("format") == "sentencepiece":
        if args.vocab:
            raise ExportError(f"{args.checkpoint} carries its SentencePiece tokenizer ({tok['vocab_file']}); --vocab "
                              "is for CLIP's BPE merges, leave it out")
        if args.num_merges is not None:
            raise ExportError("--num-merges is for CLIP's BPE tokenizer; this model's tokenizer is SentencePiece")
        config = {"type": "sentencepiece", "vocab_file": tok["vocab_file"], "context_length": ctx,
                  "clean": tok["clean"], "pad_id": tok["pad_id"], "eos_id": tok["eos_id"], "bos_id": tok["bos_id"],
                  "add_eos": tok["add_eos"]}
        return config, {tok["vocab_file"]: tok["vocab_path"]}
    num_merges = vocab_size - BYTE_SYMBOLS - SPECIAL_TOKENS
    if num_merges < 0:
        raise ExportError(f"vocab_size {vocab_size} is smaller than the {BYTE_SYMBOLS + SPECIAL_TOKENS} byte and "
                          "special tokens of CLIP's BPE")
    if args.num_merges is not None and args.num_merges != num_merges:
        raise ExportError(f"--num-merges {args.num_merges}: zsclip's CLIP BPE tokenizer needs num_merges + "
                          f"{BYTE_SYMBOLS + SPECIAL_TOKENS} == vocab_size ({vocab_size}), i.e. {num_merges}, so that "
                          "every token id exists in the model's token embedding")
    common = {"sot_token": tok["sot_token"], "eot_token": tok["eot_token"], "context_length": ctx,
              "truncate_end": "eot"}
    if tok.get("format") == "hf":
        if args.vocab:
            raise ExportError(f"{args.checkpoint} carries its tokenizer (vocab.json + merges.txt); --vocab is not used "
                              "for it, leave it out")
        if tok["merges_available"] < num_merges:
            raise ExportError(f"{tok['merges_path']} has {tok['merges_available']} merges after the header, fewer than "
                              f"the {num_merges} that vocab_size {vocab_size} needs")
        config = {"type": "clip_bpe", "format": "hf", "vocab_file": "vocab.json", "merges_file": "merges.txt",
                  "num_merges": num_merges, **common}
        return config, {"vocab.json": tok["vocab_path"], "merges.txt": tok["merges_path"]}
    if not args.vocab:
        if ckpt.layout == "open_clip":
            why = "open_clip models carry no tokenizer files"
        elif ckpt.layout == "hf_clip":
            why = f"the folder lacks {tok.get('missing', 'vocab.json / merges.txt')}"
        else:
            why = "OpenAI checkpoints carry no tokenizer files"
        raise ExportError(f"{why}: pass --vocab with the BPE merges (bpe_simple_vocab_16e6.txt.gz, in openai/CLIP's "
                          "and open_clip's repositories)")
    available = read_merges_count(args.vocab)
    if available < num_merges:
        raise ExportError(f"vocabulary file {args.vocab} has {available} merge lines after the header, fewer than "
                          f"num_merges {num_merges} (vocab_size {vocab_size} - {BYTE_SYMBOLS + SPECIAL_TOKENS})")
    # With OpenAI's merges file the ids are fixed by construction: sot = vocab_size - 2, eot = vocab_size - 1.
    if shape["text_pool"] == "eos" and shape["text_eos_id"] != vocab_size - 1:
        raise ExportError(f"the text is pooled at eos id {shape['text_eos_id']}, but this tokenizer's "
                          f"{tok['eot_token']} is id {vocab_size - 1}")
    name = os.path.basename(args.vocab)
    config = {"type": "clip_bpe", "format": "openai", "vocab_file": name, "num_merges": num_merges, **common}
    return config, {name: args.vocab}


# The scripted files of an export, by their config.json "files" key.
SCRIPTED_FILES = {"image_encoder": "image_encoder.pt", "text_encoder": "text_encoder.pt",
                  "projection": "projection.pt"}


class Inputs(NamedTuple):
    """What the export reads: the checkpoint, the float32 model built from it, and the tokenizer."""
    ckpt: LoadedCheckpoint      # layout, preprocessing, tensor hash and the source layout's reference forwards
    model: CLIP                 # float32, unfolded, as trained: what every check compares with
    tokenizer: Dict[str, Any]   # config.json "tokenizer"
    copies: Dict[str, str]      # tokenizer files to copy: {name in --out: source path}


class StoredModel(NamedTuple):
    """The model as it is written, next to the float32 model it came from."""
    fp32: CLIP                  # Inputs.model
    stored: CLIP                # folded (unless --no-fold), in --dtype: the weights the fingerprint covers
    visual: nn.Module           # the towers to script: stored's, or dynamic-int8 copies with --quantize int8
    text: nn.Module
    projection: Projection      # stored's projections, logit scale and bias (float32)
    engine: Optional[str]       # torch's quantized engine with --quantize int8, else None


class Reloaded(NamedTuple):
    """The written files loaded back with torch.jit.load, and what the checks run and compare them with."""
    image: torch.jit.ScriptModule       # image_encoder.pt, text_encoder.pt, projection.pt as loaded (CPU)
    text: torch.jit.ScriptModule
    projection: torch.jit.ScriptModule
    device: str                         # "cuda" for float16 when CUDA is there, else "cpu"
    image_run: nn.Module                # the loaded towers as run on device (float32 copies for float16 on CPU)
    text_run: nn.Module
    eager_visual: nn.Module             # the eager towers of StoredModel they are compared with, alike
    eager_text: nn.Module


class Verification(NamedTuple):
    """What verify_export found; config.json's export.verification."""
    report: Dict[str, Dict[str, float]]     # "check[N=batch]" -> {"max_abs_diff", "relative"}
    worst: float                            # the largest relative diff of all checks
    device: str
    independent_reference: Optional[str]    # the source layout's forward compared with (exact exports only)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (sys.argv[1:] when argv is None); refuses flags that cannot be combined."""
    p = argparse.ArgumentParser(description="Export a ViT CLIP checkpoint to a zsclip model directory.")
    p.add_argument("--checkpoint", required=True,
                   help="OpenAI TorchScript archive, a state dict (torch.save or .safetensors), an open_clip hub "
                        "folder or a HuggingFace CLIPModel folder")
    p.add_argument("--vocab", default=None,
                   help="BPE merges file (bpe_simple_vocab_16e6.txt.gz); not needed for folders that carry their "
                        "tokenizer (HF: vocab.json + merges.txt)")
    p.add_argument("--out", required=True, help="output model directory (created if missing)")
    p.add_argument("--name", default=None, help="model name for config.json (default: checkpoint file stem or "
                                                "folder name)")
    p.add_argument("--activation", choices=["quick_gelu", "gelu"], default=None,
                   help="MLP activation of a bare state dict (required for it: the file does not record it). "
                        "quick_gelu: OpenAI, and open_clip's laion400m / metaclip / dfn weights; gelu: open_clip's "
                        "laion2b / datacomp weights")
    p.add_argument("--open-clip-config", default=None,
                   help="open_clip config for a bare checkpoint file: open_clip_config.json ({model_cfg, "
                        "preprocess_cfg}) or a plain model_cfg such as open_clip's model_configs/*.json")
    p.add_argument("--layout", choices=list(LAYOUTS), default=None,
                   help="force a layout (for a folder holding both open_clip and HF files)")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="deprecated: int8 is a load-time precision now (export float32, then zsclip --precision int8 / "
                        "ModelOptions::dtype \"int8\", on every CPU with AVX2); int8 here still writes LibTorch's "
                        "slower dynamic-int8 towers, for comparisons")
    p.add_argument("--num-merges", type=int, default=None,
                   help="BPE merges to use; must be vocab_size - 514 (the default), which zsclip requires")
    p.add_argument("--quantize-text", action="store_true",
                   help="with --quantize int8, quantise the text tower too (default: the image tower only)")
    p.add_argument("--trust-code", action="store_true",
                   help="load a TorchScript archive with torch.jit.load, which RUNS CODE stored in the file (its "
                        "__setstate__ methods); only for archives whose author you trust. Without it the "
                        "archive's tensors are read without running anything, and an archive that needs its "
                        "code is refused")
    p.add_argument("--no-fold", action="store_true",
                   help="export the towers as trained, without clip_model.fold_for_inference (SiLU-folded MLPs, "
                        "pre-scaled q, patch GEMM): for comparisons")
    args = p.parse_args(argv)
    if args.dtype == "float16" and args.quantize == "int8":
        raise ExportError("--dtype float16 and --quantize int8 cannot be combined (dynamic int8 runs on CPU in float32)")
    if args.quantize == "int8":
        print("export_clip: warning: --quantize int8 is deprecated; export without it and load with "
              "zsclip --precision int8 (ModelOptions::dtype \"int8\"): faster, on every CPU with AVX2", file=sys.stderr)
    return args


def read_inputs(args: argparse.Namespace) -> Inputs:
    """Loads the checkpoint (printing its layout and notes), builds the float32 model and resolves the
    tokenizer; a bad --vocab is refused before the weights are loaded."""
    if args.vocab:
        read_merges_count(args.vocab)  # cheap, and a common mistake: fail before loading the weights
    ckpt = load_checkpoint(args.checkpoint, args.activation, args.open_clip_config, args.layout,
                           trust_code=args.trust_code)
    print(f"detected layout: {ckpt.layout}: {ckpt.description}")
    for note in ckpt.notes:
        print(f"note: {note}")
    model = build_model(ckpt.weights_path, ckpt.state_dict, ckpt.options, ckpt.what)
    tokenizer, copies = resolve_tokenizer(ckpt, args, model.shape)
    return Inputs(ckpt, model, tokenizer, copies)


def fold_and_cast(model: CLIP, no_fold: bool, dtype: str) -> CLIP:
    """The model as it will be stored (in eval mode): a copy folded for inference (in float32, before any
    dtype change) unless no_fold, then a float16 copy for dtype float16 (logit scale and bias stay float32)."""
    if not no_fold:
        model = copy.deepcopy(model)
        fold_for_inference(model.visual)
        fold_for_inference(model.text)
    if dtype == "float16":
        stored = copy.deepcopy(model).half()
        stored.logit_scale.data = model.logit_scale.data.float()  # a scalar; keep its precision
        if stored.logit_bias is not None:
            stored.logit_bias.data = model.logit_bias.data.float()
    else:
        stored = model
    stored.eval()
    return stored


def quantize_towers(stored: CLIP, quantize: str, quantize_text: bool) -> Tuple[nn.Module, nn.Module, Optional[str]]:
    """(image tower, text tower, quantized engine) to script: stored's own towers, or with quantize int8
    dynamic-int8 copies of the image tower (and of the text tower with quantize_text)."""
    if quantize != "int8":
        return stored.visual, stored.text, None
    engine = torch.backends.quantized.engine
    # Per-output-channel weight scales: one scale per row of each Linear instead of one per matrix.
    qspec = {nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
    visual = torch.ao.quantization.quantize_dynamic(copy.deepcopy(stored.visual), qspec, dtype=torch.qint8)
    # The text tower runs once per label set (its features are cached in the zero-shot head), so by
    # default it stays float32: int8 there bought nothing for images/s and moved near-tied labels.
    text = (torch.ao.quantization.quantize_dynamic(copy.deepcopy(stored.text), qspec, dtype=torch.qint8)
            if quantize_text else stored.text)
    n_quant = sum(1 for m in list(visual.modules()) + list(text.modules())
                  if type(m).__module__.startswith("torch.ao.nn.quantized") or "quantized" in type(m).__module__)
    print(f"int8: quantised {n_quant} Linear layers (attention in/out projections included), engine {engine}")
    return visual, text, engine


def build_stored_model(model: CLIP, args: argparse.Namespace) -> StoredModel:
    """The float32 model folded, cast and quantised as --no-fold, --dtype and --quantize say, with its
    projection module."""
    stored = fold_and_cast(model, args.no_fold, args.dtype)
    visual, text, engine = quantize_towers(stored, args.quantize, args.quantize_text)
    projection = Projection(stored.image_projection, stored.text_projection, stored.logit_scale.float(), None,
                            stored.text_projection_bias,
                            None if stored.logit_bias is None else stored.logit_bias.float()).eval()
    return StoredModel(model, stored, visual, text, projection, engine)


def write_modules(out: str, built: StoredModel, copies: Dict[str, str]) -> float:
    """Scripts and saves the towers and the projection into out and copies the tokenizer files, after
    removing a config.json already there; returns the seconds scripting and saving took."""
    os.makedirs(out, exist_ok=True)
    config_path = os.path.join(out, "config.json")
    if os.path.exists(config_path):
        os.remove(config_path)  # a half-written directory must not look complete
    t_script = time.perf_counter()
    for key, module in (("image_encoder", built.visual), ("text_encoder", built.text),
                        ("projection", built.projection)):
        torch.jit.save(torch.jit.script(module.eval()), os.path.join(out, SCRIPTED_FILES[key]))
    script_seconds = time.perf_counter() - t_script
    for name, src in copies.items():
        dst = os.path.join(out, name)
        if os.path.abspath(dst) != os.path.abspath(src):
            shutil.copyfile(src, dst)
    return script_seconds


def reload_export(out: str, built: StoredModel, dtype: str) -> Reloaded:
    """Loads the scripted files from out (refusing a projection.pt that lacks an attribute) and picks where
    the checks run and which eager towers they compare with."""
    img_s = torch.jit.load(os.path.join(out, SCRIPTED_FILES["image_encoder"]), map_location="cpu").eval()
    txt_s = torch.jit.load(os.path.join(out, SCRIPTED_FILES["text_encoder"]), map_location="cpu").eval()
    prj_s = torch.jit.load(os.path.join(out, SCRIPTED_FILES["projection"]), map_location="cpu").eval()
    for name in ("image_projection", "text_projection", "logit_scale", "image_projection_bias",
                 "text_projection_bias", "logit_bias"):
        if not hasattr(prj_s, name):
            raise ExportError(f"projection.pt lacks {name}")
    on_cuda = dtype == "float16" and torch.cuda.is_available()
    if dtype == "float16" and not on_cuda:
        # CPU has no half matmul/conv in torch 1.13: check the stored half weights, computed in float32.
        img_run, txt_run = copy.deepcopy(img_s).float(), copy.deepcopy(txt_s).float()
        eager = copy.deepcopy(built.stored).float()
        eager_visual, eager_text = eager.visual, eager.text
        device = "cpu"
    elif on_cuda:
        device = "cuda"
        img_run, txt_run = img_s.to(device), txt_s.to(device)
        eager_visual = copy.deepcopy(built.stored.visual).to(device)
        eager_text = copy.deepcopy(built.stored.text).to(device)
    else:
        device = "cpu"
        img_run, txt_run, eager_visual, eager_text = img_s, txt_s, built.visual, built.text
    return Reloaded(img_s, txt_s, prj_s, device, img_run, txt_run, eager_visual, eager_text)


def batch_checks(ckpt: LoadedCheckpoint, built: StoredModel, loaded: Reloaded, exact: bool,
                 batch: int) -> Dict[str, Tuple[float, float]]:
    """{check: (max abs diff, relative diff)} of the reloaded files on test_inputs(batch); exact (float32,
    not quantised) adds CLIP.encode_* and the source layout's independent forwards."""
    fp32_model, shape = built.fp32, built.fp32.shape
    pixels, ids = test_inputs(fp32_model, batch, seed=batch)
    pixels, ids = pixels.to(loaded.device), ids.to(loaded.device)
    pi_s, pt_s = loaded.image_run(pixels), loaded.text_run(ids)
    pi_e, pt_e = loaded.eager_visual(pixels), loaded.eager_text(ids)
    if tuple(pi_s.shape) != (batch, shape["vision_width"]) or tuple(pt_s.shape) != (batch, shape["transformer_width"]):
        raise ExportError(f"exported towers give shapes {tuple(pi_s.shape)}, {tuple(pt_s.shape)} for batch {batch}")
    fi_s, ft_s = loaded.projection.project_image(pi_s.cpu()), loaded.projection.project_text(pt_s.cpu())
    checks = {
        "image_encoder": rel_diff(pi_s, pi_e),
        "text_encoder": rel_diff(pt_s, pt_e),
        "image_features": rel_diff(fi_s, built.projection.project_image(pi_e.cpu())),
        "text_features": rel_diff(ft_s, built.projection.project_text(pt_e.cpu())),
    }
    if built.text is built.stored.text:
        # The text encoder on the ids without their trailing zero columns (what zsclip feeds it). A
        # dynamic-int8 text tower (--quantize-text) is left out: its activation scales are taken over
        # the whole input, padding included, so it is not column-exact (its quality is measured
        # against float32 below instead).
        used = int((ids != fp32_model.text.pad_id).nonzero()[:, 1].max()) + 1
        checks["text_encoder_short_ids"] = rel_diff(loaded.text_run(ids[:, :used]), pt_s)
    if exact:
        checks["encode_image_vs_clip"] = rel_diff(fi_s, fp32_model.encode_image(pixels))
        checks["encode_text_vs_clip"] = rel_diff(ft_s, fp32_model.encode_text(ids))
        # An independent forward of the source layout, from the checkpoint's own tensors and config.
        ref_i, ref_t = ckpt.reference(shape, pixels.cpu(), ids.cpu())
        checks["image_features_vs_source"] = rel_diff(fi_s, ref_i)
        checks["text_features_vs_source"] = rel_diff(ft_s, ref_t)
        for label, fn in ckpt.extra_references:
            try:
                ex_i, ex_t = fn(shape, pixels.cpu(), ids.cpu())
            except Exception as e:  # noqa: BLE001 - e.g. an fp16/CUDA-traced archive on this CPU
                print(f"note: {label} could not run here ({type(e).__name__}); compared with the "
                      f"{ckpt.reference_name} only")
                ckpt.extra_references = []
                break
            checks["image_features_vs_archive"] = rel_diff(fi_s, ex_i)
            checks["text_features_vs_archive"] = rel_diff(ft_s, ex_t)
    return checks


def verify_export(ckpt: LoadedCheckpoint, built: StoredModel, loaded: Reloaded, exact: bool,
                  out: str) -> Verification:
    """Runs batch_checks at batches 1 and 3, printing each; a relative diff over REL_TOLERANCE is an
    ExportError (the files stay in out, without config.json)."""
    report = {}
    worst = 0.0
    with torch.no_grad():
        for batch in (1, 3):
            for k, (a, r) in batch_checks(ckpt, built, loaded, exact, batch).items():
                report[f"{k}[N={batch}]"] = {"max_abs_diff": a, "relative": r}
                worst = max(worst, r)
                print(f"verify {k:26s} N={batch}: max abs diff {a:.3e} (relative {r:.3e})")
    if worst > REL_TOLERANCE:
        raise ExportError(f"exported model differs from the eager model or the source layout's forward: worst "
                          f"relative diff {worst:.3e} > {REL_TOLERANCE:.0e} (files left in {out} without "
                          "config.json)")
    return Verification(report, worst, loaded.device, ckpt.reference_name if exact else None)


def measure_reduced_precision(fp32_model: CLIP, loaded: Reloaded, dtype: str, quantize: str) -> Dict[str, Any]:
    """Quality (and, for int8, speed) of a float16 or int8 export against the float32 model, printed; the
    figures for config.json's export.reduced_precision."""
    quality = {}
    pixels, ids = test_inputs(fp32_model, 8, seed=8)
    with torch.no_grad():
        f32_i, f32_t = fp32_model.encode_image(pixels), fp32_model.encode_text(ids)
        q_i = loaded.projection.project_image(loaded.image_run(pixels.to(loaded.device)).cpu())
        q_t = loaded.projection.project_text(loaded.text_run(ids.to(loaded.device)).cpu())
    quality["min_cosine_image_vs_fp32"] = min_cosine(q_i, f32_i)
    quality["min_cosine_text_vs_fp32"] = min_cosine(q_t, f32_t)
    print(f"{dtype}/{quantize}: min cosine vs float32: image {quality['min_cosine_image_vs_fp32']:.5f}, "
          f"text {quality['min_cosine_text_vs_fp32']:.5f} (random inputs, batch 8)")
    if quantize == "int8":
        f32_img_s, f32_txt_s = torch.jit.script(fp32_model.visual), torch.jit.script(fp32_model.text)
        ti_f, ti_q = bench(f32_img_s, pixels), bench(loaded.image, pixels)
        tt_f, tt_q = bench(f32_txt_s, ids), bench(loaded.text, ids)
        quality.update(image_seconds_fp32=ti_f, image_seconds_int8=ti_q, text_seconds_fp32=tt_f,
                       text_seconds_int8=tt_q, threads=torch.get_num_threads())
        print(f"int8 speed (batch 8, {torch.get_num_threads()} threads): image {ti_f * 1e3:.1f} -> {ti_q * 1e3:.1f} ms "
              f"(x{ti_f / ti_q:.2f}), text {tt_f * 1e3:.1f} -> {tt_q * 1e3:.1f} ms (x{tt_f / tt_q:.2f})")
    return quality


def write_config(args: argparse.Namespace, inputs: Inputs, built: StoredModel, verification: Verification,
                 quality: Dict[str, Any]) -> Dict[str, Any]:
    """Writes config.json into --out (last, atomically, with the size and hash of every file it names) and
    prints what the directory holds; returns the config."""
    ckpt, shape, fp32_model = inputs.ckpt, built.fp32.shape, built.fp32
    pp = ckpt.preprocess
    sigmoid = fp32_model.logit_bias is not None
    siglip = shape["vision_type"] == "siglip"
    config = {
        "format_version": FORMAT_VERSION_SENTENCEPIECE if inputs.tokenizer["type"] == "sentencepiece" else FORMAT_VERSION,
        "name": args.name if args.name else ckpt.default_name,
        "fingerprint": fingerprint(built.stored.state_dict(), args.quantize, shape, args.quantize_text),
        # siglip-vit: timm's ViT with the MAP head and no image projection (projection.pt holds the identity)
        "architecture": "siglip-vit" if siglip else "clip-vit",
        "dtype": args.dtype,
        "quantization": args.quantize,
        "activation": shape["vision_activation"],
        "source_layout": ckpt.layout,
        "embed_dim": shape["embed_dim"],
        "vision": {"image_size": shape["image_resolution"], "patch_size": shape["vision_patch_size"],
                   "width": shape["vision_width"], "layers": shape["vision_layers"], "heads": shape["vision_heads"],
                   "mlp_width": shape["vision_mlp_width"], "ln_pre": shape["vision_ln_pre"],
                   "pool": shape["vision_pool"], "final_ln_after_pool": shape["vision_final_ln_after_pool"],
                   "layer_norm_eps": shape["vision_layer_norm_eps"], "activation": shape["vision_activation"]},
        "text": {"context_length": shape["context_length"], "vocab_size": shape["vocab_size"],
                 "width": shape["transformer_width"], "layers": shape["transformer_layers"],
                 "heads": shape["transformer_heads"], "mlp_width": shape["text_mlp_width"],
                 "causal_mask": shape["text_causal_mask"], "pool": shape["text_pool"],
                 "eos_id": shape["text_eos_id"], "layer_norm_eps": shape["text_layer_norm_eps"],
                 "proj_bias": shape["text_proj_bias"], "proj": shape["text_proj"],
                 "activation": shape["text_activation"], "pad_id": shape["text_pad_id"]},
        "preprocess": {"image_size": shape["image_resolution"], "resize": pp["resize"],
                       "interpolation": pp["interpolation"], "crop": pp["crop"], "fill": pp["fill"],
                       "mean": pp["mean"], "std": pp["std"]},
        "tokenizer": inputs.tokenizer,
        "scoring": "sigmoid" if sigmoid else "softmax",
        **({"logit_bias": float(fp32_model.logit_bias)} if sigmoid else {}),
        "files": SCRIPTED_FILES,
        "export": {
            "tool": "models/export_clip.py",
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "source_checkpoint": os.path.basename(os.path.normpath(args.checkpoint)),
            "source_format": ckpt.layout,
            # Over the tensors, not the file: a .safetensors and a .bin of the same weights agree.
            "source_tensors_sha256": ckpt.source_sha256,
            "quantized_engine": built.engine,
            "outputs": "encoders return float32 pooled features; projection computes in float32",
            "folded_for_inference": not args.no_fold,
            "int8_towers": ([] if args.quantize == "none" else ["image", "text"] if args.quantize_text else ["image"]),
            "verification": {"tolerance_relative": REL_TOLERANCE, "device": verification.device,
                             "worst_relative": verification.worst,
                             "independent_reference": verification.independent_reference},
            "reduced_precision": quality or None,
        },
    }
    # Size and XXH3-64 of every file the config names: Model::load refuses an edited or swapped file.
    config["file_checks"] = {name: file_check(os.path.join(args.out, name))
                             for name in sorted(set(SCRIPTED_FILES.values()) | set(inputs.copies))}
    config_path = os.path.join(args.out, "config.json")
    tmp = config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(tmp, config_path)
    sizes = {n: os.path.getsize(os.path.join(args.out, n)) for n in list(SCRIPTED_FILES.values()) + list(inputs.copies)}
    print("wrote " + ", ".join(f"{n} ({s / 1e6:.2f} MB)" for n, s in sizes.items()) + f", config.json to {args.out}")
    return config


def main(argv=None) -> int:
    """read -> build (fold, cast, quantise) -> write the modules -> reload and verify -> write config.json."""
    args = parse_args(argv)
    t_start = time.perf_counter()
    torch.manual_seed(0)
    inputs = read_inputs(args)
    built = build_stored_model(inputs.model, args)
    script_seconds = write_modules(args.out, built, inputs.copies)
    loaded = reload_export(args.out, built, args.dtype)
    exact = args.quantize == "none" and args.dtype == "float32"
    verification = verify_export(inputs.ckpt, built, loaded, exact, args.out)
    quality = {} if exact else measure_reduced_precision(built.fp32, loaded, args.dtype, args.quantize)
    config = write_config(args, inputs, built, verification, quality)
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
