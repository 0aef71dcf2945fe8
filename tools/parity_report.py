#!/usr/bin/env python3
"""Measures zsclip's parity with OpenAI's code on ../shared/clip/openai-tiny, through the CLI, and
writes README.md's parity table from the measurements (never edit that table by hand).

Token ids of every case of tokenizer_cases.jsonl; preprocessed pixels of the reference images; image
features (from the image files), text features, logits_per_image and zero-shot probabilities
against reference.json, each as its worst error relative to the largest magnitude. Both exports
(jit_archive and state_dict) are measured; the table shows the first and says whether the second
agrees to the printed digits.

    python3 tools/parity_report.py                   # print the measurements and the table
    python3 tools/parity_report.py --update-readme   # rewrite the table in README.md
    python3 tools/parity_report.py --check-readme    # exit 1 unless README.md's table has these rows
                                                     # and every number in it, and every measured one,
                                                     # is within the 1e-4 bound

The digits themselves depend on the CPU's kernels and the thread count (the same code gave 6.0e-07
on an AVX-512 machine and 4.7e-07 on an AVX2 one), so the table says where they were measured and the
check holds on any CPU: it compares the promise (1e-4, same argmax, identical ids, bit-exact pixels),
never the last digits.

The exports are made by the export_fixtures test (tools/test.sh, or ctest) in build/fixtures/.
Exit status: 0, or 1 when a quantity is out of tolerance (1e-4, or a different argmax) or the
README check fails, or 77 when ../shared's reference material is absent.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

BEGIN = "<!-- parity table: written by tools/parity_report.py --update-readme -->"
END = "<!-- end of parity table -->"


def worst(rows_got, rows_want):
    err = ref = 0.0
    argmax_same = True
    for g, w in zip(rows_got, rows_want):
        err = max(err, max(abs(a - b) for a, b in zip(g, w)))
        ref = max(ref, max(abs(b) for b in w))
        argmax_same &= g.index(max(g)) == w.index(max(w))
    return err / ref, argmax_same


def run(cmd, stdin=None):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, input=stdin).stdout


def token_parity(zsclip, shared):
    cases = [json.loads(line) for line in open(os.path.join(shared, "clip/tokenizer_cases.jsonl")) if line.strip()]
    vocab = os.path.join(shared, "clip/bpe_simple_vocab_16e6.txt.gz")
    out = run([zsclip, "tokenize", "--vocab", vocab, "-"], "".join(json.dumps(c["text"]) + "\n" for c in cases))
    got = [json.loads(line) for line in out.splitlines()]
    return len(cases), len(got) == len(cases) and all(g == c["tokens"] for g, c in zip(got, cases))


def pixel_parity(zsclip, shared, ref):
    import numpy as np
    err = top = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for im in ref["images"]:
            out = os.path.join(tmp, "x.f32")
            run([zsclip, "preprocess", "--image-size", "224", "--out", out, os.path.join(shared, "images", im["file"])])
            stem = os.path.splitext(im["file"])[0]
            want = np.fromfile(os.path.join(shared, "clip/openai-tiny/pixels", stem + ".f32"), dtype=np.float32)
            got = np.fromfile(out, dtype=np.float32)
            if got.shape != want.shape:
                return len(ref["images"]), float("inf")
            err = max(err, float(np.max(np.abs(got.astype(np.float64) - want))))
            top = max(top, float(np.max(np.abs(want))))
    return len(ref["images"]), err / top


def model_rows(zsclip, model, shared, ref):
    images = [os.path.join(shared, "images", im["file"]) for im in ref["images"]]
    cmd = [zsclip, "embed", "--truncate", "--model", model]  # one reference text is cut, as OpenAI cut it
    for f in images:
        cmd += ["--image", f]
    for t in ref["texts"]:
        cmd += ["--text", t["text"]]
    out = json.loads(run(cmd))
    zs = ref["zero_shot"]
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "t.txt"), "w") as f:
            f.write("\n".join(zs["templates"]) + "\n")
        with open(os.path.join(tmp, "l.txt"), "w") as f:
            f.write("\n".join(zs["classes"]) + "\n")
        cls = json.loads(run([zsclip, "classify", "--json", "--model", model, "--labels-file", os.path.join(tmp, "l.txt"),
                              "--templates", os.path.join(tmp, "t.txt")] + images))
    zs_name = f"zero-shot probabilities ({len(zs['classes'])} classes x {len(zs['templates'])} templates)"
    rows = [
        ("image features", [x["features"] for x in out["images"]], [x["image_features"] for x in ref["images"]]),
        ("text features", [x["features"] for x in out["texts"]], [x["text_features"] for x in ref["texts"]]),
        ("logits_per_image", out["logits_per_image"], ref["logits_per_image"]),
        (zs_name, [c["probs"] for c in cls], zs["probs"]),
    ]
    tokens_same = all(x["tokens"] == y["tokens"] for x, y in zip(out["texts"], ref["texts"]))
    return tokens_same, [(name,) + worst(got, want) for name, got, want in rows]


def cpu_description():
    """'MODEL (ISA flags), N threads': where the table's digits were measured."""
    model, flags = "unknown CPU", set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = " ".join(value.split())
            elif key.strip() == "flags":
                flags |= set(value.split())
    except OSError:
        pass
    if "avx512f" in flags:
        isa = "AVX-512" + "".join(f", {name}" for flag, name in (("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16"))
                                  if flag in flags)
    elif "avx2" in flags:
        isa = "AVX2" + (", FMA" if "fma" in flags else "") + (", AVX-VNNI" if "avx_vnni" in flags else "")
    else:
        isa = "no AVX2"
    return f"{model} ({isa}), {len(os.sched_getaffinity(0))} threads"


