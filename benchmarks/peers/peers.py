#!/usr/bin/python3
"""zsclip against ONNX Runtime on the same model: the driver of benchmarks/peers/run.sh.

    /usr/bin/python3 benchmarks/peers/peers.py [--work /tmp/zsclip-peers] [--rounds 3] [--iters 5] ...

(run.sh installs ONNX Runtime and python3-onnx and builds the binaries first; see benchmarks/README.md,
"ONNX Runtime (peer benchmark)"). Steps, each named in its error message when it fails:

--model picks the checkpoint: `clip` (default: OpenAI's layout, --arch ViT-B/32, in --work) or a
SigLIP in open_clip's hub layout at a released size, `siglip-b16` (ViT-B-16-SigLIP, 224 px) or
`siglip-so400m14` (ViT-SO400M-14-SigLIP, 224 px), in --work/MODEL.

1. prepare (in the work folder, reused while the inputs are unchanged): a random-weight checkpoint
   (models/make_random_checkpoint.py; SigLIP: random_siglip.py), zsclip's export of every variant in
   VARIANTS (models/export_clip.py), the ONNX exports (export_onnx.py: fp32, int8 rewrite);
2. inputs: the readable photos of ../shared/images preprocessed by `zsclip preprocess`, repeated to the
   batch; "a photo of a {c}." for the first ImageNet classes of ../shared/clip/prompts.json, tokenised
   by models/clip_bpe.py (zsclip gets [B, 77] and cuts the columns after every row's end token itself;
   ONNX Runtime gets the same ids cut to max(end position) + 1 columns, so both do the same work);
   SigLIP: by `zsclip tokenize` (the folder's SentencePiece model), padded to the context with the pad
   id; both runners get the full rows (the tower attends over all of them and pools the last);
3. accuracy: every variant's features from both runners on the batch-16 inputs: max abs difference and
   min cosine (fp32 must agree: min cosine >= 0.9999, else the export is wrong and the run stops);
4. speed: --rounds rounds; in each, every (tower, batch, variant) cell runs both runners, one process
   each (warm-up, then timed calls on the whole batch), alternating which goes first; medians and
   min-max over rounds of items/s and of the per-round ratio zsclip / ORT, with the machine's load
   average at the start and end of each round. A markdown table on stdout; everything in
   --work/peers_results.json and the table in --work/peers_results.md.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared"))
PY = "/usr/bin/python3"  # Debian's python3 with torch (the `python3` on PATH may lack it)


@dataclass
class Variant:
    """One precision: zsclip's export (models/export_clip.py flags) against an ONNX file per tower.
    `needs_help` names a word that export_clip.py --help must mention (else the row is skipped)."""
    name: str
    export_flags: List[str]
    onnx: Dict[str, str]  # tower -> file in --work/onnx
    needs_help: str = ""
    note: str = ""
    export: str = ""  # the export folder to load (another variant's); "" = its own, made from export_flags
    load_flags: List[str] = field(default_factory=list)  # peer_bench flags (load-time options)


# One line per variant. int8: the fp32 export loaded with dtype int8 (zsclip's dynamic int8 linear
# layers, both towers; the kernel the CPU gets: vnni-s8s8 or avx2-u8s7) against the int8 rewrite of
# the ONNX graphs (export_onnx.py). The older export-time int8 (export_clip.py --quantize int8) is no
# longer a variant: --precision int8 is the one way to ask for int8. bf16: the fp32 export loaded with dtype bfloat16
# (a load-time mode: linear layers in bf16 on AVX512_BF16) against ORT fp32 (ONNX Runtime has no
# bfloat16 CPU path).
VARIANTS = [
    Variant("fp32", [], {"image": "image_fp32.onnx", "text": "text_fp32.onnx"}),
    Variant("int8", [], {"image": "image_int8.onnx", "text": "text_int8.onnx"}, export="fp32",
            load_flags=["--precision", "int8", "--int8-text", "1"],
            note="zsclip dynamic int8 (fp32 export, ModelOptions::dtype int8, int8_text)"),
    Variant("bf16", [], {"image": "image_fp32.onnx", "text": "text_fp32.onnx"}, export="fp32",
            load_flags=["--precision", "bfloat16"], note="zsclip bf16 (fp32 export, ModelOptions::dtype "
            "bfloat16) vs ORT fp32"),
]


# --model: what the tables call it. clip: OpenAI's layout (--arch); the others: random_siglip.py's MODELS.
MODELS = {"clip": "", "siglip-b16": "SigLIP ViT-B-16-SigLIP (224 px, text context 64)",
          "siglip-so400m14": "SigLIP ViT-SO400M-14-SigLIP (224 px, text context 16)"}


class StepError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def run_step(step: str, cmd: Sequence[str], capture: bool = True) -> str:
    """Runs cmd; a failure raises StepError naming the step, the command and the end of its stderr."""
    try:
        p = subprocess.run(list(cmd), stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise StepError(f"{step}: cannot run {cmd[0]}: {e}") from e
    if p.returncode != 0:
        tail = "\n".join((p.stderr or "").strip().splitlines()[-15:])
        raise StepError(f"{step} failed (exit {p.returncode}): {shlex.join(cmd)}\n{tail}")
    return p.stdout or ""


def file_digest(paths: Sequence[str], extra: Sequence[str] = ()) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for e in extra:
        h.update(e.encode() + b"\n")
    return h.hexdigest()


def up_to_date(out_dir: str, stamp: str, marker: str) -> bool:
    try:
        with open(os.path.join(out_dir, ".peers-stamp")) as f:
            return f.read().strip() == stamp and os.path.exists(os.path.join(out_dir, marker))
    except OSError:
        return False


def write_stamp(out_dir: str, stamp: str) -> None:
    with open(os.path.join(out_dir, ".peers-stamp"), "w") as f:
        f.write(stamp + "\n")


# ---- 1. prepare ------------------------------------------------------------------------------------

def random_checkpoint(args) -> tuple:
    """(the random checkpoint, the export flags that read it): a state dict, or a SigLIP folder."""
    if args.model == "clip":
        ckpt = os.path.join(args.work, "random.pt")
        if not os.path.exists(ckpt):
            log(f"prepare: random {args.arch} checkpoint -> {ckpt}")
            run_step("make_random_checkpoint", [PY, os.path.join(REPO, "models", "make_random_checkpoint.py"),
                                                "--arch", args.arch, "--out", ckpt, "--seed", "0"])
        return ckpt, ["--activation", "quick_gelu"]
    ckpt = os.path.join(args.work, "random-siglip")
    maker = os.path.join(HERE, "random_siglip.py")
    stamp = file_digest([maker], [args.model])
    if not up_to_date(ckpt, stamp, "open_clip_model.safetensors"):
        log(f"prepare: random {args.model} checkpoint (open_clip hub folder) -> {ckpt}")
        run_step("random_siglip.py", [PY, maker, "--model", args.model, "--out", ckpt, "--seed", "0"])
        write_stamp(ckpt, stamp)
    return os.path.join(ckpt, "open_clip_model.safetensors"), []


def prepare(args) -> List[Variant]:
    w = args.work
    os.makedirs(w, exist_ok=True)
    ckpt, ckpt_flags = random_checkpoint(args)
    source = os.path.dirname(ckpt) if args.model != "clip" else ckpt
    exporter = os.path.join(REPO, "models", "export_clip.py")
    help_text = run_step("export_clip.py --help", [PY, exporter, "--help"])
    model_sources = [os.path.join(REPO, "models", f) for f in ("export_clip.py", "clip_model.py")]
    model_sources += sorted(glob.glob(os.path.join(REPO, "models", "layouts", "*.py")))
    vocab = ["--vocab", args.vocab]
    if args.model != "clip":  # the folder carries its tokenizer
        vocab = []
    variants = []
    for v in VARIANTS:
        if args.variants and v.name not in args.variants:
            continue
        if v.needs_help and v.needs_help not in help_text:
            log(f"prepare: skipping the {v.name} row: models/export_clip.py --help does not mention "
                f"{v.needs_help!r} (this zsclip has no {v.name} export)")
            continue
        if v.export:
            if v.export not in [x.name for x in variants]:
                raise StepError(f"prepare: variant {v.name} loads the {v.export} export: run it with {v.export}")
            variants.append(v)
            continue
        out = os.path.join(w, v.name)
        flags = ["--checkpoint", source] + ckpt_flags + vocab + v.export_flags
        stamp = file_digest([ckpt] + model_sources, flags)
        if up_to_date(out, stamp, "config.json"):
            log(f"prepare: zsclip {v.name} export in {out} is up to date")
        else:
            log(f"prepare: zsclip {v.name} export -> {out} ({' '.join(v.export_flags) or 'default flags'})")
            run_step(f"zsclip export of {v.name}", [PY, exporter] + flags + ["--out", out])
            write_stamp(out, stamp)
        variants.append(v)
    onnx_dir = os.path.join(w, "onnx")
    exporter = os.path.join(HERE, "export_onnx.py")
    stamp = file_digest([ckpt, exporter, os.path.join(REPO, "models", "clip_model.py")])
    if up_to_date(onnx_dir, stamp, "export.json"):
        log(f"prepare: ONNX exports in {onnx_dir} are up to date")
    else:
        log(f"prepare: ONNX exports -> {onnx_dir}")
        run_step("ONNX export (benchmarks/peers/export_onnx.py)",
                 [PY, exporter, "--checkpoint", source] + ckpt_flags + ["--out", onnx_dir])
        write_stamp(onnx_dir, stamp)
    return variants


# ---- 2. inputs -------------------------------------------------------------------------------------

def make_inputs(args, batches: Sequence[int]) -> Dict[str, Dict[int, dict]]:
    """{tower: {batch: {"zsclip": file, "ort": file, "length": L, "what": description}}}"""
    w = os.path.join(args.work, "inputs")
    os.makedirs(w, exist_ok=True)
    model_dir = os.path.join(args.work, "fp32")
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    images_dir = os.path.join(SHARED, "images")
    if not os.path.isdir(images_dir):
        raise StepError(f"inputs: {images_dir} not found (the shared data folder next to the repository)")
    pixels, names = [], []
    for name in sorted(os.listdir(images_dir)):
        if not name.lower().endswith((".png", ".jpg", ".jpeg")):
            continue
        out = os.path.join(w, name + ".f32")
        try:
            run_step("zsclip preprocess", [args.zsclip, "preprocess", "--model", model_dir, "--out", out,
                                           os.path.join(images_dir, name)])
        except StepError as e:
            log(f"inputs: skipping {name}: {str(e).splitlines()[-1]}")
            continue
        pixels.append(np.fromfile(out, dtype=np.float32))
        names.append(name)
    if not pixels:
        raise StepError(f"inputs: no readable image in {images_dir}")
    with open(os.path.join(SHARED, "clip", "prompts.json")) as f:
        classes = json.load(f)["ImageNet"]["classes"]
    ctx = int(cfg.get("text", {}).get("context_length", 77))
    if args.model != "clip":
        return siglip_inputs(args, w, model_dir, cfg, classes, ctx, batches, pixels, names)
    sys.path.insert(0, os.path.join(REPO, "models"))
    from clip_bpe import ClipTokenizer  # noqa: E402

    tok_file = os.path.join(model_dir, cfg.get("tokenizer", {}).get("vocab_file", "bpe_simple_vocab_16e6.txt.gz"))
    tokenizer = ClipTokenizer.from_file(tok_file if os.path.exists(tok_file) else args.vocab)
    result: Dict[str, Dict[int, dict]] = {"image": {}, "text": {}}
    for b in batches:
        px = np.stack([pixels[i % len(pixels)] for i in range(b)])
        path = os.path.join(w, f"pixels_b{b}.f32")
        px.astype(np.float32).tofile(path)
        result["image"][b] = {"zsclip": path, "ort": path, "length": None,
                              "what": f"{b} images from {', '.join(names[:min(b, len(names))])}"}
        prompts = [f"a photo of a {c}." for c in classes[:b]]
        ids = tokenizer.tokenize(prompts, ctx, truncate=True).numpy().astype(np.int64)
        used = int(ids.argmax(axis=1).max()) + 1  # the end token is the largest id: CLIP's pooled position
        full, cut = os.path.join(w, f"ids_b{b}.i64"), os.path.join(w, f"ids_b{b}_cut{used}.i64")
        ids.tofile(full)
        np.ascontiguousarray(ids[:, :used]).tofile(cut)
        result["text"][b] = {"zsclip": full, "ort": cut, "length": used,
                             "what": f"{b} prompts, {used} of {ctx} columns"}
    log(f"inputs: {len(names)} images ({', '.join(names)}), ImageNet prompts; text columns used: "
        + ", ".join(f"batch {b}: {result['text'][b]['length']}" for b in batches))
    return result


def siglip_inputs(args, w, model_dir, cfg, classes, ctx, batches, pixels, names) -> Dict[str, Dict[int, dict]]:
    """make_inputs for SigLIP: the prompts' ids by `zsclip tokenize` (SentencePiece, end token, at most ctx),
    padded to ctx with the tokenizer's pad id; both runners get these [B, ctx] rows."""
    prompts = [f"a photo of a {c}." for c in classes[:max(batches)]]
    lines = run_step("zsclip tokenize", [args.zsclip, "tokenize", "--model", model_dir] + prompts).splitlines()
    pad = int(cfg["tokenizer"]["pad_id"])
    rows = [json.loads(line) for line in lines]
    ids_all = np.array([r + [pad] * (ctx - len(r)) for r in rows], dtype=np.int64)
    result: Dict[str, Dict[int, dict]] = {"image": {}, "text": {}}
    for b in batches:
        path = os.path.join(w, f"pixels_b{b}.f32")
        np.stack([pixels[i % len(pixels)] for i in range(b)]).astype(np.float32).tofile(path)
        result["image"][b] = {"zsclip": path, "ort": path, "length": None,
                              "what": f"{b} images from {', '.join(names[:min(b, len(names))])}"}
        ids = os.path.join(w, f"ids_b{b}.i64")
        ids_all[:b].tofile(ids)
        longest = max(len(r) for r in rows[:b])
        result["text"][b] = {"zsclip": ids, "ort": ids, "length": ctx,
                             "what": f"{b} prompts, up to {longest} ids padded to {ctx} with {pad}"}
    log(f"inputs: {len(names)} images ({', '.join(names)}), ImageNet prompts (SentencePiece ids, padded to {ctx})")
    return result


