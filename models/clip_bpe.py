"""CLIP's byte-level BPE tokenizer in Python: the one implementation the scripts here share.

It follows OpenAI's clip/simple_tokenizer.py and zsclip's C++ tokenizer (include/zsclip/tokenizer.h)
step by step, so the three give the same ids:
  - cleaning: html.unescape twice, strip, every whitespace run to one space, lower() (ftfy.fix_text is
    left out, as in the reference data: every text in ../shared/clip/tokenizer_cases.jsonl is one ftfy
    leaves unchanged);
  - splitting: OpenAI's pattern with \\p{L} / \\p{N} through the `regex` module (Debian: python3-regex);
  - BPE: the merge of lowest rank first, on byte symbols with "</w>" on the last;
  - ids: 256 byte symbols, the same with "</w>", one token per merge, <|startoftext|>, <|endoftext|>;
    a token spelt twice (two merges giving the same string) gets the LAST id, as OpenAI's
    dict(zip(vocab, range(len(vocab)))) and the C++ tokenizer do;
  - tokenize(texts, context_length, truncate=False) as clip.tokenize: sot + ids + eot, zero padded; too
    long raises RuntimeError, or with truncate=True keeps context_length ids with eot last.

The merges file: plain text or gzip, line 1 a header ("#version: 0.2"), then one merge "a b" a line.

    tok = ClipTokenizer.from_file("bpe_simple_vocab_16e6.txt.gz")   # num_merges=None: OpenAI's 48894
    tok.encode("A photo of a cat.")                                  # [320, 1125, 539, 320, 2368, 269]
    tok.tokenize(["a dog", "a cat"], 77)                             # torch.LongTensor [2, 77]
"""

import gzip
import html

try:
    import regex
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError("models/clip_bpe.py needs the `regex` module (Debian: apt-get install python3-regex)") from e

SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
HEADER = "#version: 0.2"
OPENAI_NUM_MERGES = 49152 - 256 - 2  # the lines of OpenAI's file that SimpleTokenizer uses: 48894

_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)


def byte_symbols():
    """GPT-2's reversible byte -> printable character table, as (byte, character) pairs in vocabulary order.

    Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves and come first; the other
    bytes follow in increasing order and map to chr(256 + n).
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    order, chars = list(keep), [chr(b) for b in keep]
    n = 0
    for b in range(256):
        if b not in keep:
            order.append(b)
            chars.append(chr(256 + n))
            n += 1
    return list(zip(order, chars))


BYTE_TO_CHAR = dict(byte_symbols())
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def clean(text):
    """OpenAI's basic_clean (minus ftfy) and whitespace_clean, then lower()."""
    text = html.unescape(html.unescape(text)).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


def pretokenize(text):
    """The pieces of a cleaned text BPE runs on (special tokens among them)."""
    return _PATTERN.findall(clean(text))


def word_symbols(word):
    """A piece as its initial BPE symbols: one per UTF-8 byte, the last one marked word-final."""
    chars = [BYTE_TO_CHAR[b] for b in word.encode("utf-8")]
    chars[-1] += "</w>"
    return tuple(chars)


def merge_pair(symbols, a, b):
    """Every non-overlapping occurrence of the pair (a, b), left to right, as one symbol."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


def read_merges(path, num_merges=None):
    """The merge pairs of a merges file (gzip or plain); num_merges: the first n lines after the header."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    lines = raw.decode("utf-8").split("\n")[1:]
    merges = [tuple(line.split()) for line in lines if line.strip()]
    return merges if num_merges is None or num_merges < 0 else merges[:num_merges]


def write_merges(merges, path):
    """Writes a merges file; a .gz path is gzip-compressed with mtime 0 (byte-identical between runs)."""
    data = (HEADER + "\n" + "".join(f"{a} {b}\n" for a, b in merges)).encode("utf-8")
    if path.endswith(".gz"):
        with open(path, "wb") as f:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
                g.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


class ClipTokenizer:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        syms = [c for _, c in byte_symbols()]
        vocab = syms + [s + "</w>" for s in syms] + ["".join(m) for m in self.merges] + [SOT, EOT]
        self.vocab = vocab
        self.encoder = {tok: i for i, tok in enumerate(vocab)}  # a repeated token keeps its last id
        self.vocab_size = len(vocab)
        self.sot = self.encoder[SOT]
        self.eot = self.encoder[EOT]
        self._cache = {}

    @classmethod
    def from_file(cls, path, num_merges=None):
        """num_merges None: as SimpleTokenizer, the first min(lines, 48894); -1: every line."""
        merges = read_merges(path)
        if num_merges is None:
            num_merges = min(len(merges), OPENAI_NUM_MERGES)
        return cls(merges if num_merges < 0 else merges[:num_merges])

    def bpe(self, piece):
        """The BPE tokens of one piece (a special token stays whole)."""
        if piece in (SOT, EOT):
            return (piece,)
        if piece not in self._cache:
            symbols = word_symbols(piece)
            while len(symbols) > 1:
                ranked = [self.ranks[p] for p in zip(symbols, symbols[1:]) if p in self.ranks]
                if not ranked:
                    break
                symbols = merge_pair(symbols, *self.merges[min(ranked)])
            self._cache[piece] = symbols
        return self._cache[piece]

    def encode(self, text):
        """== SimpleTokenizer().encode(text)."""
        return [self.encoder[t] for piece in pretokenize(text) for t in self.bpe(piece)]

    def decode(self, ids):
        """== SimpleTokenizer().decode(ids): the symbols' bytes as UTF-8 (errors replaced), "</w>" -> " "."""
        text = "".join(self.vocab[i] for i in ids)
        return bytearray(CHAR_TO_BYTE[c] for c in text).decode("utf-8", errors="replace").replace("</w>", " ")

    def encode_with_specials(self, text, context_length=77, truncate=False):
        """One row of clip.tokenize without the padding: [sot, ...bpe, eot]."""
        ids = [self.sot] + self.encode(text) + [self.eot]
        if len(ids) > context_length:
            if not truncate:
                raise RuntimeError(f"Input {text} is too long for context length {context_length}")
            ids = ids[:context_length]
            ids[-1] = self.eot
        return ids

    def tokenize(self, texts, context_length=77, truncate=False):
        """== clip.tokenize(texts, context_length, truncate): a torch.LongTensor [len(texts), context_length]."""
        import torch

        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = self.encode_with_specials(t, context_length, truncate)
            out[i, :len(ids)] = torch.tensor(ids)
        return out
