"""Where the shapes model errs: top-1, colour-correct and shape-correct rates by split, shape size and
background, over all 48 classes with the evaluation prompt ("a photo of a {colour} {shape}.").

    /usr/bin/python3 models/shapes_breakdown.py [--model-dir models/shapes] [--per-class 30] [--seed 1000]

Runs the exported TorchScript files of DIR (what the C++ library loads), with OpenAI's preprocessing.
"""
import argparse
import collections
import json
import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import train_shapes as T  # noqa: E402
from clip_bpe import ClipTokenizer  # noqa: E402
from shapes_data import ALL_PAIRS, HELD_OUT, ShapeGenerator  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", default=os.path.join(HERE, "shapes"))
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(args.model_dir, "config.json")) as f:
        cfg = json.load(f)
    files = {k: os.path.join(args.model_dir, v) for k, v in cfg["files"].items()}
    enc = ClipTokenizer.from_file(os.path.join(args.model_dir, cfg["tokenizer"]["vocab_file"]))
    image_encoder = torch.jit.load(files["image_encoder"]).eval()
    text_encoder = torch.jit.load(files["text_encoder"]).eval()
    projection = torch.jit.load(files["projection"]).eval()
    classes = list(ALL_PAIRS)
    ids = enc.tokenize([T.EVAL_TEMPLATE.format(c, s) for c, s in classes], cfg["text"]["context_length"])
    with torch.no_grad():
        text = projection.project_text(text_encoder(ids))
        text = text / text.norm(dim=1, keepdim=True)
    tf = T.openai_transform(cfg["preprocess"]["image_size"])
    gen = ShapeGenerator(args.seed)
    stats = collections.defaultdict(lambda: [0, 0, 0, 0])  # images, top-1, colour right, shape right
    for k, pair in enumerate(classes):
        samples = [gen.sample(pair) for _ in range(args.per_class)]
        with torch.no_grad():
            f = projection.project_image(image_encoder(torch.stack([tf(s.image) for s in samples])))
            f = f / f.norm(dim=1, keepdim=True)
        for s, p in zip(samples, (f @ text.t()).argmax(1).tolist()):
            split = "held-out" if pair in HELD_OUT else "seen"
            size = "small" if s.rel_size < 0.3 else ("large" if s.rel_size > 0.55 else "mid")
            for key in [(split,), (split, "size " + size), (split, "background " + ("named" if s.background else "other"))]:
                st = stats[key]
                st[0] += 1
                st[1] += p == k
                st[2] += classes[p][0] == pair[0]
                st[3] += classes[p][1] == pair[1]
    print(f"{'group':28s} {'images':>6s} {'top-1':>7s} {'colour':>7s} {'shape':>7s}")
    for key in sorted(stats):
        n, top1, colour, shape = stats[key]
        print(f"{' '.join(key):28s} {n:6d} {100 * top1 / n:6.1f}% {100 * colour / n:6.1f}% {100 * shape / n:6.1f}%")


if __name__ == "__main__":
    main()