# ---- runners ---------------------------------------------------------------------------------------

def run_zsclip(args, variant: Variant, tower: str, inp: dict, warmup: int, iters: int,
               features: Optional[str] = None) -> dict:
    cmd = [args.peer_bench, "--model", os.path.join(args.work, variant.export or variant.name), "--tower", tower,
           "--input", inp["zsclip"], "--warmup", str(warmup), "--iters", str(iters), "--threads", str(args.threads)]
    cmd += variant.load_flags
    cmd += shlex.split(args.zsclip_args)
    if features:
        cmd += ["--features-out", features]
    return json.loads(run_step(f"zsclip {variant.name} {tower} (peer_bench)", cmd).strip().splitlines()[-1])


def run_ort(args, variant: Variant, tower: str, inp: dict, warmup: int, iters: int,
            features: Optional[str] = None) -> dict:
    cmd = ["node", os.path.join(HERE, "ort_bench.mjs"), "--model", os.path.join(args.work, "onnx", variant.onnx[tower]),
           "--tower", tower, "--input", inp["ort"], "--warmup", str(warmup), "--iters", str(iters),
           "--threads", str(args.threads)]
    if inp["length"]:
        cmd += ["--length", str(inp["length"])]
    if features:
        cmd += ["--features-out", features]
    return json.loads(run_step(f"ONNX Runtime {variant.name} {tower} (ort_bench.mjs)", cmd).strip().splitlines()[-1])


