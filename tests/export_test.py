#!/usr/bin/python3
"""Tests of models/export_clip.py on the reference folders in ../shared/clip (a ctest, run with Debian's
/usr/bin/python3: torch 1.13, numpy).

    /usr/bin/python3 tests/export_test.py [--source DIR] [--shared DIR] [--work DIR] [--keep]

1. Parity: exports openai-tiny (TorchScript archive, and the state dict with --activation quick_gelu),
   openclip-gelu, openclip-knobs, openclip-longest and hf-tiny, runs the exported TorchScript files on
   the reference pixels and token ids (zero-padded to the context length) and compares image_features,
   text_features, logits_per_image (and for sigmoid models logit_bias, the biased logits and their
   sigmoid) with reference.json: max abs error <= 1e-4 x max |reference|, and the same argmax per row.
   Prints the table that models/README.md quotes.
2. Determinism: the same open_clip and HF folders with their weights as a torch.save .bin instead of
   .safetensors give byte-identical exported files.
3. Refusals, each with a message naming the cause: a bare state dict without --activation, an unknown
   config key, unsupported knobs, an unknown tensor, HF model_type siglip, malformed safetensors files
   (truncated, bad header length, not JSON, missing field, overlapping and out-of-range offsets, bad
   dtype), a wrong --num-merges; and acceptance of old HF checkpoints with position_ids buffers, HF's
   legacy eos_token_id 2, and a bare open_clip checkpoint with --open-clip-config.
Exit status 0 when everything passes, 1 on a failure, 77 (skipped) when the reference material is absent.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import numpy as np
    import torch
except ImportError as _e:  # checked in main(): the test is skipped, not failed
    np = torch = None
    _IMPORT_ERROR = _e

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDERS = ["openai-tiny", "openclip-gelu", "openclip-knobs", "openclip-longest", "hf-tiny"]
TOL = 1e-4

failures = []


def check(cond: bool, what: str) -> None:
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def export_cli(source: str, args, env_extra=None):
    """Runs the exporter as users do; (returncode, stdout+stderr)."""
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)  # the exporter must fix it itself
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, os.path.join(source, "models", "export_clip.py")] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return p.returncode, p.stdout


def export_inprocess(args):
    """Runs export_clip.main in this process; (error message or None, output)."""
    import export_clip
    from clip_model import CheckpointError
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            export_clip.main(list(args))
    except (export_clip.ExportError, CheckpointError) as e:
        return str(e), out.getvalue()
    return None, out.getvalue()


def expect_refusal(args, needles, what):
    err, out = export_inprocess(args)
    if err is None:
        check(False, f"{what}: was not refused")
        return
    missing = [n for n in needles if n not in err]
    check(not missing, f"{what}: message lacks {missing}: {err}")
    print(f"ok   refused {what}: {err[:150]}{'...' if len(err) > 150 else ''}")


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-12))


def same_argmax(a: np.ndarray, ref: np.ndarray) -> bool:
    return bool((a.argmax(axis=1) == ref.argmax(axis=1)).all())


def parity(model_dir: str, folder: str, label: str, rows: list) -> None:
    """The exported files against reference.json (pixels and token ids given by the reference)."""
    ref = json.load(open(os.path.join(folder, "reference.json")))
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    img = torch.jit.load(os.path.join(model_dir, cfg["files"]["image_encoder"])).eval()
    txt = torch.jit.load(os.path.join(model_dir, cfg["files"]["text_encoder"])).eval()
    prj = torch.jit.load(os.path.join(model_dir, cfg["files"]["projection"])).eval()
    size, ctx = cfg["preprocess"]["image_size"], cfg["text"]["context_length"]
    pixels = []
    for im in ref["images"]:
        raw = np.fromfile(os.path.join(folder, im["pixels"]), dtype="<f4")
        pixels.append(raw.reshape(3, size, size))
    pad = cfg["tokenizer"].get("pad_id", 0)  # SigLIP: the tokenizer's pad id (1 or 0); CLIP: 0
    ids = torch.full((len(ref["texts"]), ctx), pad, dtype=torch.long)
    for j, t in enumerate(ref["texts"]):
        tokens = t.get("tokens_padded", t["tokens"])
        ids[j, :len(tokens)] = torch.tensor(tokens)
    with torch.no_grad():
        fi = prj.project_image(img(torch.from_numpy(np.stack(pixels)))).numpy()
        ft = prj.project_text(txt(ids)).numpy()
        # zsclip drops trailing padding columns where the config allows it; the result must not change.
        used = int((ids != pad).nonzero()[:, 1].max()) + 1
        ft_short = prj.project_text(txt(ids[:, :used])).numpy()
    a = fi / np.linalg.norm(fi, axis=1, keepdims=True)
    b = ft / np.linalg.norm(ft, axis=1, keepdims=True)
    scale = float(prj.logit_scale.exp())
    logits = scale * a @ b.T
    ri, rt = np.array([x["image_features"] for x in ref["images"]]), np.array([x["text_features"] for x in ref["texts"]])
    errs = {"image_features": rel_err(fi, ri), "text_features": rel_err(ft, rt)}
    argmax_ok = same_argmax(fi, ri) and same_argmax(ft, rt)
    if "logits_per_image" in ref:  # hf-siglip-tiny gives the biased logits only
        rl = np.array(ref["logits_per_image"])
        errs["logits_per_image"] = rel_err(logits, rl)
        argmax_ok = argmax_ok and same_argmax(logits, rl)
    check(abs(scale - ref["logit_scale_exp"]) <= TOL * ref["logit_scale_exp"], f"{label}: logit_scale_exp {scale}")
    check(rel_err(ft_short, ft) <= 1e-6, f"{label}: text features depend on trailing padding columns")
    if "logit_bias" in ref:
        bias = float(prj.logit_bias)
        check(cfg["scoring"] == "sigmoid" and cfg["logit_bias"] == ref["logit_bias"] and bias == ref["logit_bias"],
              f"{label}: scoring {cfg['scoring']} / logit_bias {cfg.get('logit_bias')} / {bias} vs {ref['logit_bias']}")
        with_bias = logits + bias
        errs["logits_with_bias"] = rel_err(with_bias, np.array(ref["logits_per_image_with_bias"]))
        errs["sigmoid"] = rel_err(1 / (1 + np.exp(-with_bias)), np.array(ref["sigmoid_per_image"]))
        argmax_ok = argmax_ok and same_argmax(with_bias, np.array(ref["logits_per_image_with_bias"]))
    else:
        check(cfg["scoring"] == "softmax" and prj.logit_bias.numel() == 0, f"{label}: scoring should be softmax")
    for k, e in errs.items():
        check(e <= TOL, f"{label}: {k} relative error {e:.2e} > {TOL:.0e}")
    check(argmax_ok, f"{label}: argmax differs from the reference")
    rows.append((label, errs, argmax_ok))
    print(f"ok   parity {label}: " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))


def corrupt_safetensors(src: str, dst: str, how: str) -> None:
    blob = open(src, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    names = [k for k in header if k != "__metadata__"]
    spans = sorted(names, key=lambda k: header[k]["data_offsets"][0])
    if how == "truncated":
        out = blob[:len(blob) - 1000]
    elif how == "bad_header_length":
        out = struct.pack("<Q", len(blob)) + blob[8:]
    elif how == "not_json":
        out = struct.pack("<Q", n) + b"{" + b"x" * (n - 1) + data
    else:
        if how == "overlap":
            first, second = spans[0], spans[1]
            header[second]["data_offsets"] = [header[first]["data_offsets"][0], header[first]["data_offsets"][0]
                                              + header[second]["data_offsets"][1] - header[second]["data_offsets"][0]]
        elif how == "out_of_range":
            last = spans[-1]
            b0, b1 = header[last]["data_offsets"]
            header[last]["data_offsets"] = [b0 + 64, b1 + 64]
        elif how == "bad_dtype":
            header[spans[0]]["dtype"] = "F33"
        elif how == "missing_field":
            del header[spans[0]]["shape"]
        elif how == "wrong_size":
            header[spans[0]]["shape"] = header[spans[0]]["shape"] + [2]
        text = json.dumps(header).encode()
        out = struct.pack("<Q", len(text)) + text + data
    open(dst, "wb").write(out)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--source", default=os.path.dirname(HERE))
    p.add_argument("--shared", default=None)
    p.add_argument("--work", default=None, help="work directory (emptied first, kept afterwards; default: a "
                                                "temporary one, removed unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    args = p.parse_args()
    if torch is None:
        print(f"SKIP: {sys.executable} cannot import torch/numpy ({_IMPORT_ERROR}); run with Debian's /usr/bin/python3 "
              "(python3-torch, python3-numpy)")
        return 77
    source = os.path.abspath(args.source)
    shared = os.path.abspath(args.shared or os.path.join(source, "..", "shared"))
    clip = os.path.join(shared, "clip")
    missing = [f for f in FOLDERS if not os.path.isfile(os.path.join(clip, f, "reference.json"))]
    vocab = os.path.join(clip, "bpe_simple_vocab_16e6.txt.gz")
    if missing or not os.path.isfile(vocab):
        print(f"reference material {clip} is absent ({', '.join(missing) or vocab}): export tests are skipped")
        return 77
    sys.path.insert(0, os.path.join(source, "models"))
    torch.set_num_threads(1)
    work = args.work or tempfile.mkdtemp(prefix="zsclip_export_test_")
    if args.work:  # a fresh directory: stale files would spoil the byte-for-byte comparisons
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    try:
        run(source, clip, vocab, work)
    except Exception:  # noqa: BLE001 - report, then fail
        traceback.print_exc()
        failures.append("unexpected exception")
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'FAILED' if failures else 'passed'} in {time.time() - t0:.0f} s"
          + (f": {len(failures)} failure(s)" if failures else ""))
    return 1 if failures else 0


def rows_only_matches_full() -> None:
    """fold_for_inference's pooled-row last block (Transformer.forward_rows) against the full last block:
    random towers with every pooling that uses it, with and without the causal mask, eager and scripted."""
    import copy
    from clip_model import TextTower, VisionTower, fold_for_inference
    torch.manual_seed(7)
    towers = [("vision tok", VisionTower(32, 8, 64, 3, 4), torch.randn(3, 3, 32, 32))]
    ids = torch.randint(1, 90, (4, 12))
    ids[0, 5] = 99  # argmax and eos mid-row; other rows pool elsewhere
    ids[1, 11] = 99
    for pool in ("argmax", "eos", "first", "last"):
        for causal in (True, False):
            towers.append((f"text {pool}{' causal' if causal else ''}",
                           TextTower(16, 100, 64, 3, 4, causal_mask=causal, pool=pool, eos_id=99), ids))
    for label, tower, x in towers:
        with torch.no_grad():  # some parameters start as torch.empty
            for param in tower.parameters():
                param.normal_(0.0, 0.2)
        tower = fold_for_inference(tower.eval())
        check(tower.rows_only, f"{label}: fold_for_inference left rows_only off")
        full = copy.deepcopy(tower)
        full.rows_only = False
        with torch.no_grad():
            want = full(x)
            for how, m in (("eager", tower), ("scripted", torch.jit.script(tower))):
                got = m(x)
                err = rel_err(got.numpy(), want.numpy())
                check(got.shape == want.shape and err <= 1e-6, f"{label} ({how}): pooled-row last block differs "
                                                              f"from the full one by {err:.1e}")
    avg = fold_for_inference(VisionTower(32, 8, 64, 2, 4, pool="avg"))
    check(not avg.rows_only, "vision avg pooling reads every row: rows_only must stay off")
    print(f"ok   pooled-row last block equals the full one ({len(towers)} towers)")


def run(source: str, clip: str, vocab: str, work: str) -> None:
    rows_only_matches_full()
    # ---- 1. parity with reference.json, through the CLI ----------------------------------------------
    rows = []
    tiny = os.path.join(clip, "openai-tiny")
    cases = [
        ("openai-tiny (jit_archive.pt)", "openai-tiny-jit", [os.path.join(tiny, "jit_archive.pt"), "--vocab", vocab],
         tiny, "openai_torchscript"),
        ("openai-tiny (state_dict.pt)", "openai-tiny-sd",
         [os.path.join(tiny, "state_dict.pt"), "--vocab", vocab, "--activation", "quick_gelu"], tiny,
         "openai_state_dict"),
    ] + [(name, name, [os.path.join(clip, name)] + ([] if name == "hf-tiny" else ["--vocab", vocab]),
          os.path.join(clip, name), "hf_clip" if name == "hf-tiny" else "open_clip") for name in FOLDERS[1:]]
    for label, out, cli, folder, layout in cases:
        rc, log = export_cli(source, ["--checkpoint"] + cli + ["--out", os.path.join(work, out)])
        if rc != 0:
            check(False, f"export of {label} failed:\n{log}")
            continue
        check(f"detected layout: {layout}" in log, f"{label}: the exporter did not print 'detected layout: {layout}'")
        cfg = json.load(open(os.path.join(work, out, "config.json")))
        check(cfg["format_version"] == 2 and cfg["source_layout"] == layout, f"{label}: config header {cfg}")
        parity(os.path.join(work, out), folder, label, rows)
    print("\n| reference | image features | text features | logits_per_image | logits + logit_bias / sigmoid "
          "| same argmax |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, e, ok in rows:
        bias = f"{e['logits_with_bias']:.1e} / {e['sigmoid']:.1e}" if "sigmoid" in e else "—"
        plain = f"{e['logits_per_image']:.1e}" if "logits_per_image" in e else "—"
        print(f"| {label} | {e['image_features']:.1e} | {e['text_features']:.1e} | {plain} | "
              f"{bias} | {'yes' if ok else 'NO'} |")
    print()
    # The two OpenAI forms are the same model: same tensors, same config apart from the source.
    a, b = (json.load(open(os.path.join(work, d, "config.json"))) for d in ("openai-tiny-jit", "openai-tiny-sd"))
    check(a["fingerprint"] == b["fingerprint"], "openai-tiny: archive and state dict exports have different fingerprints")
    # OpenAI-architecture exports keep the fingerprint format_version 1 gave them (saved heads stay valid).
    check(a["fingerprint"] == "1b118402191bb1e09e8fab83066cb434635b0eebb4e1c0b1bb580162464b1921",
          f"openai-tiny: fingerprint {a['fingerprint']} is not the one format_version 1 exports had")

    # ---- 2. .safetensors and .bin exports are byte-identical ------------------------------------------
    from safetensors_io import read_safetensors
    for name, weights, bin_name, extra in (
            ("openclip-knobs", "open_clip_model.safetensors", "open_clip_pytorch_model.bin", ["--vocab", vocab]),
            ("hf-tiny", "model.safetensors", "pytorch_model.bin", [])):
        src = os.path.join(clip, name)
        alt = os.path.join(work, "bin", name)  # same folder name: the default model name is the folder's
        os.makedirs(alt, exist_ok=True)
        for f in os.listdir(src):
            if f != weights and not os.path.isdir(os.path.join(src, f)) and f != "reference.json":
                shutil.copyfile(os.path.join(src, f), os.path.join(alt, f))
        tensors, _ = read_safetensors(os.path.join(src, weights))
        torch.save(tensors, os.path.join(alt, bin_name))
        rc, log = export_cli(source, ["--checkpoint", alt, "--out", os.path.join(work, name + "-bin")] + extra)
        check(rc == 0, f"export of {name} from {bin_name} failed:\n{log}")
        first = os.path.join(work, name)
        files = sorted(os.listdir(first))
        same = [f for f in files if open(os.path.join(first, f), "rb").read()
                == open(os.path.join(work, name + "-bin", f), "rb").read()]
        check(same == files, f"{name}: .safetensors and .bin exports differ in {sorted(set(files) - set(same))}")
        print(f"ok   {name}: .safetensors and .bin exports byte-identical ({', '.join(files)})")

    # ---- 3. refusals and accepted variants (in this process: faster) ---------------------------------
    sd_path = os.path.join(tiny, "state_dict.pt")
    out = os.path.join(work, "scratch")
    expect_refusal(["--checkpoint", sd_path, "--vocab", vocab, "--out", out],
                   ["--activation", "quick_gelu", "gelu", "OpenAI", "laion400m", "metaclip", "dfn", "laion2b",
                    "datacomp"], "bare state dict without --activation")
    rc, log = export_cli(source, ["--checkpoint", sd_path, "--vocab", vocab, "--out", out])
    check(rc == 1 and "error:" in log and "--activation" in log, f"CLI exit status {rc} for a bare state dict:\n{log}")
    expect_refusal(["--checkpoint", os.path.join(tiny, "jit_archive.pt"), "--vocab", vocab, "--out", out,
                    "--activation", "gelu"], ["QuickGELU"], "--activation gelu for an OpenAI TorchScript archive")
    expect_refusal(["--checkpoint", sd_path, "--vocab", vocab, "--out", out, "--activation", "quick_gelu",
                    "--num-merges", "40000"], ["num_merges", "49408"], "--num-merges that zsclip would refuse")
    expect_refusal(["--checkpoint", os.path.join(clip, "openclip-gelu"), "--out", out], ["--vocab"],
                   "open_clip folder without --vocab")

    def variant(name: str, edit_cfg=None, edit_tensors=None, cfg_file="open_clip_config.json",
                weights="open_clip_model.safetensors", src_name=None):
        """A copy of a reference folder with its config and/or tensors edited."""
        from safetensors_io import write_safetensors
        src = os.path.join(clip, src_name or "openclip-gelu")
        dst = os.path.join(work, "variants", name)
        shutil.rmtree(dst, ignore_errors=True)
        os.makedirs(dst)
        for f in os.listdir(src):
            if f not in ("pixels", "reference.json", weights, cfg_file):
                shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
        cfg = json.load(open(os.path.join(src, cfg_file)))
        if edit_cfg:
            edit_cfg(cfg)
        json.dump(cfg, open(os.path.join(dst, cfg_file), "w"), indent=1)
        if edit_tensors:
            tensors, meta = read_safetensors(os.path.join(src, weights))
            edit_tensors(tensors)
            write_safetensors(os.path.join(dst, weights), tensors, meta)
        else:
            os.symlink(os.path.join(src, weights), os.path.join(dst, weights))
        return dst

    def oc(args_dir):
        return ["--checkpoint", args_dir, "--vocab", vocab, "--out", out]

    expect_refusal(oc(variant("unknown-key", lambda c: c["model_cfg"]["vision_cfg"].update(foo=1))),
                   ["vision_cfg.foo"], "unknown open_clip config key")
    expect_refusal(oc(variant("unknown-top", lambda c: c.update(tokenizer_cfg={}))), ["tokenizer_cfg"],
                   "unknown open_clip top-level key")
    expect_refusal(oc(variant("ls", lambda c: c["model_cfg"]["text_cfg"].update(ls_init_value=0.1))),
                   ["text_cfg.ls_init_value"], "layer scale (ls_init_value)")
    expect_refusal(oc(variant("attnpool", lambda c: c["model_cfg"]["vision_cfg"].update(attentional_pool=True))),
                   ["attentional_pool"], "attentional pooling")
    expect_refusal(oc(variant("pool", lambda c: c["model_cfg"]["text_cfg"].update(pool_type="mean"))),
                   ["pool_type", "mean"], "unknown text pool_type")
    expect_refusal(oc(variant("act", lambda c: c["model_cfg"]["vision_cfg"].update(act_kwargs={"approximate": "tanh"}))),
                   ["vision_cfg.act_kwargs"], "act_kwargs")
    expect_refusal(oc(variant("posemb", lambda c: c["model_cfg"]["vision_cfg"].update(pos_embed_type="sin_cos_2d"))),
                   ["pos_embed_type"], "non-learnable pos_embed_type")
    expect_refusal(oc(variant("coca", lambda c: c["model_cfg"].update(multimodal_cfg={"width": 64}))),
                   ["multimodal_cfg", "CoCa"], "CoCa")
    expect_refusal(oc(variant("timm", lambda c: c["model_cfg"]["vision_cfg"].update(timm_model_name="vit_base"))),
                   ["timm"], "timm image tower")
    expect_refusal(oc(variant("hftext", lambda c: c["model_cfg"]["text_cfg"].update(hf_model_name="roberta-base"))),
                   ["hf_model_name"], "HF text tower in open_clip")
    expect_refusal(oc(variant("embcls", lambda c: c["model_cfg"]["text_cfg"].update(embed_cls=True))),
                   ["embed_cls"], "embed_cls")
    err, _ = export_inprocess(oc(variant("dropout", lambda c: c["model_cfg"]["vision_cfg"].update(patch_dropout=0.5))))
    check(err is None, f"patch_dropout (training only) should be accepted: {err}")
    expect_refusal(oc(variant("extra-tensor", edit_tensors=lambda t: t.update(
        {"visual.transformer.resblocks.0.ls_1.gamma": torch.ones(128)}))),
        ["visual.transformer.resblocks.0.ls_1.gamma"], "unknown tensor key")
    expect_refusal(oc(variant("missing-tensor", edit_tensors=lambda t: t.pop("visual.ln_pre.weight"))),
                   ["visual.ln_pre.weight"], "missing tensor")
    expect_refusal(["--checkpoint", variant("siglip", lambda c: c.update(model_type="siglip"), cfg_file="config.json",
                                            weights="model.safetensors", src_name="hf-tiny"), "--out", out],
                   ["CLIPModel", "SiglipModel"], "HF CLIPModel config with model_type siglip")
    expect_refusal(["--checkpoint", variant("hf-unknown", lambda c: c["vision_config"].update(use_rope=True),
                                            cfg_file="config.json", weights="model.safetensors", src_name="hf-tiny"),
                    "--out", out], ["vision_config.use_rope"], "unknown HF config key")
    expect_refusal(["--checkpoint", variant("hf-act", lambda c: [c[s].update(hidden_act="gelu_new") for s in
                                                                 ("text_config", "vision_config")],
                                            cfg_file="config.json", weights="model.safetensors", src_name="hf-tiny"),
                    "--out", out], ["gelu_new"], "HF hidden_act gelu_new")
    expect_refusal(["--checkpoint", variant("hf-extra", edit_tensors=lambda t: t.update(
        {"visual_projection.bias": torch.zeros(64)}), cfg_file="config.json", weights="model.safetensors",
        src_name="hf-tiny"), "--out", out], ["visual_projection.bias"], "unknown HF tensor")

    # Old HF checkpoints carry position_ids buffers (int64): accepted, same model.
    def add_position_ids(t):
        t["text_model.embeddings.position_ids"] = torch.arange(77).reshape(1, 77)
        t["vision_model.embeddings.position_ids"] = torch.arange(50).reshape(1, 50)
    hf_old = variant("hf-position-ids", edit_tensors=add_position_ids, cfg_file="config.json",
                     weights="model.safetensors", src_name="hf-tiny")
    err, log = export_inprocess(["--checkpoint", hf_old, "--out", os.path.join(work, "hf-old")])
    check(err is None, f"HF checkpoint with position_ids refused: {err}")
    if err is None:
        fp_old = json.load(open(os.path.join(work, "hf-old", "config.json")))["fingerprint"]
        fp_new = json.load(open(os.path.join(work, "hf-tiny", "config.json")))["fingerprint"]
        check(fp_old == fp_new, "position_ids changed the exported weights")
        print("ok   HF checkpoint with position_ids buffers accepted (same fingerprint)")
    # A sharded HF checkpoint (model.safetensors.index.json + two shards): the same weights.
    from safetensors_io import write_safetensors
    sharded = variant("hf-sharded", cfg_file="config.json", weights="model.safetensors", src_name="hf-tiny")
    os.remove(os.path.join(sharded, "model.safetensors"))
    tensors, _ = read_safetensors(os.path.join(clip, "hf-tiny", "model.safetensors"))
    names = list(tensors)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        shard = f"model-0000{i + 1}-of-00002.safetensors"
        write_safetensors(os.path.join(sharded, shard), {n: tensors[n] for n in part})
        weight_map.update({n: shard for n in part})
    json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map},
              open(os.path.join(sharded, "model.safetensors.index.json"), "w"))
    err, _ = export_inprocess(["--checkpoint", sharded, "--out", os.path.join(work, "hf-sharded")])
    check(err is None, f"sharded HF checkpoint refused: {err}")
    if err is None:
        fp = json.load(open(os.path.join(work, "hf-sharded", "config.json")))["fingerprint"]
        check(fp == json.load(open(os.path.join(work, "hf-tiny", "config.json")))["fingerprint"],
              "sharded HF checkpoint: different weights")
        print("ok   sharded HF checkpoint (index.json + 2 shards) accepted (same fingerprint)")

    # transformers' legacy eos_token_id 2 pools at the argmax of the ids.
    hf_legacy = variant("hf-legacy-eos", lambda c: c["text_config"].update(eos_token_id=2), cfg_file="config.json",
                        weights="model.safetensors", src_name="hf-tiny")
    err, _ = export_inprocess(["--checkpoint", hf_legacy, "--out", os.path.join(work, "hf-legacy")])
    check(err is None, f"HF legacy eos_token_id 2 refused: {err}")
    if err is None:
        t = json.load(open(os.path.join(work, "hf-legacy", "config.json")))["text"]
        check(t["pool"] == "argmax", f"HF eos_token_id 2 should pool argmax, config says {t['pool']}")
        parity(os.path.join(work, "hf-legacy"), os.path.join(clip, "hf-tiny"), "hf-tiny (eos_token_id 2)", [])

    # transformers 4.16 serialised every PretrainedConfig field into each sub-config: all accepted.
    from layouts.hf_clip import parse_hf_config
    full = json.load(open(os.path.join(clip, "hf-tiny", "config.json")))
    generic = {"_name_or_path": "", "add_cross_attention": False, "architectures": None, "bad_words_ids": None,
               "chunk_size_feed_forward": 0, "do_sample": False, "id2label": {"0": "LABEL_0"}, "is_decoder": False,
               "label2id": {"LABEL_0": 0}, "max_length": 20, "num_beams": 1, "pruned_heads": {}, "return_dict": True,
               "tie_word_embeddings": True, "top_k": 50, "torchscript": False, "transformers_version": "4.16.0.dev0"}
    for sec in ("text_config", "vision_config"):
        full[sec].update(generic)
    full.update(text_config_dict=None, vision_config_dict=None, transformers_version=None)
    try:
        parse_hf_config("config.json", full, [])
        print("ok   HF config with transformers 4.16's full serialisation accepted")
    except Exception as e:  # noqa: BLE001
        check(False, f"HF config with generic PretrainedConfig keys refused: {e}")

    # A bare open_clip checkpoint file plus --open-clip-config (the hub JSON, or its plain model_cfg).
    knobs = os.path.join(clip, "openclip-knobs")
    plain_cfg = os.path.join(work, "knobs_model_cfg.json")
    json.dump(json.load(open(os.path.join(knobs, "open_clip_config.json")))["model_cfg"], open(plain_cfg, "w"))
    ref_fp = json.load(open(os.path.join(work, "openclip-knobs", "config.json")))["fingerprint"]
    for label, cfg_file in (("hub JSON", os.path.join(knobs, "open_clip_config.json")), ("plain model_cfg", plain_cfg)):
        dst = os.path.join(work, "knobs-file")
        err, _ = export_inprocess(["--checkpoint", os.path.join(knobs, "open_clip_model.safetensors"),
                                   "--open-clip-config", cfg_file, "--vocab", vocab, "--out", dst])
        check(err is None, f"open_clip checkpoint + --open-clip-config ({label}) refused: {err}")
        if err is None:
            c = json.load(open(os.path.join(dst, "config.json")))
            check(c["fingerprint"] == ref_fp, f"open_clip file + {label}: different weights than the folder export")
            if label == "plain model_cfg":  # no preprocess_cfg: open_clip's defaults
                check(c["preprocess"]["resize"] == "shorter_side" and c["preprocess"]["interpolation"] == "bicubic",
                      f"plain model_cfg preprocess {c['preprocess']}")
            print(f"ok   open_clip checkpoint file + --open-clip-config ({label})")
    expect_refusal(["--checkpoint", os.path.join(knobs, "open_clip_model.safetensors"), "--vocab", vocab,
                    "--out", out, "--activation", "gelu"], ["--open-clip-config"],
                   "open_clip-only tensors without --open-clip-config")

    # GELU and QuickGELU exports of the same weights differ in fingerprint.
    fps = []
    for act in ("quick_gelu", "gelu"):
        dst = os.path.join(work, f"act-{act}")
        err, _ = export_inprocess(["--checkpoint", sd_path, "--vocab", vocab, "--out", dst, "--activation", act,
                                   "--no-fold"])
        check(err is None, f"--activation {act}: {err}")
        if err is None:
            fps.append(json.load(open(os.path.join(dst, "config.json")))["fingerprint"])
    check(len(fps) == 2 and fps[0] != fps[1], "GELU and QuickGELU exports of the same weights share a fingerprint")

    # Malformed safetensors: a clear error naming the file.
    from safetensors_io import SafetensorsError
    good = os.path.join(clip, "openclip-longest", "open_clip_model.safetensors")
    for how, needle in (("truncated", "truncated"), ("bad_header_length", "header length"), ("not_json", "not JSON"),
                        ("overlap", "overlap"), ("out_of_range", "out-of-range"), ("bad_dtype", "F33"),
                        ("missing_field", "lacks shape"), ("wrong_size", "needs")):
        bad = os.path.join(work, f"bad_{how}.safetensors")
        corrupt_safetensors(good, bad, how)
        try:
            read_safetensors(bad)
            check(False, f"malformed safetensors ({how}) was read")
        except SafetensorsError as e:
            check(bad in str(e) and needle in str(e), f"malformed safetensors ({how}): message {e}")
            print(f"ok   malformed safetensors ({how}): {e}")
    # F16 / BF16 tensors round-trip, __metadata__ included; a half-precision checkpoint exports.
    from safetensors_io import write_safetensors
    half = {"a": torch.randn(3, 5).half(), "b": torch.randn(7).bfloat16(), "c": torch.tensor(1.5)}
    write_safetensors(os.path.join(work, "half.safetensors"), half, {"format": "pt"})
    back, meta = read_safetensors(os.path.join(work, "half.safetensors"))
    check(meta == {"format": "pt"} and all(back[k].dtype == v.dtype and torch.equal(back[k], v) for k, v in half.items()),
          "F16/BF16 safetensors round trip")
    sd16 = {k: (v.half() if v.is_floating_point() else v) for k, v in torch.load(sd_path).items()}
    write_safetensors(os.path.join(work, "state_dict_f16.safetensors"), sd16)
    err, log = export_inprocess(["--checkpoint", os.path.join(work, "state_dict_f16.safetensors"), "--vocab", vocab,
                                 "--out", os.path.join(work, "f16"), "--activation", "quick_gelu"])
    check(err is None and "openai_state_dict" in log, f"F16 safetensors state dict: {err}")
    bad = os.path.join(work, "bad_truncated.safetensors")
    expect_refusal(["--checkpoint", bad, "--vocab", vocab, "--out", out, "--activation", "gelu"], [bad, "truncated"],
                   "truncated safetensors through the exporter")
    run_siglip(source, clip, work)


SIGLIP_FOLDERS = ["siglip-tiny", "siglip2-tiny", "hf-siglip-tiny"]


def copy_folder(src: str, dst: str, skip=("pixels", "reference.json")) -> str:
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for f in os.listdir(src):
        if f not in skip and not os.path.isdir(os.path.join(src, f)):
            shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
    return dst


def random_siglip(src: str, dst: str, edit_cfg, seed: int) -> str:
    """siglip-tiny's folder with its config edited and random tensors of the shapes the edited config
    gives (taken from the exporter's own model, then checked by the exporter against its independent
    timm + open_clip forward)."""
    from layouts import build_model
    from layouts.open_clip import parse_open_clip_config
    from safetensors_io import write_safetensors
    copy_folder(src, dst, skip=("pixels", "reference.json", "open_clip_model.safetensors",
                                "open_clip_pytorch_model.bin"))
    cfg = json.load(open(os.path.join(src, "open_clip_config.json")))
    edit_cfg(cfg)
    json.dump(cfg, open(os.path.join(dst, "open_clip_config.json"), "w"), indent=1)
    opts, _ = parse_open_clip_config(dst, cfg, [])
    opts.pop("_tokenizer_clean", None)
    opts["text_eos_id"] = opts["vocab_size"] - 1
    from clip_model import CLIP
    model = CLIP(**opts)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in model.state_dict().items():
        layer_norm = v.dim() == 1 and k.endswith(".weight") and k.split(".")[-2].startswith("ln")
        out[k] = torch.randn(v.shape, generator=g) * (0.1 if v.dim() > 1 else 0.05) + (1.0 if layer_norm else 0.0)
    # clip_model's names -> open_clip's (CustomTextCLIP + timm trunk), the inverse of layouts/siglip.py's mapping
    back = {"visual.conv1.": "visual.trunk.patch_embed.proj.", "visual.ln_post.": "visual.trunk.norm.",
            "visual.attn_pool.out_proj.": "visual.trunk.attn_pool.proj.", "visual.attn_pool.ln.": "visual.trunk.attn_pool.norm.",
            "visual.attn_pool.mlp.c_fc.": "visual.trunk.attn_pool.mlp.fc1.",
            "visual.attn_pool.mlp.c_proj.": "visual.trunk.attn_pool.mlp.fc2.",
            "visual.attn_pool.": "visual.trunk.attn_pool."}
    tensors = {}
    for k, v in out.items():
        if k == "visual.positional_embedding":
            tensors["visual.trunk.pos_embed"] = v.unsqueeze(0)
            continue
        if k.startswith("visual.transformer.resblocks."):
            i, rest = k[len("visual.transformer.resblocks."):].split(".", 1)
            for a, b in (("ln_1", "norm1"), ("ln_2", "norm2"), ("attn.in_proj_weight", "attn.qkv.weight"),
                         ("attn.in_proj_bias", "attn.qkv.bias"), ("attn.out_proj", "attn.proj"), ("mlp.c_fc", "mlp.fc1"),
                         ("mlp.c_proj", "mlp.fc2")):
                if rest.startswith(a):
                    rest = b + rest[len(a):]
                    break
            tensors[f"visual.trunk.blocks.{i}.{rest}"] = v
            continue
        for a, b in back.items():
            if k.startswith(a):
                k = b + k[len(a):]
                break
        else:
            if k == "text_projection":
                tensors["text.text_projection.weight"] = v.t().contiguous()
                continue
            if k == "text_projection_bias":
                tensors["text.text_projection.bias"] = v
                continue
            if not k.startswith(("visual.", "logit_")):
                k = "text." + k
        tensors[k] = v
    tensors["logit_scale"] = torch.tensor(math.log(20.0))
    tensors["logit_bias"] = torch.tensor(-2.0)
    write_safetensors(os.path.join(dst, "open_clip_model.safetensors"), tensors)
    return dst


def run_siglip(source: str, clip: str, work: str) -> None:
    """SigLIP / SigLIP2: parity of the three shared folders, other shapes through the exporter's own checks,
    the HF layout's semantics, refusals by name."""
    missing = [f for f in SIGLIP_FOLDERS if not os.path.isfile(os.path.join(clip, f, "reference.json"))]
    if missing:  # an older ../shared: the CLIP checks above still ran
        print(f"SigLIP reference folders absent ({', '.join(missing)}): SigLIP export tests are skipped")
        return
    rows = []
    layouts = {"siglip-tiny": "open_clip", "siglip2-tiny": "open_clip", "hf-siglip-tiny": "hf_siglip"}
    tokenizers = {"siglip-tiny": ("spiece.model", "canonicalize", 1), "siglip2-tiny": ("tokenizer.model", "canonicalize", 0),
                  "hf-siglip-tiny": ("spiece.model", "siglip_hf", 1)}
    for name in SIGLIP_FOLDERS:
        dst = os.path.join(work, name)
        rc, log = export_cli(source, ["--checkpoint", os.path.join(clip, name), "--out", dst])
        if rc != 0:
            check(False, f"export of {name} failed:\n{log}")
            continue
        check(f"detected layout: {layouts[name]}" in log, f"{name}: layout not {layouts[name]}")
        cfg = json.load(open(os.path.join(dst, "config.json")))
        tok = cfg["tokenizer"]
        vocab_file, clean, pad = tokenizers[name]
        check(cfg["format_version"] == 3 and cfg["architecture"] == "siglip-vit" and cfg["scoring"] == "sigmoid",
              f"{name}: config header {cfg['format_version']} {cfg['architecture']} {cfg['scoring']}")
        check(tok["type"] == "sentencepiece" and tok["vocab_file"] == vocab_file and tok["clean"] == clean
              and tok["pad_id"] == pad and tok["eos_id"] == 1 and tok["bos_id"] == -1 and tok["add_eos"] is True
              and tok["context_length"] == 64, f"{name}: tokenizer section {tok}")
        check(os.path.isfile(os.path.join(dst, vocab_file)), f"{name}: {vocab_file} not copied")
        pp = cfg["preprocess"]
        check(pp["resize"] == "stretch" and pp["crop"] == "none" and pp["interpolation"] == "bicubic"
              and pp["mean"] == [0.5] * 3 and pp["std"] == [0.5] * 3, f"{name}: preprocess {pp}")
        want_act = {"siglip-tiny": ("gelu", "gelu"), "siglip2-tiny": ("gelu_tanh", "gelu_tanh"),
                    "hf-siglip-tiny": ("gelu_tanh", "gelu_tanh")}[name]
        check((cfg["vision"]["activation"], cfg["text"]["activation"]) == want_act,
              f"{name}: activations {cfg['vision']['activation']}, {cfg['text']['activation']}, want {want_act}")
        parity(dst, os.path.join(clip, name), name, rows)
    print("\n| reference | image features | text features | logits_per_image | logits + logit_bias / sigmoid "
          "| same argmax |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, e, ok in rows:
        plain = f"{e['logits_per_image']:.1e}" if "logits_per_image" in e else "—"
        print(f"| {label} | {e['image_features']:.1e} | {e['text_features']:.1e} | {plain} | "
              f"{e['logits_with_bias']:.1e} / {e['sigmoid']:.1e} | {'yes' if ok else 'NO'} |")
    print()

    # The HF layout follows HF's config: the same weights with hidden_act "gelu" are siglip-tiny's model
    # (open_clip/timm use exact GELU there), and gelu_pytorch_tanh is a different function.
    hf_gelu = copy_folder(os.path.join(clip, "hf-siglip-tiny"), os.path.join(work, "variants", "hf-siglip-gelu"))
    c = json.load(open(os.path.join(hf_gelu, "config.json")))
    for sec in ("text_config", "vision_config"):
        c[sec]["hidden_act"] = "gelu"
    json.dump(c, open(os.path.join(hf_gelu, "config.json"), "w"))
    err, _ = export_inprocess(["--checkpoint", hf_gelu, "--out", os.path.join(work, "hf-siglip-gelu")])
    check(err is None, f"HF SigLIP with hidden_act gelu: {err}")
    if err is None:
        parity(os.path.join(work, "hf-siglip-gelu"), os.path.join(clip, "siglip-tiny"),
               "hf-siglip-tiny with hidden_act gelu vs siglip-tiny", [])
        fps = [json.load(open(os.path.join(work, d, "config.json")))["fingerprint"]
               for d in ("siglip-tiny", "hf-siglip-tiny")]
        check(fps[0] != fps[1], "exact-GELU and tanh-GELU exports of the same weights share a fingerprint")

    # Other shapes the shared folders do not have, through the exporter's own checks (exported files vs
    # eager model vs the independent timm + open_clip forward, 1e-5): an odd image size that the patch
    # does not divide, 3 heads, So400m's MLP ratio and exact GELU; giant-opt's tanh GELU, 5 x 5 patches.
    sig = os.path.join(clip, "siglip-tiny")

    def shape_variant(timm_name, kwargs, image_size, embed):
        def edit(c):
            v = c["model_cfg"]["vision_cfg"]
            v.update(timm_model_name=timm_name, image_size=image_size, timm_model_kwargs=kwargs)
            c["model_cfg"]["embed_dim"] = embed
            c["preprocess_cfg"] = dict(c.get("preprocess_cfg") or {})
        return edit

    for label, name, kw, size, seed, act, mlp in (
            ("so400m/14, 75 px (5x5 patches, 5 px unread), 3 heads", "vit_so400m_patch14_siglip_224",
             {"img_size": 75, "embed_dim": 48, "depth": 2, "num_heads": 3}, 75, 41, "gelu", int(48 * 3.7362)),
            ("giant-opt/16, 80 px, 3 heads", "vit_giantopt_patch16_siglip_256",
             {"img_size": 80, "embed_dim": 48, "depth": 1, "num_heads": 3}, 80, 42, "gelu_tanh", 192)):
        d = random_siglip(sig, os.path.join(work, "variants", f"shape{seed}"), shape_variant(name, kw, size, 48), seed)
        dst = os.path.join(work, f"shape{seed}")
        err, log = export_inprocess(["--checkpoint", d, "--out", dst])
        check(err is None, f"SigLIP {label}: {err}\n{log[-2000:]}")
        if err is None:
            v = json.load(open(os.path.join(dst, "config.json")))["vision"]
            check(v["heads"] == 3 and v["mlp_width"] == mlp and v["activation"] == act and v["image_size"] == size,
                  f"SigLIP {label}: vision {v}")
            check("image_features_vs_source" in log, f"SigLIP {label}: no independent-forward check ran")
            print(f"ok   SigLIP {label}: exported and verified ({v['mlp_width']} MLP, {act})")

    # Refusals by name.
    def oc_variant(tag, edit, src="siglip-tiny", edit_tensors=None):
        d = copy_folder(os.path.join(clip, src), os.path.join(work, "variants", tag))
        c = json.load(open(os.path.join(d, "open_clip_config.json")))
        edit(c)
        json.dump(c, open(os.path.join(d, "open_clip_config.json"), "w"))
        if edit_tensors:
            from safetensors_io import read_safetensors, write_safetensors
            t, meta = read_safetensors(os.path.join(d, "open_clip_model.safetensors"))
            edit_tensors(t)
            write_safetensors(os.path.join(d, "open_clip_model.safetensors"), t, meta)
            os.remove(os.path.join(d, "open_clip_pytorch_model.bin"))
        return ["--checkpoint", d, "--out", os.path.join(work, "scratch")]

    vcfg = lambda **kw: (lambda c: c["model_cfg"]["vision_cfg"].update(**kw))  # noqa: E731
    expect_refusal(oc_variant("naflex", vcfg(timm_model_name="naflexvit_base_patch16_siglip", image_seq_len=576)),
                   ["naflexvit_base_patch16_siglip", "NaFlex"], "open_clip ViT-B-16-SigLIP2-naflex")
    expect_refusal(oc_variant("unknown-timm", vcfg(timm_model_name="vit_base_patch16_clip_224")),
                   ["vit_base_patch16_clip_224", "timm"], "unknown timm entry")
    expect_refusal(oc_variant("gap-timm", vcfg(timm_model_name="vit_base_patch16_siglip_gap_224")),
                   ["vit_base_patch16_siglip_gap_224", "GAP"], "timm SigLIP GAP entry")
    expect_refusal(oc_variant("pool-avg", vcfg(timm_pool="avg")), ["timm_pool", "avg"], "timm_pool avg")
    expect_refusal(oc_variant("proj-linear", vcfg(timm_proj="linear")), ["timm_proj", "linear"], "timm_proj linear")
    expect_refusal(oc_variant("kw-unknown", lambda c: c["model_cfg"]["vision_cfg"]["timm_model_kwargs"].update(
        reg_tokens=4)), ["reg_tokens"], "timm_model_kwargs reg_tokens")
    expect_refusal(oc_variant("kw-foo", lambda c: c["model_cfg"]["vision_cfg"]["timm_model_kwargs"].update(foo=1)),
                   ["timm_model_kwargs.foo"], "unknown timm_model_kwargs key")
    expect_refusal(oc_variant("size", vcfg(image_size=80)), ["image_size 80", "img_size 64"],
                   "vision_cfg.image_size differing from the timm img_size")
    expect_refusal(oc_variant("cls-token", lambda c: None, edit_tensors=lambda t: t.update(
        {"visual.trunk.cls_token": torch.zeros(1, 1, 64)})), ["visual.trunk.cls_token"], "timm tensor not in SigLIP")
    expect_refusal(oc_variant("clean", lambda c: c["model_cfg"]["text_cfg"]["tokenizer_kwargs"].update(clean="lower")),
                   ["clean", "lower"], "open_clip tokenizer clean lower")
    hf2 = copy_folder(os.path.join(clip, "hf-siglip-tiny"), os.path.join(work, "variants", "hf-siglip2"))
    c = json.load(open(os.path.join(hf2, "config.json")))
    c.update(model_type="siglip2", architectures=["Siglip2Model"])
    json.dump(c, open(os.path.join(hf2, "config.json"), "w"))
    expect_refusal(["--checkpoint", hf2, "--out", os.path.join(work, "scratch")], ["siglip2", "NaFlex"],
                   "HF model_type siglip2 (NaFlex)")
    hfa = copy_folder(os.path.join(clip, "hf-siglip-tiny"), os.path.join(work, "variants", "hf-siglip-act"))
    c = json.load(open(os.path.join(hfa, "config.json")))
    c["vision_config"]["hidden_act"] = "gelu_new"
    json.dump(c, open(os.path.join(hfa, "config.json"), "w"))
    expect_refusal(["--checkpoint", hfa, "--out", os.path.join(work, "scratch")], ["vision_config.hidden_act",
                                                                                    "gelu_new"], "HF SigLIP gelu_new")
    expect_refusal(["--checkpoint", os.path.join(clip, "siglip-tiny"), "--out", os.path.join(work, "scratch"),
                    "--vocab", os.path.join(clip, "bpe_simple_vocab_16e6.txt.gz")], ["--vocab", "spiece.model"],
                   "--vocab for a SentencePiece model")


if __name__ == "__main__":
    sys.exit(main())
