"""Learns a byte-level BPE vocabulary in the format of OpenAI CLIP's merges file.

Greedy BPE on the pieces clip_bpe.pretokenize gives (CLIP's cleaning and split): repeatedly merge the most
frequent adjacent pair of symbols (ties: the lexicographically smallest pair) until every piece is one
symbol or max_merges is reached. Tokenizing with the result is models/clip_bpe.py's job (the same ids as
OpenAI's tokenizer and zsclip's C++ one); models/shapes/bpe_shapes.txt.gz was learned here on the shape
captions, and tests/python/clip_bpe_test.py checks that re-learning it gives the same file.

    /usr/bin/python3 models/bpe_learn.py --out models/shapes/vocab.txt.gz       # learn on the shape captions
"""

import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_bpe import EOT, SOT, merge_pair, pretokenize, word_symbols, write_merges  # noqa: E402


def learn_merges(texts, max_merges=1000):
    """The merges, in rank order, learned on `texts`."""
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
        words = {merge_pair(sym, *best): c for sym, c in words.items()}
    return merges


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="merges file to write (.gz for gzip)")
    p.add_argument("--max-merges", type=int, default=1000)
    args = p.parse_args(argv)
    from shapes_data import all_caption_texts

    merges = learn_merges(all_caption_texts(), args.max_merges)
    write_merges(merges, args.out)
    print(f"{len(merges)} merges -> {args.out} (vocab_size {512 + len(merges) + 2})")


if __name__ == "__main__":
    main()