# ---- 3. accuracy -----------------------------------------------------------------------------------

def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def accuracy(args, variants: List[Variant], inputs, towers: Sequence[str], batch: int) -> List[dict]:
    w = os.path.join(args.work, "features")
    os.makedirs(w, exist_ok=True)
    feats: Dict[tuple, np.ndarray] = {}
    rows = []
    for tower in towers:
        inp = inputs[tower][batch]
        for v in variants:
            for runner, fn in (("zsclip", run_zsclip), ("ort", run_ort)):
                path = os.path.join(w, f"{runner}_{v.name}_{tower}_b{batch}.f32")
                fn(args, v, tower, inp, 0, 1, features=path)
                feats[(runner, v.name, tower)] = np.fromfile(path, dtype=np.float32).reshape(batch, -1)
        ref = feats.get(("ort", "fp32", tower))
        for v in variants:
            z, o = feats[("zsclip", v.name, tower)], feats[("ort", v.name, tower)]
            row = {"variant": v.name, "tower": tower, "batch": batch,
                   "max_abs": float(np.abs(z - o).max()), "max_abs_ref": float(np.abs(o).max()),
                   "min_cos": float(cosines(z, o).min())}
            if ref is not None and v.name != "fp32":
                row["zsclip_min_cos_vs_fp32"] = float(cosines(z, ref).min())
                row["ort_min_cos_vs_fp32"] = float(cosines(o, ref).min())
            rows.append(row)
    return rows