CPU_PREFIX = "Measured on "


def table(n_cases, tokens_ok, n_images, pixel_err, rows, same_for_both):
    lines = [BEGIN,
             "| quantity | max abs error / max abs reference | same argmax |",
             "| --- | --- | --- |",
             f"| token ids (all {n_cases} cases of tokenizer_cases.jsonl) | {'identical' if tokens_ok else 'DIFFERENT'} | — |",
             f"| preprocessed pixels (all {n_images} reference images) | "
             + ("0.0 (bit-exact, including RGBA and palette)" if pixel_err == 0 else f"{pixel_err:.1e}") + " | — |"]
    for name, rel, same in rows:
        lines.append(f"| {name} | {rel:.1e} | {'yes' if same else 'NO'} |")
    lines.append("")
    lines.append("The numbers are " + ("the same" if same_for_both else "NOT the same") +
                 " for the exports of `jit_archive.pt` and `state_dict.pt`.")
    lines.append("")
    lines.append(CPU_PREFIX + cpu_description() + "; the last digits vary with the CPU and the thread count,")
    lines.append("the bound (1e-4 of the largest magnitude, same argmax) holds on every CPU.")
    lines.append(END)
    return "\n".join(lines) + "\n"


BOUND = 1e-4


def tables_agree(old, new):
    """True when the README's table has the rows measured now and every error in it, old and new,
    is within BOUND. Only the error cells and the measurement note may differ: the digits depend on
    the CPU's kernels and the thread count, the promise does not."""
    def rows(text):
        return [line for line in text.splitlines() if line.startswith("|")]
    old_rows, new_rows = rows(old), rows(new)
    if len(old_rows) != len(new_rows):
        return False
    for o, n in zip(old_rows, new_rows):
        oc, nc = o.split("|"), n.split("|")
        if len(oc) != len(nc) or [c for i, c in enumerate(oc) if i != 2] != [c for i, c in enumerate(nc) if i != 2]:
            return False
        if oc[2] == nc[2]:
            continue
        try:
            x, y = float(oc[2]), float(nc[2])
        except ValueError:
            return False
        if not (0 <= x <= BOUND and 0 <= y <= BOUND):
            return False
    return CPU_PREFIX in old


def readme_parts(path):
    text = open(path).read()
    if BEGIN not in text or END not in text:
        sys.exit(f"{path}: no parity table markers ({BEGIN!r} ... {END!r})")
    head, rest = text.split(BEGIN, 1)
    old, tail = rest.split(END, 1)
    return head, BEGIN + old + END + "\n", tail.lstrip("\n")


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zsclip", default=os.path.join(here, "build/bin/zsclip"))
    p.add_argument("--fixtures", default=os.path.join(here, "build/fixtures"),
                   help="folder with the openai-tiny-jit_archive and openai-tiny-state_dict exports")
    p.add_argument("--shared", default=os.path.join(here, "../shared"))
    p.add_argument("--readme", default=os.path.join(here, "README.md"))
    g = p.add_mutually_exclusive_group()
    g.add_argument("--update-readme", action="store_true", help="rewrite the table in --readme")
    g.add_argument("--check-readme", action="store_true", help="fail unless --readme holds this table")
    a = p.parse_args()
    ref_path = os.path.join(a.shared, "clip/openai-tiny/reference.json")
    if not os.path.exists(ref_path):
        print(f"skipped: the reference material {ref_path} is absent")
        sys.exit(77)
    ref = json.load(open(ref_path))

    n_cases, tokens_ok = token_parity(a.zsclip, a.shared)
    n_images, pixel_err = pixel_parity(a.zsclip, a.shared, ref)
    results = {kind: model_rows(a.zsclip, os.path.join(a.fixtures, "openai-tiny-" + kind), a.shared, ref)
               for kind in ("jit_archive", "state_dict")}
    ok = tokens_ok and pixel_err <= 1e-6
    for kind, (ref_tokens_ok, rows) in results.items():
        print(f"model: openai-tiny-{kind}")
        print(f"  token ids of the reference texts identical to OpenAI's: {ref_tokens_ok}")
        ok &= ref_tokens_ok
        for name, rel, same in rows:
            ok &= rel <= BOUND and same
            print(f"  {name:48s} max abs error / max |ref| = {rel:.2e}   same argmax: {same}")
    fmt = {kind: [(n, f"{r:.1e}", s) for n, r, s in rows] for kind, (_, rows) in results.items()}
    text = table(n_cases, tokens_ok, n_images, pixel_err, results["jit_archive"][1],
                 fmt["jit_archive"] == fmt["state_dict"])
    print("\n" + text, end="")
    if a.update_readme or a.check_readme:
        head, old, tail = readme_parts(a.readme)
        if a.update_readme:
            with open(a.readme, "w") as f:
                f.write(head + text + "\n" + tail)
            print(f"wrote the table into {a.readme}")
        elif not tables_agree(old, text):
            print(f"{a.readme}: its parity table is not what the code measures now; run\n"
                  f"  /usr/bin/python3 tools/parity_report.py --update-readme\n--- README.md:\n{old}", file=sys.stderr)
            ok = False
        else:
            print(f"{a.readme}: parity table up to date")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
