"""Trains zsclip's default model: a small CLIP on synthetic coloured shapes, then exports it.

    /usr/bin/python3 models/train_shapes.py                      # train, evaluate, export to models/shapes/
    /usr/bin/python3 models/train_shapes.py --steps 100 --out /tmp/shapes_try --no-examples

Steps (all reproducible from --seed on one machine and thread count):
  1. learns a BPE vocabulary on every caption the generator can produce (models/bpe_learn.py;
     tokenized with models/clip_bpe.py);
  2. trains models/clip_model.CLIP with CLIP's symmetric InfoNCE loss and a learnable logit scale on images
     drawn on the fly (models/shapes_data.py), with HELD_OUT colour-shape pairs never shown;
  3. evaluates zero-shot top-1 with "a photo of a {colour} {shape}." over all 48 classes on fresh images
     (another seed), preprocessed exactly like OpenAI's pipeline (Resize bicubic + CenterCrop + Normalize);
  4. saves the OpenAI-format state dict, exports with models/export_clip.py, and updates the model card.
"""

import os

# Debian's torch links the pthread OpenBLAS, which spawns its own threads for every GEMM; for this model's
# small matrices that is tens of times slower than one thread (worse when other jobs share the cores).
# Must be set before torch (and OpenBLAS) load; parallelism comes from --procs processes instead.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import math
import random
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import transforms
from torchvision.transforms import InterpolationMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bpe_learn import learn_merges  # noqa: E402
from clip_bpe import ClipTokenizer, write_merges  # noqa: E402
from shapes_data import (ALL_PAIRS, COLOURS, EVAL_TEMPLATE, HELD_OUT, MAX_REL_SIZE, MIN_REL_SIZE, OTHER_COLOUR, SHAPES,  # noqa: E402
                         ShapeGenerator, all_caption_texts, caption_attributes, size_word)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# Architecture (OpenAI's constructor arguments). Heads follow OpenAI's width // 64 rule.
SHAPE = dict(
    embed_dim=64,
    image_resolution=48,
    vision_layers=3,
    vision_width=128,
    vision_patch_size=8,
    context_length=16,
    transformer_width=128,
    transformer_heads=2,
    transformer_layers=3,
)

EXAMPLES = [  # (colour, shape, file) for examples/images; the last two are held-out pairs
    ("red", "circle", "red_circle.png"),
    ("blue", "star", "blue_star.png"),
    ("green", "triangle", "green_triangle.png"),
    ("yellow", "square", "yellow_square.png"),
    ("orange", "circle", "orange_circle.png"),
    ("black", "star", "black_star.png"),
]

# The default run is sized to train in under BUDGET_MINUTES here; at PROJECT_AT_STEP the run logs how long it
# will take on this machine and warns when that is over the budget.
BUDGET_MINUTES = 20
PROJECT_FROM_STEP, PROJECT_AT_STEP = 100, 300

# A process that waits longer than this for the others at a step (one died or hangs) fails instead of hanging.
BARRIER_TIMEOUT_S = 600

CARD_BEGIN = "<!-- python-eval:begin (written by models/train_shapes.py) -->"
CARD_END = "<!-- python-eval:end -->"


def openai_transform(n_px):
    """OpenAI CLIP's preprocessing (clip.clip._transform), which zsclip's C++ preprocessor reproduces."""
    return transforms.Compose([
        transforms.Resize(n_px, interpolation=InterpolationMode.BICUBIC),
        transforms.CenterCrop(n_px),
        lambda im: im.convert("RGB"),
        transforms.ToTensor(),
        transforms.Normalize(OPENAI_MEAN, OPENAI_STD),
    ])


def make_model(vocab_size):
    from clip_model import CLIP

    return CLIP(vocab_size=vocab_size, **SHAPE)


def sincos_2d(grid, width):
    """Fixed 2-D sine-cosine position codes [grid*grid, width] (row-major patches): a quarter of the channels
    each for sin/cos of the row and of the column, at geometric frequencies (as in MAE / MoCo v3)."""
    quarter = width // 4
    omega = 1.0 / (10000.0 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    rows, cols = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                                indexing="ij")
    r = rows.reshape(-1, 1) * omega
    c = cols.reshape(-1, 1) * omega
    return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1)


@torch.no_grad()
def init_sincos_positions(visual):
    """Starts the (still learnt) patch position embeddings from 2-D sine-cosine codes instead of noise: the
    attention then sees which patches are neighbours from step one, which measured faster shape learning
    here (shape-only probe, 32k images: 41% against 34%). Same parameters, same architecture."""
    grid = visual.grid
    visual.positional_embedding[1:] = sincos_2d(grid, visual.width)
    visual.positional_embedding[0] = 0.0