def accuracy_table(rows: List[dict]) -> str:
    lines = ["| tower | variant | max abs diff zsclip vs ORT (max abs value) | min cosine zsclip vs ORT "
             "| min cosine vs fp32: zsclip / ORT |", "|---|---|---|---|---|"]
    for r in rows:
        vs = (f"{r['zsclip_min_cos_vs_fp32']:.5f} / {r['ort_min_cos_vs_fp32']:.5f}"
              if "zsclip_min_cos_vs_fp32" in r else "-")
        lines.append(f"| {r['tower']} | {r['variant']} | {r['max_abs']:.3g} ({r['max_abs_ref']:.3g}) "
                     f"| {r['min_cos']:.6f} | {vs} |")
    return "\n".join(lines)


# ---- 4. speed --------------------------------------------------------------------------------------

def calls_for(args, tower: str) -> tuple:
    return (args.warmup, args.iters) if tower == "image" else (args.warmup * 2, args.iters * args.text_factor)


def speed(args, variants: List[Variant], inputs, towers, batches) -> dict:
    cells = [(t, b, v) for t in towers for b in batches for v in variants]
    runs: Dict[str, List[dict]] = {}
    rounds = []
    for r in range(args.rounds):
        load_start = os.getloadavg()
        t0 = time.time()
        for i, (tower, batch, v) in enumerate(cells):
            warmup, iters = calls_for(args, tower)
            order = [("zsclip", run_zsclip), ("ort", run_ort)]
            if (r + i) % 2:
                order.reverse()
            key = f"{tower}/{batch}/{v.name}"
            for runner, fn in order:
                res = fn(args, v, tower, inputs[tower][batch], warmup, iters)
                res["round"] = r
                res["first"] = order[0][0]
                runs.setdefault(key, []).append(res)
            z, o = runs[key][-2:] if runs[key][-2]["runner"] == "zsclip" else runs[key][-2:][::-1]
            log(f"round {r + 1}/{args.rounds} {key}: zsclip {z['items_per_s']:.1f}/s, ORT {o['items_per_s']:.1f}/s "
                f"({order[0][0]} first)")
        load_end = os.getloadavg()
        rounds.append({"round": r, "seconds": round(time.time() - t0, 1),
                       "loadavg_start": [round(x, 2) for x in load_start],
                       "loadavg_end": [round(x, 2) for x in load_end]})
        log(f"round {r + 1}: load average (1/5/15 min) start {rounds[-1]['loadavg_start']}, end {rounds[-1]['loadavg_end']}")
    summary = []
    for tower, batch, v in cells:
        key = f"{tower}/{batch}/{v.name}"
        by_round: Dict[int, Dict[str, float]] = {}
        for res in runs[key]:
            by_round.setdefault(res["round"], {})[res["runner"]] = res["items_per_s"]
        z = [x["zsclip"] for x in by_round.values()]
        o = [x["ort"] for x in by_round.values()]
        ratio = [x["zsclip"] / x["ort"] for x in by_round.values()]
        summary.append({"tower": tower, "batch": batch, "variant": v.name, "note": v.note,
                        "unit": "images/s" if tower == "image" else "prompts/s",
                        "zsclip": stats(z), "ort": stats(o), "ratio": stats(ratio)})
    return {"cells": summary, "rounds": rounds, "runs": runs}


