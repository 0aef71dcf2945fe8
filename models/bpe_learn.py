"""Byte-level BPE in the format of OpenAI CLIP's merges file: a learner and an exact encoder.

The merges file is plain text or gzip: line 1 a header ("#version: 0.2"), then one merge per line "a b",
symbols written in GPT-2's byte-to-unicode alphabet, word-final symbols ending in "</w>". Vocabulary ids:
the 256 byte symbols, the same 256 with "</w>", one token per merge (in file order), then
<|startoftext|> and <|endoftext|>; so vocab_size = 512 + merges + 2.

Encoding applies, inside each pre-token, the merge of lowest rank present until none applies, which is what
CLIP's tokenizer (and zsclip's C++ tokenizer) does with the same file.

    /usr/bin/python3 models/bpe_learn.py --out models/shapes/vocab.txt.gz       # learn on the shape captions
    enc = BpeEncoder.from_file("models/shapes/vocab.txt.gz"); enc.tokenize(["a red circle"], 24)
"""

import argparse
import collections
import gzip
import html
import re
import sys

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
HEADER = "#version: 0.2"


def byte_symbols():
    """GPT-2's reversible byte -> printable unicode table, as an ordered list (index = order in the vocab).

    Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves and come first; the other
    bytes follow in increasing order and map to chr(256 + n).
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    order = list(keep)
    chars = [chr(b) for b in keep]
    n = 0
    for b in range(256):
        if b not in keep:
            order.append(b)
            chars.append(chr(256 + n))
            n += 1
    return list(zip(order, chars))


_BYTE_TO_CHAR = dict(byte_symbols())


def _char_class(ch):
    if ch.isspace():
        return "s"
    if ch.isalpha():
        return "L"
    if ch.isnumeric():
        return "N"
    return "P"


_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")


def pretokenize(text):
    """CLIP's cleaning and split: HTML-unescape twice, collapse whitespace, lowercase, then special tokens,
    contractions,
    runs of letters, single digits, runs of other non-space characters.

    Python's `re` has no \\p{L}; str.isalpha()/isnumeric() stand in for the Unicode classes (identical on the
    ASCII captions used here).
    """
    text = html.unescape(html.unescape(text)).strip()  # CLIP's basic_clean, minus ftfy
    text = re.sub(r"\s+", " ", text).strip().lower()
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        for special in (SOT, EOT):
            if text.startswith(special, i):
                out.append(special)
                i += len(special)
                break
        else:
            if ch == "'":
                m = next((c for c in _CONTRACTIONS if text.startswith(c, i)), None)
                if m:
                    out.append(m)
                    i += len(m)
                    continue
            cls = _char_class(ch)
            if cls == "s":
                i += 1
                continue
            if cls == "N":
                out.append(ch)
                i += 1
                continue
            j = i + 1
            # Greedy like the regex: a run never stops early for a contraction or special token.
            while j < n and _char_class(text[j]) == cls:
                j += 1
            out.append(text[i:j])
            i = j
    return out


def word_symbols(word):
    """A pre-token as its initial BPE symbols: one per byte, the last one marked word-final."""
    chars = [_BYTE_TO_CHAR[b] for b in word.encode("utf-8")]
    chars[-1] = chars[-1] + "</w>"
    return tuple(chars)


def _merge_word(symbols, a, b):
    out = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def learn_merges(texts, max_merges=1000):
    """Greedy BPE: repeatedly merge the most frequent adjacent pair (ties: lexicographically smallest)
    until every pre-token of the corpus is a single symbol or max_merges is reached."""
    counts = collections.Counter()
    for t in texts:
        for w in pretokenize(t):
            if w not in (SOT, EOT):
                counts[w] += 1
    words = {word_symbols(w): c for w, c in counts.items()}
    merges = []
    while len(merges) < max_merges:
        pairs = collections.Counter()
        for sym, c in words.items():
            for i in range(len(sym) - 1):
                pairs[(sym[i], sym[i + 1])] += c
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        words = {_merge_word(sym, *best): c for sym, c in words.items()}
    return merges


def write_merges(merges, path):
    text = HEADER + "\n" + "".join(f"{a} {b}\n" for a, b in merges)
    data = text.encode("utf-8")
    if path.endswith(".gz"):
        # mtime=0 keeps the file byte-identical between runs.
        with open(path, "wb") as f:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
                g.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def read_merges(path, limit=None):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    lines = raw.decode("utf-8").split("\n")[1:]
    merges = [tuple(l.split()) for l in lines if l.strip()]
    if limit is not None:
        merges = merges[:limit]
    return merges


class BpeEncoder:
    def __init__(self, merges):
        self.merges = list(merges)
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        syms = [c for _, c in byte_symbols()]
        vocab = syms + [s + "</w>" for s in syms] + [a + b for a, b in self.merges] + [SOT, EOT]
        self.encoder = {}
        for i, v in enumerate(vocab):
            self.encoder.setdefault(v, i)
        self.decoder = {i: v for i, v in enumerate(vocab)}
        self.vocab_size = len(vocab)
        self.sot = len(vocab) - 2
        self.eot = len(vocab) - 1
        self._cache = {}

    @classmethod
    def from_file(cls, path, limit=None):
        return cls(read_merges(path, limit))

    def bpe(self, word):
        if word in self._cache:
            return self._cache[word]
        sym = word_symbols(word)
        while len(sym) > 1:
            ranked = [(self.ranks.get((sym[i], sym[i + 1]), None), i) for i in range(len(sym) - 1)]
            ranked = [r for r, _ in ranked if r is not None]
            if not ranked:
                break
            a, b = self.merges[min(ranked)]
            sym = _merge_word(sym, a, b)
        self._cache[word] = sym
        return sym

    def encode(self, text):
        ids = []
        for w in pretokenize(text):
            if w in (SOT, EOT):
                ids.append(self.encoder[w])
            else:
                ids.extend(self.encoder[s] for s in self.bpe(w))
        return ids

    def tokenize(self, texts, context_length):
        """Like clip.tokenize(..., truncate=False): SOT + ids + EOT, zero padded; raises if too long."""
        import torch

        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.sot] + self.encode(t) + [self.eot]
            if len(ids) > context_length:
                raise ValueError(f"caption {t!r} needs {len(ids)} tokens > context_length {context_length}")
            out[i, : len(ids)] = torch.tensor(ids)
        return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="merges file to write (.gz for gzip)")
    p.add_argument("--max-merges", type=int, default=1000)
    args = p.parse_args(argv)
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from shapes_data import all_caption_texts

    merges = learn_merges(all_caption_texts(), args.max_merges)
    write_merges(merges, args.out)
    print(f"{len(merges)} merges -> {args.out} (vocab_size {512 + len(merges) + 2})")


if __name__ == "__main__":
    main()
