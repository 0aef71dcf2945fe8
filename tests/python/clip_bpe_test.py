#!/usr/bin/python3
"""Tests of models/clip_bpe.py, the one CLIP BPE tokenizer of the Python scripts, and of the vocabulary
learner models/bpe_learn.py.

    /usr/bin/python3 tests/python/clip_bpe_test.py SOURCE_DIR SHARED_DIR [ZSCLIP_CLI]

Checks: OpenAI's ids, clip.tokenize rows and decodings of every case in SHARED_DIR/clip/tokenizer_cases.jsonl;
a token spelt twice gets its last id (as OpenAI's tokenizer, and the C++ one when ZSCLIP_CLI is given);
truncation as clip.tokenize(truncate=...); re-learning the shipped shapes vocabulary gives the shipped file
byte for byte. Exit 0: passed, 1: failed, 77: skipped (no `regex` module).
"""
import gzip
import json
import os
import subprocess
import sys
import tempfile

src, shared = sys.argv[1], sys.argv[2]
cli = sys.argv[3] if len(sys.argv) > 3 else None
sys.path.insert(0, os.path.join(src, "models"))
try:
    import clip_bpe
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)
import bpe_learn  # noqa: E402

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


# 1. OpenAI's reference cases.
vocab = os.path.join(shared, "clip", "bpe_simple_vocab_16e6.txt.gz")
cases_path = os.path.join(shared, "clip", "tokenizer_cases.jsonl")
if os.path.exists(vocab) and os.path.exists(cases_path):
    tok = clip_bpe.ClipTokenizer.from_file(vocab)
    check((tok.vocab_size, tok.sot, tok.eot) == (49408, 49406, 49407), "OpenAI vocabulary: 49408 ids, sot 49406, eot 49407")
    with open(cases_path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    bad = [c["text"] for c in cases if tok.encode(c["text"]) != c["bpe"]]
    check(not bad, f"encode == SimpleTokenizer.encode on {len(cases)} cases" + (f"; first bad: {bad[0]!r}" if bad else ""))
    bad = [c["text"] for c in cases if tok.encode_with_specials(c["text"], 77, truncate=True) != c["tokens"]]
    check(not bad, "encode_with_specials(truncate=True) == clip.tokenize(truncate=True)" + (f"; first bad: {bad[0]!r}" if bad else ""))
    bad = [c["text"] for c in cases if tok.decode(c["bpe"]) != c["decoded"]]
    check(not bad, "decode == SimpleTokenizer.decode" + (f"; first bad: {bad[0]!r}" if bad else ""))
    # \p{L}: letters outside ASCII form one piece (isalpha would agree here; digits and marks would not).
    check(clip_bpe.pretokenize("Ünïcödé x²") == ["ünïcödé", "x", "²"], "non-ASCII letters and numbers split as \\p{L} / \\p{N}")
else:
    print(f"skip OpenAI cases: {vocab} or {cases_path} is absent")

# 2. A token spelt twice: (a b), (ab c) and (b c), (a bc) both make "abc"; its id is the last one.
merges = [("a", "b"), ("ab", "c"), ("b", "c"), ("a", "bc"), ("abc", "d</w>")]
small = clip_bpe.ClipTokenizer(merges)
check(small.encoder["abc"] == 512 + 3, "a repeated token keeps its last id (512 + 3), as OpenAI's dict(zip(vocab, ...))")
ids = small.encode("abcx")
check(ids[0] == 512 + 3, f"encode uses the last id of a repeated token (got {ids})")
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "merges.txt")
    clip_bpe.write_merges(merges, path)
    check(clip_bpe.ClipTokenizer.from_file(path).encode("abcx abcd") == small.encode("abcx abcd"), "write_merges / from_file round trip")
    if cli:
        out = subprocess.run([cli, "tokenize", "--vocab", path, "--bpe-only", "abcx abcd"], capture_output=True, text=True)
        got = json.loads(out.stdout) if out.returncode == 0 else out.stderr
        check(got == small.encode("abcx abcd"), f"the C++ tokenizer agrees on a repeated token (C++ {got}, Python {small.encode('abcx abcd')})")

# 3. Truncation, as clip.tokenize.
tok = small
long_text = " ".join(["abcd"] * 100)
try:
    tok.encode_with_specials(long_text, 10)
    check(False, "too long without truncate raises")
except RuntimeError as e:
    check("too long for context length 10" in str(e), "too long without truncate raises RuntimeError, as clip.tokenize")
row = tok.encode_with_specials(long_text, 10, truncate=True)
check(len(row) == 10 and row[0] == tok.sot and row[-1] == tok.eot, "truncate=True keeps context_length ids, eot last")
t = tok.tokenize(["abcd", long_text], 10, truncate=True)
check(tuple(t.shape) == (2, 10) and t[0, 3:].abs().sum().item() == 0 and t[1, -1].item() == tok.eot,
      "tokenize gives a zero-padded [N, context_length] tensor")

# 4. The shipped shapes vocabulary is what the learner learns, byte for byte.
from shapes_data import all_caption_texts  # noqa: E402

shipped = os.path.join(src, "models", "shapes", "bpe_shapes.txt.gz")
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "bpe.txt.gz")
    clip_bpe.write_merges(bpe_learn.learn_merges(all_caption_texts()), out)
    same_merges = gzip.decompress(open(out, "rb").read()) == gzip.decompress(open(shipped, "rb").read())
    check(same_merges, "re-learning the shapes vocabulary gives models/shapes/bpe_shapes.txt.gz's merges")
    check(open(out, "rb").read() == open(shipped, "rb").read(), "... and the same gzip bytes")

print(f"SUMMARY: {len(failures)} failed" + (": " + "; ".join(failures) if failures else ""))
sys.exit(1 if failures else 0)