def stats(xs: List[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "values": xs}


def speed_table(result: dict) -> str:
    def fmt(s, digits=1):
        if s["min"] == s["max"]:
            return f"{s['median']:.{digits}f}"
        return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"

    lines = ["| tower | batch | precision | zsclip | ONNX Runtime | zsclip / ORT |", "|---|---|---|---|---|---|"]
    for c in result["cells"]:
        prec = c["variant"] + (f" ({c['note']})" if c["note"] else "")
        lines.append(f"| {c['tower']} ({c['unit']}) | {c['batch']} | {prec} | {fmt(c['zsclip'])} | {fmt(c['ort'])} "
                     f"| {fmt(c['ratio'], 2)} |")
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="zsclip against ONNX Runtime (benchmarks/peers/run.sh runs this)")
    p.add_argument("--work", default=os.environ.get("ZSCLIP_PEERS_WORK", "/tmp/zsclip-peers"),
                   help="work folder: checkpoint, exports, inputs, features, results (default /tmp/zsclip-peers)")
    p.add_argument("--build", default=os.path.join(REPO, "build-perf"), help="zsclip build folder (bin/peer_bench, bin/zsclip)")
    p.add_argument("--model", choices=MODELS, default="clip",
                   help="clip (default): OpenAI's layout of --arch; siglip-b16 / siglip-so400m14: a random SigLIP "
                   "in open_clip's hub layout (random_siglip.py), in --work/MODEL")
    p.add_argument("--arch", default="ViT-B/32", help="with --model clip: the OpenAI architecture (default ViT-B/32)")
    p.add_argument("--vocab", default=os.path.join(SHARED, "clip", "bpe_simple_vocab_16e6.txt.gz"))
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per process (text: twice this)")
    p.add_argument("--iters", type=int, default=5, help="timed calls per process, image tower (default 5)")
    p.add_argument("--text-factor", type=int, default=4, help="the text tower gets iters x this timed calls")
    p.add_argument("--threads", type=int, default=2, help="threads for both runners (default 2)")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--towers", default="image,text")
    p.add_argument("--variants", default="", help="comma-separated subset of " + ",".join(v.name for v in VARIANTS))
    p.add_argument("--zsclip-args", default="", help="extra peer_bench flags, e.g. '--streams 1 --intra-op-threads 2'")
    p.add_argument("--skip-speed", action="store_true", help="prepare and check accuracy only")
    args = p.parse_args(argv)
    args.work = os.path.abspath(args.work if args.model == "clip" else os.path.join(args.work, args.model))
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = set(args.variants) - {v.name for v in VARIANTS}
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}")
    if args.rounds < 1 or args.iters < 1 or args.warmup < 0:
        p.error("--rounds and --iters must be >= 1, --warmup >= 0")
    args.peer_bench = os.path.join(args.build, "bin", "peer_bench")
    args.zsclip = os.path.join(args.build, "bin", "zsclip")
    return args