def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # Gains, biases, embeddings and the logit scale are not decayed (as in CLIP's recipe).
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def clip_loss(model, pixels, ids, match=None):
    """CLIP's symmetric InfoNCE. With match [N_img, N_txt] (bool), every caption that describes an image is a
    positive for it (and vice versa), with the target probability spread evenly over the positives: a batch
    from 40 pairs holds several images of each pair, which plain InfoNCE would push apart as negatives."""
    logits_per_image, logits_per_text = model(pixels, ids)
    if match is None:
        target = torch.arange(pixels.size(0))
        return (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_text, target)) / 2
    m = match.float()
    t_img = m / m.sum(dim=1, keepdim=True)
    t_txt = m.t() / m.t().sum(dim=1, keepdim=True)
    loss_i = -(t_img * F.log_softmax(logits_per_image, dim=1)).sum(dim=1).mean()
    loss_t = -(t_txt * F.log_softmax(logits_per_text, dim=1)).sum(dim=1).mean()
    return (loss_i + loss_t) / 2


def describes(caption_attrs, image_attrs):
    """True when every attribute the caption states (colour, shape, size, background) holds for the image."""
    return all(c is None or c == i for c, i in zip(caption_attrs, image_attrs))


def to_uint8_crop(tf_crop, image):
    """Resize + CenterCrop (PIL, as the eval pipeline) -> uint8 [3, S, S]; ToTensor+Normalize happen later."""
    arr = np.asarray(tf_crop(image.convert("RGB")), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def build_dataset(seed, count, n_px, partial_captions, unnamed_colours=0.0, small_shapes=0.0):
    """count training images (held-out pairs excluded), pre-cropped to uint8 [count, 3, n_px, n_px], plus
    their attributes; deterministic from seed."""
    tf_crop = transforms.Compose([transforms.Resize(n_px, interpolation=InterpolationMode.BICUBIC),
                                  transforms.CenterCrop(n_px)])
    gen = ShapeGenerator(seed, exclude=HELD_OUT, partial_captions=partial_captions, unnamed_colours=unnamed_colours,
                         small_shapes=small_shapes)
    pixels = torch.empty((count, 3, n_px, n_px), dtype=torch.uint8)
    meta = []
    for k in range(count):
        smp = gen.sample()
        pixels[k] = to_uint8_crop(tf_crop, smp.image)
        smp.image = None
        meta.append(smp)
    return pixels, meta


def trim(ids):
    """Drops all-padding columns: the causal mask makes the pooled EOT output independent of them."""
    length = int((ids != 0).sum(dim=1).max().item())
    return ids[:, :length]


@torch.no_grad()
def zero_shot_eval(model, encoder, seed, per_class, batch_size=256):
    """Top-1 over all 48 classes with EVAL_TEMPLATE; returns dict with seen/held-out/per-class accuracy."""
    model.eval()
    classes = list(ALL_PAIRS)
    ids = encoder.tokenize([EVAL_TEMPLATE.format(c, s) for c, s in classes], SHAPE["context_length"])
    text = model.encode_text(ids)
    text = text / text.norm(dim=1, keepdim=True)
    tf = openai_transform(SHAPE["image_resolution"])
    gen = ShapeGenerator(seed)
    samples = [(k, gen.sample(pair).image) for k, pair in enumerate(classes) for _ in range(per_class)]
    correct = torch.zeros(len(classes))
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        pixels = torch.stack([tf(im) for _, im in chunk])
        feats = model.encode_image(pixels)
        feats = feats / feats.norm(dim=1, keepdim=True)
        pred = (feats @ text.t()).argmax(dim=1)
        for (k, _), p in zip(chunk, pred.tolist()):
            correct[k] += float(p == k)
    acc = correct / per_class
    held = set(HELD_OUT)
    seen_idx = [k for k, p in enumerate(classes) if p not in held]
    held_idx = [k for k, p in enumerate(classes) if p in held]
    model.train()
    return {
        "seen": float(acc[seen_idx].mean()),
        "held_out": float(acc[held_idx].mean()),
        "all": float(acc.mean()),
        "per_class": {f"{c} {s}": float(acc[k]) for k, (c, s) in enumerate(classes)},
        "images_per_class": per_class,
        "seed": seed,
    }


def write_examples(directory, seed):
    """Small example PNGs with non-trivial (named, noisy or shaded) backgrounds, fixed seed."""
    os.makedirs(directory, exist_ok=True)
    gen = ShapeGenerator(seed, min_side=112, max_side=160)
    written = []
    for k, (colour, shape, name) in enumerate(EXAMPLES):
        for _ in range(1000):
            s = gen.sample((colour, shape))
            w, h = s.image.size
            # Keep examples readable: medium size; the third example is not square.
            big_enough = "small" not in s.caption and "large" not in s.caption
            aspect_ok = (w != h) if k == 2 else (w == h)
            if big_enough and aspect_ok and "background" in s.caption:
                break
        s.image.save(os.path.join(directory, name), optimize=True)
        written.append((name, s.caption))
    return written


def update_card(path, eval_result, info):
    held = ", ".join(f"{c} {s}" for c, s in HELD_OUT)
    worst = sorted(eval_result["per_class"].items(), key=lambda kv: kv[1])[:6]
    block = "\n".join([
        CARD_BEGIN,
        f"| split | classes | top-1 (Python, {eval_result['images_per_class']} fresh images per class, "
        f"seed {eval_result['seed']}) |",
        "| --- | --- | --- |",
        f"| seen pairs | 40 | {100 * eval_result['seen']:.1f}% |",
        f"| held-out pairs | 8 | {100 * eval_result['held_out']:.1f}% |",
        f"| all | 48 | {100 * eval_result['all']:.1f}% |",
        "",
        f"Held-out pairs (never in training): {held}.",
        f"Hardest classes: {', '.join(f'{k} {100 * v:.0f}%' for k, v in worst)}.",
        "",
        f"Training: {info['steps']} steps x batch {info['batch_size']} ({info['steps'] * info['batch_size']} images), "
        f"{info['train_minutes']:.1f} min in {info['procs']} data-parallel process(es) of one CPU thread each "
        f"(torch {torch.__version__}), "
        f"seed {info['seed']}, final loss {info['final_loss']:.3f}, logit scale {info['logit_scale']:.1f}.",
        f"Command: `{info['command']}`",
        CARD_END,
    ])
    # The whole card is regenerated so that the model table and status always match this export; only the
    # maintainers' C++ accuracy line is carried over.
    cpp_line = "C++ (zsclip tool): to be measured."
    if os.path.exists(path):
        for line in open(path).read().splitlines():
            if line.startswith("C++ (zsclip tool):"):
                cpp_line = line
    status = ""
    if eval_result["seen"] < 0.9 or eval_result["held_out"] < 0.6:
        status = ("## Status: misses its targets\n"
                  f"Seen pairs {100 * eval_result['seen']:.1f}% (target >= 90%), held-out pairs "
                  f"{100 * eval_result['held_out']:.1f}% (target >= 60%) after {info['steps']} steps; "
                  "the default run is sized to fit 20 "
                  "minutes on this 2-core machine, and `--steps` trains longer (see Training below).\n\n")
    with open(path, "w") as f:
        f.write(card_template(info).replace("@STATUS@", status).replace("@EVAL@", block)
                .replace("C++ (zsclip tool): to be measured.", cpp_line))


def card_template(info):
    colours = ", ".join(COLOURS)
    shapes = ", ".join(SHAPES)
    return f"""# shapes: zsclip's default model

A small CLIP (OpenAI's ViT architecture and state-dict layout, `models/clip_model.py`) trained from scratch
with CLIP's symmetric contrastive loss (multi-positive: every caption in a batch that describes an image
counts as its positive) on synthetic images of one coloured shape each. It exists so that
zsclip works out of the box with a real, meaningful model of a few MB, and so that zero-shot behaviour
(including pairs never seen in training) can be tested end to end.

@STATUS@## Files
| file | what |
| --- | --- |
| image_encoder.pt, text_encoder.pt, projection.pt | TorchScript parts written by `models/export_clip.py` |
| config.json | image size, mean/std, resize rule, context length, vocabulary file |
| vocabulary file (named in config.json) | BPE merges learned on the captions by `models/bpe_learn.py`, OpenAI's format |

## Model
| | |
| --- | --- |
| image tower | ViT, {SHAPE['image_resolution']} px input, patch {SHAPE['vision_patch_size']}, width {SHAPE['vision_width']}, {SHAPE['vision_layers']} layers, {SHAPE['vision_width'] // 64} heads |
| text tower | width {SHAPE['transformer_width']}, {SHAPE['transformer_layers']} layers, {SHAPE['transformer_heads']} heads, context {SHAPE['context_length']} |
| embedding | {SHAPE['embed_dim']} |
| vocabulary | {info['vocab_size']} tokens (512 byte symbols + {info['merges']} merges + 2 special) |
| parameters | {info['params']:,} (float32) |
| preprocessing | OpenAI's: Resize({SHAPE['image_resolution']}, bicubic) + CenterCrop + Normalize with OpenAI's mean/std |

## Data
Generated with PIL (`models/shapes_data.py`), once per run from the seed: {info['train_images']:,} training images (held-out
pairs excluded), Resize + CenterCrop to the input size exactly as at inference, cached as uint8 and reused with
random horizontal flips and a fresh caption each time an image is drawn: colours {colours}; shapes {shapes} (cross = a plus
sign); one shape per image, {100 * MIN_REL_SIZE:.0f}% to {100 * MAX_REL_SIZE:.0f}% of the (centre-square) side, anywhere inside, rotated up to 15 degrees;
plain, noisy or shaded backgrounds in another named colour or a random shade far from the shape's colour;
images 96 to 144 px, a quarter of them with aspect ratios up to 1.6 (so Resize + CenterCrop matter).
Captions vary: "a photo of a red circle.", "a small blue star on a yellow background", "a large green
hexagon", "red circle", "a drawing of a purple cross on a noisy white background", ...; {100 * info.get('partial_captions', 0.3):.0f}% name only
the shape (70% of those) or only the colour, and {100 * info.get('unnamed_colours', 0.15):.0f}% of the images show a shape in an unnamed colour
(RGB distance >= 90 from all eight) captioned by its shape alone ("a star"), so that shape cannot be read off colour.

## Training
CLIP's recipe at small scale: AdamW (lr {info.get('lr', 1e-3):g}, betas 0.9/0.98, eps 1e-6, weight decay 0.05 on matrices only),
{info.get('warmup', 100)} warm-up steps then cosine decay, batch {info['batch_size']}, learnable logit scale clamped at 100. The batch is split
over {info['procs']} processes of one torch thread each with gradients averaged through shared memory every step (this model's
matrices are too small for threaded GEMMs: two processes train ~1.8x faster than one process with two threads). The image
position embeddings start from 2-D sine-cosine codes rather than noise (same parameters, still learnt).

What limits accuracy (`/usr/bin/python3 models/shapes_breakdown.py`: 30 fresh images per class): the colour is
right for 99.8% of seen-pair images and 99.2% of held-out ones; nearly every error is the shape (seen
pairs: 99% top-1 on large shapes, 96% mid, 70% small; held-out pairs: 92%, 78%, 38%). A supervised probe (the same ViT trained only to
name the shape, 1000 steps of 32 images) reaches 28-41% with learning rates 1e-4 to 1e-3, patch 12 or 16,
or sine-cosine positions (the best): a ViT without convolutions learns shape slowly, and 20 minutes of
2 CPU cores buy about 360k images. What helped most was shape evidence that colour cannot stand in for:
with 15% of images in unnamed colours the same run gave 68.3% seen / 23.3% held-out, with 35% it gave
84.6% / 52.0% after 5600 steps, and 6000 steps 87.8% / 62.5% (seed 0). Held-out pairs that miss get the colour right and often
fall back to a shape seen with that colour.

Seed and model selection: the same settings trained with seed 0 (17.5 min on an earlier, faster day) and seed 1
(20.3 min on 27 Nov 2026, when this VM ran 0.20 s per step against 0.17) gave 87.8% / 62.5% and 92.0% / 72.0%
seen / held-out on the test images below: the seed alone moves the result by several points. Seed 1, now the
default, was chosen on separate validation images (seed 3000, 50 per class: 92.4% / 73.5% against 88.7% /
62.2% for seed 0), not on the test images.

Tried and not adopted (quick checks, 10 images per class, every 500 steps; the same settings with seed 0 at 5600 steps reached 36.0% /
52.3% / 68.3% seen at steps 1500 / 2000 / 3000; all these runs used seed 0):
- 50% unnamed-colour images (`--unnamed-colours 0.5 --steps 6300`): seen 34.5% / 40.5% / 54.8% at the
  same steps and 75.8% at step 4500 (5600-step run: 86.8%); stopped there.
- an extra 25% of training images with small shapes, 15-35% of the side (`--small-shapes 0.25 --steps 6800`):
  seen 26.2% / 31.7% / 39.0% at steps 1500 / 2500 / 3000; stopped there.
- single-process pairs of 2000-step runs at equal image counts: 96 px input with patch 16 (36 tokens, like
  48 px / 8) gave 42.8% / 17.5% seen / held-out against 41.6% / 8.8% at 48 px, and 30% slower steps; batch 128
  gave 42.2% / 9.3%, batch 256 33.8% / 4.2%, batch 32 30.2% / 12.7% (batch 64: 41.6% / 8.8%).
- the full run at 96 px / patch 16 (`--image-size 96 --patch 16 --steps 4800`, 14.8 min, steps ~10% slower
  in two processes): 75.6% seen / 47.0% held-out (50 images per class), below the 48 px run with seed 0.
- other numbers of distinct training images, full 6000-step runs: 96,000 (`--train-images 96000`, 19.8 min
  with 1.2 min of data generation) gave 77.8% seen / 54.3% held-out, and 16,000 (19.4 min) 84.9% / 46.5%,
  against 87.8% / 62.5% for 32,000 (seed 0). That model scores 77% on small shapes in its own
  training images against 64% on fresh ones, which suggested more data; at this step count more distinct
  images made it learn shape more slowly (seen 32.8% / 38.8% / 56.2% at steps 1500 / 2000 / 3000).
- colour-grouped batches (`--colour-groups 4 --steps 5600`: each process's 32 images as 4 groups of 8 sharing
  one colour, so that most negatives differ only in shape): seen 30.3% / 40.0% / 60.0% at steps 1500 / 2000 /
  3000; stopped there.
- learning rate 2e-3 (200 warm-up steps, `--steps 5200`): seen 21.0% / 28.7% at steps 1500 / 2000; stopped
  there. Learning rate 7e-4 (`--lr 7e-4 --steps 5200`, full run, 15.8 min): 83.6% seen / 53.8% held-out.

## Accuracy
Zero-shot top-1 over all 48 colour-shape classes with the prompt "a photo of a {{colour}} {{shape}}.", on
fresh images from another seed. The C++ accuracy is measured by the zsclip tool on the same kind of data
(the number is added below by the maintainers).

@EVAL@

C++ (zsclip tool): to be measured.

## Reproduce
`/usr/bin/python3 models/train_shapes.py` (Debian 12 python3-torch 1.13.1 CPU, torchvision 0.14, Pillow 9.4).
Training is deterministic for a given seed, machine and `--procs`; other CPUs or process counts give
slightly different weights. The speed of this 2-core VM varies from day to day (0.17 s per step in the seed-0
run, 0.18-0.24 s in the runs of 27 Nov 2026, 0.20 s for the shipped seed-1 run), so the run logs a projection of its
length at step 300 and warns when it will take more than 20 minutes. It still runs every step: it stops early
only when `--minutes M` is given, because a time limit would make the weights depend on the machine's speed.

## Limits
- Knows only these 8 colours and 6 shapes, one shape per image, flat synthetic drawings; photos, several
  objects, textures, outlines, or other words give meaningless scores.
- Near colours (red/orange/yellow, purple/blue) and small shapes (circle vs hexagon at {100 * MIN_REL_SIZE:.0f}% size) are the
  main confusions; held-out pairs are weaker than seen ones.
- Prompts longer than the training captions, or words outside the caption vocabulary (split into bytes),
  are outside what the text tower was trained on.
"""


def die_with_parent():
    """A spawned worker must not outlive the launching process (killed, Ctrl-C): Linux's PR_SET_PDEATHSIG."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


def apply_overrides(args):
    """Experiment overrides of SHAPE (again in each spawned process, which re-imports this module)."""
    if args.image_size:
        SHAPE["image_resolution"] = args.image_size
    if args.patch:
        SHAPE["vision_patch_size"] = args.patch
    if args.vision_layers:
        SHAPE["vision_layers"] = args.vision_layers


def train_worker(rank, world, args, vocab_path, corpus, sd_path, stats_path, shared):
    """One data-parallel training process: its own shard of images and captions, gradients averaged over
    all processes after every step through shared memory (every process keeps identical weights). Rank 0
    logs, runs the quick checks and writes the state dict and training stats.

    shared is None for one process, else (buffers, barrier): buffers [2, world, n_params + 2] float32 in
    shared memory, barrier a multiprocessing.Barrier(world). Each step every process writes its flat gradient
    (plus loss and stop flag) into its row of buffer step % 2, waits at the barrier, and sums the rows in
    rank order, so every process computes the same bits. Alternating the two buffers needs one barrier per
    step: a process can only write buffer k again after everyone has passed the next barrier, i.e. after
    everyone has finished reading buffer k. (This replaced gloo's all-reduce: no rendezvous file, no extra
    communication threads; two alternating pairs of 250-step runs took 0.16 s/step against 0.17-0.19.)"""
    torch.set_num_threads(1)
    apply_overrides(args)
    if shared is not None:
        die_with_parent()
        buffers, barrier = shared
    log = print if rank == 0 else (lambda *a, **k: None)
    encoder = ClipTokenizer.from_file(vocab_path)
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = make_model(encoder.vocab_size)
    if args.pos_init == "sincos":
        init_sincos_positions(model.visual)
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        t = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * t))

    n_px = SHAPE["image_resolution"]
    shard_seed = args.seed * 1009 + rank
    local_batch = args.batch_size // world
    t0 = time.time()
    data, meta = build_dataset(shard_seed, args.train_images // world, n_px, args.partial_captions,
                               args.unnamed_colours, args.small_shapes)
    data_minutes = (time.time() - t0) / 60
    log(f"data: {len(meta) * world} images {n_px}px ({world} shards) generated in {data_minutes:.1f} min", flush=True)
    image_attrs = [(m.colour, m.shape, size_word(m.rel_size), m.background) for m in meta]
    log(f"images with an unnamed colour: {sum(m.colour == OTHER_COLOUR for m in meta) * world}", flush=True)
    token_cache = {}
    for text in corpus:
        if text not in token_cache:
            token_cache[text] = encoder.tokenize([text], SHAPE["context_length"])[0]
    attr_cache = {text: caption_attributes(text) for text in token_cache}
    captioner = ShapeGenerator(shard_seed + 1, partial_captions=args.partial_captions)
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    g = torch.Generator().manual_seed(shard_seed)
    order = torch.randperm(len(meta), generator=g)
    cursor = 0
    groups = args.colour_groups
    if groups:
        by_colour = {}
        for i, m in enumerate(meta):
            by_colour.setdefault(m.colour, []).append(i)
        members = [torch.tensor(by_colour[c]) for c in sorted(by_colour)]
        group_of = torch.empty(len(meta), dtype=torch.long)
        for k, idx_list in enumerate(members):
            group_of[idx_list] = k
    model.train()
    start = time.time()
    loss_avg = None
    step = 0
    elapsed_at_from = 0.0
    for step in range(args.steps):
        if cursor + local_batch > len(order):
            order = torch.randperm(len(meta), generator=g)
            cursor = 0
        if groups:
            # Colour-grouped batch: `groups` seed images drawn uniformly (so colours keep their shares), each
            # joined by images of its own colour drawn with replacement. Most of an image's in-batch negatives
            # then share its colour, so captions can only be told apart by shape (and size, background).
            seeds = torch.randint(len(meta), (groups,), generator=g)
            per = local_batch // groups
            parts = []
            for sd in seeds.tolist():
                pool = members[int(group_of[sd])]
                parts.append(torch.tensor([sd]))
                parts.append(pool[torch.randint(len(pool), (per - 1,), generator=g)])
            idx = torch.cat(parts)
        else:
            idx = order[cursor:cursor + local_batch]
            cursor += local_batch
        pixels = data[idx].float().div_(255)
        # Horizontal flips keep every shape's name (rotations are symmetric, circles/crosses/... mirror-invariant).
        flip = torch.rand(len(idx), generator=g) < 0.5
        pixels[flip] = pixels[flip].flip(3)
        pixels = (pixels - mean) / std
        captions = [captioner.caption(meta[i]) for i in idx.tolist()]
        for text in captions:
            if text not in token_cache:
                token_cache[text] = encoder.tokenize([text], SHAPE["context_length"])[0]
                attr_cache[text] = caption_attributes(text)
        ids = trim(torch.stack([token_cache[t] for t in captions]))
        imgs = [image_attrs[i] for i in idx.tolist()]
        match = torch.tensor([[describes(attr_cache[t], a) for t in captions] for a in imgs])
        for grp in opt.param_groups:
            grp["lr"] = lr_at(step)
        loss = clip_loss(model, pixels, ids, match)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        elapsed = time.time() - start
        # Rank 0 decides on the time limit for everyone.
        over_time = (rank == 0 and args.minutes is not None and elapsed + data_minutes * 60 > args.minutes * 60
                     and step + 1 < args.steps)
        if step + 1 == PROJECT_FROM_STEP:
            elapsed_at_from = elapsed
        if step + 1 == PROJECT_AT_STEP and args.steps > PROJECT_AT_STEP:
            # The rate after the first, slower steps, applied to the steps still to run.
            rate = (elapsed - elapsed_at_from) / (PROJECT_AT_STEP - PROJECT_FROM_STEP)
            projected = data_minutes + (elapsed + rate * (args.steps - step - 1)) / 60
            log(f"projected: {projected:.1f} min for {args.steps} steps including data", flush=True)
            if projected > BUDGET_MINUTES:
                log(f"WARNING: this machine is slower than the one the default run was sized on: the run will "
                    f"take longer than {BUDGET_MINUTES} minutes (the model will be the same; --minutes M would "
                    f"stop it early, with different weights)", flush=True)
        if world > 1:
            rows = buffers[step % 2]
            torch.cat([p.grad.reshape(-1) for p in params], out=rows[rank, :-2])
            rows[rank, -2] = loss.detach()
            rows[rank, -1] = float(over_time)
            barrier.wait(BARRIER_TIMEOUT_S)
            flat = rows[0].clone()
            for r in range(1, world):
                flat += rows[r]
            flat.div_(world)
            offset = 0
            for p in params:
                n = p.numel()
                p.grad.copy_(flat[offset:offset + n].view_as(p))
                offset += n
            loss_value = float(flat[-2])
            over_time = bool(flat[-1] > 0)
        else:
            loss_value = loss.item()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # CLIP's clamp
        loss_avg = loss_value if loss_avg is None else 0.95 * loss_avg + 0.05 * loss_value
        if (step + 1) % args.log_every == 0 or step == 0:
            log(f"step {step + 1}/{args.steps} loss {loss_avg:.3f} scale {model.logit_scale.exp().item():.1f} "
                f"lr {lr_at(step):.2e} {elapsed / 60:.1f} min ({elapsed / (step + 1):.2f} s/step)", flush=True)
        if rank == 0 and args.eval_every and (step + 1) % args.eval_every == 0:
            r = zero_shot_eval(model, encoder, args.seed + 500, 10)
            log(f"  check: seen {100 * r['seen']:.1f}% held-out {100 * r['held_out']:.1f}%", flush=True)
        if over_time:
            log(f"WARNING: stopping at step {step + 1}: over --minutes {args.minutes}", flush=True)
            break
    steps_done = step + 1
    step_seconds = (time.time() - start) / steps_done
    train_minutes = (time.time() - start) / 60 + data_minutes
    log(f"trained {steps_done} steps in {train_minutes:.1f} min including data ({step_seconds:.2f} s/step)")
    if world > 1:
        # Weights must be bit-identical everywhere: each process publishes its weights, then compares.
        rows = buffers[steps_done % 2]
        torch.cat([p.detach().reshape(-1) for p in params], out=rows[rank, :-2])
        barrier.wait(BARRIER_TIMEOUT_S)
        if not torch.equal(rows[rank, :-2], rows[0, :-2]):
            raise RuntimeError(f"process {rank}: weights diverged from process 0")
        barrier.wait(BARRIER_TIMEOUT_S)
    if rank == 0:
        model.eval()
        torch.save(model.state_dict(), sd_path)
        with open(stats_path, "w") as f:
            json.dump({"steps": steps_done, "train_minutes": train_minutes, "final_loss": loss_avg,
                       "train_images": len(meta) * world, "step_seconds": step_seconds}, f)
    if world > 1:
        barrier.wait(BARRIER_TIMEOUT_S)


def main(argv=None):
    p = argparse.ArgumentParser(description="Train and export zsclip's default shapes model")
    p.add_argument("--out", default=os.path.join(HERE, "shapes"), help="export directory (default models/shapes)")
    p.add_argument("--name", default="shapes")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--train-images", type=int, default=32000,
                   help="images generated once (seeded) and reused across steps with fresh captions")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop training early (and warn) if this wall time is exceeded; off by default, so that the "
                        "weights do not depend on the machine's speed (a projection is logged at step "
                        f"{PROJECT_AT_STEP})")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--partial-captions", type=float, default=0.3,
                   help="share of captions that name only the shape (mostly) or only the colour")
    p.add_argument("--unnamed-colours", type=float, default=0.35,
                   help="share of images whose shape has an unnamed colour (captioned by shape only)")
    p.add_argument("--small-shapes", type=float, default=0.0,
                   help="extra share of training images with a small shape (15-35%% of the side; default 0)")
    p.add_argument("--colour-groups", type=int, default=0,
                   help="draw each process's batch as N groups of one colour each (0: uniformly random batches)")
    p.add_argument("--pos-init", choices=["sincos", "random"], default="sincos",
                   help="initial image position embeddings (see init_sincos_positions)")
    p.add_argument("--eval-every", type=int, default=500, help="quick zero-shot check every N steps (0: off)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--eval-seed", type=int, default=None, help="default: seed + 1000")
    p.add_argument("--eval-per-class", type=int, default=50)
    p.add_argument("--procs", type=int, default=2,
                   help="data-parallel training processes, one torch thread each (default 2, the cores here)")
    p.add_argument("--examples", default=os.path.join(os.path.dirname(HERE), "examples", "images"))
    p.add_argument("--no-examples", action="store_true", help="(default; kept for old command lines)")
    p.add_argument("--write-examples", action="store_true",
                   help="regenerate examples/images (they are committed; off by default)")
    p.add_argument("--no-export", action="store_true")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--image-size", type=int, default=None, help="override the input size (experiments)")
    p.add_argument("--patch", type=int, default=None, help="override the patch size (experiments)")
    p.add_argument("--vision-layers", type=int, default=None, help="override image tower depth (experiments)")
    args = p.parse_args(argv)
    if args.procs < 1:
        p.error(f"--procs must be >= 1, got {args.procs}")
    if args.colour_groups < 0 or (args.colour_groups and (args.batch_size // args.procs) % args.colour_groups):
        p.error(f"--colour-groups {args.colour_groups} must be >= 0 and divide the per-process batch "
                f"{args.batch_size // args.procs} (--batch-size / --procs)")
    if args.minutes is not None and args.minutes <= 0:
        p.error(f"--minutes must be > 0, got {args.minutes}")
    apply_overrides(args)

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    eval_seed = args.eval_seed if args.eval_seed is not None else args.seed + 1000
    work = os.path.join(args.out, ".work")
    os.makedirs(work, exist_ok=True)
    command = "/usr/bin/python3 models/train_shapes.py" + "".join(" " + a for a in (argv or sys.argv[1:]))

    # 1. vocabulary
    corpus = all_caption_texts()
    merges = learn_merges(corpus)
    vocab_path = os.path.join(work, "bpe_shapes.txt.gz")
    write_merges(merges, vocab_path)
    encoder = ClipTokenizer.from_file(vocab_path)
    words = {w for t in corpus for w in t.lower().replace(".", " .").split()}
    multi = [w for w in words if len(encoder.encode(w)) != 1]
    if multi:
        raise SystemExit(f"BPE left words split into several tokens: {multi}")
    longest = max(len(encoder.encode(t)) + 2 for t in corpus)
    if longest > SHAPE["context_length"]:
        raise SystemExit(f"a caption needs {longest} tokens > context_length {SHAPE['context_length']}")
    print(f"vocab: {len(merges)} merges, vocab_size {encoder.vocab_size}, longest caption {longest} tokens")

    # 2. training (data-parallel over --procs processes, one torch thread each: this model's matrices are
    # too small for intra-op threads to pay, so two processes get ~2x the images per second of one)
    n_params = sum(p.numel() for p in make_model(encoder.vocab_size).parameters())
    print(f"model: {n_params:,} parameters, shape {SHAPE}")
    if args.batch_size % args.procs:
        raise SystemExit(f"--batch-size {args.batch_size} is not divisible by --procs {args.procs}")
    sd_path = os.path.join(work, "state_dict.pt")
    stats_path = os.path.join(work, "train_stats.json")
    if args.procs == 1:
        train_worker(0, 1, args, vocab_path, corpus, sd_path, stats_path, None)
    else:
        import torch.multiprocessing as mp
        buffers = torch.zeros(2, args.procs, n_params + 2).share_memory_()
        barrier = mp.get_context("spawn").Barrier(args.procs)
        mp.spawn(train_worker, args=(args.procs, args, vocab_path, corpus, sd_path, stats_path, (buffers, barrier)),
                 nprocs=args.procs, join=True)
    with open(stats_path) as f:
        stats = json.load(f)
    model = make_model(encoder.vocab_size)
    model.load_state_dict(torch.load(sd_path))
    steps_done, train_minutes, loss_avg = stats["steps"], stats["train_minutes"], stats["final_loss"]
    n_train_images = stats["train_images"]

    # 3. evaluation on fresh images
    result = zero_shot_eval(model, encoder, eval_seed, args.eval_per_class)
    print(f"zero-shot top-1: seen {100 * result['seen']:.1f}%  held-out {100 * result['held_out']:.1f}%  "
          f"all {100 * result['all']:.1f}%")
    for (c, s) in HELD_OUT:
        print(f"  held-out {c} {s}: {100 * result['per_class'][f'{c} {s}']:.0f}%")

    # 4. save, export, card, examples
    model.eval()
    info = dict(steps=steps_done, batch_size=args.batch_size, train_minutes=train_minutes, procs=args.procs,
                partial_captions=args.partial_captions, unnamed_colours=args.unnamed_colours, lr=args.lr,
                warmup=args.warmup,
                seed=args.seed, final_loss=loss_avg, logit_scale=model.logit_scale.exp().item(),
                train_images=n_train_images, command=command, vocab_size=encoder.vocab_size, merges=len(merges), params=n_params)
    with open(os.path.join(work, "eval.json"), "w") as f:
        json.dump({"eval": result, "train": info, "held_out": HELD_OUT, "shape": SHAPE}, f, indent=1)
    if args.write_examples and not args.no_examples:
        tf_ex = openai_transform(SHAPE["image_resolution"])
        from PIL import Image
        for name, caption in write_examples(args.examples, args.seed + 2000):
            img = Image.open(os.path.join(args.examples, name))
            with torch.no_grad():
                ids = encoder.tokenize([EVAL_TEMPLATE.format(c, s) for c, s in ALL_PAIRS], SHAPE["context_length"])
                logits, _ = model(tf_ex(img).unsqueeze(0), ids)
            top = ALL_PAIRS[int(logits.argmax())]
            print(f"example {name} ({img.size[0]}x{img.size[1]}, '{caption}'): predicted {top[0]} {top[1]}")
    if not args.no_export:
        exporter = os.path.join(HERE, "export_clip.py")
        # clip_model's CLIP is OpenAI's architecture: QuickGELU MLPs (a bare state dict does not record it).
        subprocess.run([sys.executable, exporter, "--checkpoint", sd_path, "--vocab", vocab_path,
                        "--activation", "quick_gelu", "--out", args.out, "--name", args.name], check=True)
    update_card(os.path.join(args.out, "README.md"), result, info)
    print(f"done: {args.out}")


if __name__ == "__main__":
    main()