def cpu_flags() -> str:
    """The CPU's SIMD flags that decide the kernels (avx2, fma, avx512*, avx_vnni, amx*), from /proc/cpuinfo,
    and what zsclip was told to lower them to ($ONEDNN_MAX_CPU_ISA / $ZSCLIP_MAX_CPU_ISA; ONNX Runtime
    ignores both, so its figures are the CPU's own)."""
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = {x for x in line.split(":", 1)[1].split()
                             if x in ("avx2", "fma", "avx_vnni") or x.startswith(("avx512", "amx"))}
                    break
    except OSError:
        pass
    out = " ".join(sorted(flags)) or "unknown"
    if "cpuid-mask" in os.environ.get("LD_PRELOAD", ""):
        out += ("; AVX2 emulated: run.sh --as-avx2 (tools/cpu_mask/as-avx2) hid AVX-512, VNNI and BF16 from "
                "both runners, so both ran their AVX2 kernels on this CPU")
    for var in ("ONEDNN_MAX_CPU_ISA", "ZSCLIP_MAX_CPU_ISA"):
        if os.environ.get(var):
            out += f"; zsclip limited by {var}={os.environ[var]} (emulated; ONNX Runtime unrestricted)"
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    towers = [t for t in args.towers.split(",") if t]
    for path, what in ((args.peer_bench, "zsclip's peer_bench (cmake --build build-perf --target peer_bench)"),
                       (args.zsclip, "the zsclip CLI (cmake --build build-perf --target zsclip_cli)"),
                       (args.vocab, "the BPE vocabulary (../shared/clip next to the repository)"),
                       (os.path.join(HERE, "node_modules", "onnxruntime-node"), "onnxruntime-node (run.sh installs it)")):
        if not os.path.exists(path):
            raise StepError(f"setup: {path} not found: {what}")
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    variants = prepare(args)
    inputs = make_inputs(args, sorted(set(batches) | {16}))
    acc_batch = 16
    acc = accuracy(args, variants, inputs, towers, acc_batch)
    log(f"\naccuracy (batch {acc_batch}, the same inputs to both runners):\n" + accuracy_table(acc) + "\n")
    bad = [r for r in acc if r["variant"] == "fp32" and r["min_cos"] < 0.9999]
    if bad:
        raise StepError("accuracy: fp32 features of zsclip and ONNX Runtime disagree (min cosine "
                        + ", ".join(f"{r['tower']} {r['min_cos']:.6f}" for r in bad) + "): the ONNX export does not "
                        "compute the same model")
    model = MODELS[args.model] or args.arch
    result = {"started": started, "model": model, "machine": os.uname().nodename, "cores": os.cpu_count(),
              "cpu_flags": cpu_flags(),
              "args": {k: v for k, v in vars(args).items()}, "accuracy": acc,
              "variants": [v.name for v in variants],
              "skipped_variants": [v.name for v in VARIANTS if v.name not in [x.name for x in variants]],
              "inputs": {t: {str(b): inputs[t][b]["what"] for b in batches} for t in towers}}
    if not args.skip_speed:
        result["speed"] = speed(args, variants, inputs, towers, batches)
        table = speed_table(result["speed"])
        loads = [x for r in result["speed"]["rounds"] for x in (r["loadavg_start"][0], r["loadavg_end"][0])]
        header = (f"zsclip vs ONNX Runtime 1.30.0, random {model}, {args.threads} threads, {args.rounds} rounds "
                  f"(medians, min-max over rounds; ratio: median of per-round ratios), 1-min load "
                  f"{min(loads):.2f}-{max(loads):.2f}, {started}; CPU flags: {cpu_flags()}")
        log("\n" + header + "\n\n" + table)
        with open(os.path.join(args.work, "peers_results.md"), "w") as f:
            f.write(header + "\n\n" + accuracy_table(acc) + "\n\n" + table + "\n")
    with open(os.path.join(args.work, "peers_results.json"), "w") as f:
        json.dump(result, f, indent=1)
    log(f"\nresults: {os.path.join(args.work, 'peers_results.json')}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StepError as e:
        print(f"peers: error: {e}", file=sys.stderr)
        sys.exit(1)
