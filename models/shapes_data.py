"""Synthetic coloured-shape images with captions for training zsclip's default model.

One shape per image, drawn with PIL: 8 colours x 6 shapes = 48 colour-shape classes. Backgrounds are plain
or noisy, in a named colour or a random shade, never close to the shape's own colour. Images are larger than
the model input and sometimes not square, so the model always sees them through the OpenAI-style
Resize + CenterCrop pipeline; the shape is kept inside the central square that CenterCrop keeps.

    gen = ShapeGenerator(seed=0, exclude=HELD_OUT)
    sample = gen.sample()          # Sample(image=PIL.Image, colour="red", shape="circle", caption=...)
"""

import math
import random
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 225),
    "yellow": (245, 220, 30),
    "orange": (250, 140, 20),
    "purple": (135, 45, 175),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ["circle", "square", "triangle", "star", "hexagon", "cross"]

# Never seen in training; each colour and each shape still appears in training with other partners.
HELD_OUT = [
    ("red", "star"),
    ("green", "cross"),
    ("blue", "hexagon"),
    ("yellow", "triangle"),
    ("orange", "circle"),
    ("purple", "square"),
    ("white", "triangle"),
    ("black", "star"),
]

ALL_PAIRS = [(c, s) for c in COLOURS for s in SHAPES]

# Shape size (circumscribed diameter) relative to the visible, centre-square side: uniform in this range.
MIN_REL_SIZE = 0.15
MAX_REL_SIZE = 0.80
# Upper end of the extra small-shape share (ShapeGenerator(small_shapes=...), training only).
SMALL_REL_SIZE = 0.35

# The zero-shot prompt the evaluation (and the C++ tool's default) uses.
EVAL_TEMPLATE = "a photo of a {} {}."

# Caption templates: {c} colour, {s} shape, {size} small/large, {bg} background phrase.
_TEMPLATES_ANY = [
    "a photo of a {c} {s}.",
    "a photo of a {c} {s}",
    "a {c} {s}",
    "{c} {s}",
    "a picture of a {c} {s}.",
    "an image of a {c} {s}",
    "the {c} {s}.",
    "a drawing of a {c} {s}",
    "a {c} {s} shape",
]
_TEMPLATES_SIZE = [
    "a {size} {c} {s}",
    "a photo of a {size} {c} {s}.",
    "a {size} {c} {s} in the picture",
]
_TEMPLATES_BG = [
    "a {c} {s} on a {bg} background",
    "a photo of a {c} {s} on a {bg} background.",
    "a drawing of a {c} {s} on a {bg} background",
]
_TEMPLATES_SIZE_BG = [
    "a {size} {c} {s} on a {bg} background",
    "a photo of a {size} {c} {s} on a {bg} background.",
]

_TEMPLATES_COLOUR_ONLY = ["a {c} shape", "something {c}", "a {c} object."]
_TEMPLATES_SHAPE_ONLY = ["a {s}", "a {s} shape", "a photo of a {s}."]

# The colour attribute of a shape drawn in a colour far from every named one (captioned by shape only).
OTHER_COLOUR = "other"
# Minimum RGB distance between such a colour and each of the named colours.
_MIN_UNNAMED_DISTANCE = 90.0

# Minimum RGB distance between the shape's colour and any background pixel colour we choose.
_MIN_BG_DISTANCE = 140.0


@dataclass
class Sample:
    image: Image.Image
    colour: str
    shape: str
    caption: str
    rel_size: float = 0.0  # shape size relative to the visible side
    background: Optional[str] = None  # the named background phrase ("blue", "noisy blue") or None


def _dist(a, b):
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def _shape_points(shape, cx, cy, r, angle):
    """Polygon for a shape of circumradius r centred at (cx, cy), rotated by angle (radians)."""

    def rot(points):
        ca, sa = math.cos(angle), math.sin(angle)
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]

    if shape == "square":
        h = r / math.sqrt(2.0)
        return rot([(-h, -h), (h, -h), (h, h), (-h, h)])
    if shape == "triangle":
        # Centroid at the centre; equilateral, pointing up.
        return rot([(r * math.cos(-math.pi / 2 + k * 2 * math.pi / 3),
                     r * math.sin(-math.pi / 2 + k * 2 * math.pi / 3)) for k in range(3)])
    if shape == "hexagon":
        return rot([(r * math.cos(k * math.pi / 3), r * math.sin(k * math.pi / 3)) for k in range(6)])
    if shape == "star":
        inner = 0.42 * r
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else inner
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((rr * math.cos(a), rr * math.sin(a)))
        return rot(pts)
    if shape == "cross":
        # A plus sign whose arms are a third of the full width.
        w = r / 3.0
        return rot([(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
                    (-r, w), (-r, -w), (-w, -w)])
    raise ValueError(f"unknown shape {shape!r}")


class ShapeGenerator:
    """Deterministic stream of samples for a given seed."""

    def __init__(self, seed, pairs=None, exclude=(), min_side=96, max_side=144, partial_captions=0.0,
                 unnamed_colours=0.0, small_shapes=0.0):
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        excluded = set(tuple(p) for p in exclude)
        self.pairs = [p for p in (pairs if pairs is not None else ALL_PAIRS) if tuple(p) not in excluded]
        if not self.pairs:
            raise ValueError("no colour-shape pairs left to sample")
        self.partial_captions = partial_captions
        # Share of samples whose shape has a colour far from all eight named ones ("other"), captioned by
        # shape only: shape evidence that no colour can stand in for (no held-out pair is drawn this way).
        self.unnamed_colours = unnamed_colours
        # Extra share of samples whose size is drawn from the small end (MIN_REL_SIZE to SMALL_REL_SIZE)
        # instead of the whole range: small shapes are the slowest to learn (training only; 0 keeps the
        # uniform sizes and the same random stream).
        self.small_shapes = small_shapes
        self.min_side = min_side
        self.max_side = max_side

    def _jitter(self, rgb, amount):
        return tuple(int(min(255, max(0, v + self.rng.randint(-amount, amount)))) for v in rgb)

    def _background(self, w, h, shape_rgb, shape_colour):
        """Returns (uint8 HxWx3 array, caption phrase or None)."""
        rng = self.rng
        named = [c for c in COLOURS if c != shape_colour and _dist(COLOURS[c], shape_rgb) >= _MIN_BG_DISTANCE]
        noisy = rng.random() < 0.4
        if named and rng.random() < 0.6:
            name = rng.choice(named)
            base = self._jitter(COLOURS[name], 12)
        else:
            name = None
            for _ in range(100):
                base = tuple(rng.randint(0, 255) for _ in range(3))
                if _dist(base, shape_rgb) >= _MIN_BG_DISTANCE:
                    break
            else:
                base = tuple(255 - v for v in shape_rgb)
        img = np.empty((h, w, 3), dtype=np.float32)
        img[:] = base
        if noisy:
            sigma = rng.uniform(10.0, 35.0)
            img += self.np_rng.normal(0.0, sigma, size=img.shape).astype(np.float32)
            # Keep noise from creating pixels of the shape's colour.
            d = np.sqrt(((img - np.asarray(shape_rgb, np.float32)) ** 2).sum(axis=2, keepdims=True))
            too_close = d < _MIN_BG_DISTANCE * 0.6
            img = np.where(too_close, np.asarray(base, np.float32), img)
        elif rng.random() < 0.3:
            # A gentle gradient towards a second shade, also far from the shape's colour.
            for _ in range(20):
                other = self._jitter(base, 60)
                if _dist(other, shape_rgb) >= _MIN_BG_DISTANCE:
                    break
            else:
                other = base
            t = np.linspace(0.0, 1.0, w if rng.random() < 0.5 else h, dtype=np.float32)
            t = t[None, :, None] if t.shape[0] == w else t[:, None, None]
            img = img * (1 - t) + np.asarray(other, np.float32) * t
            name = None
        arr = np.clip(img, 0, 255).astype(np.uint8)
        if name is None:
            phrase = None
        else:
            phrase = ("noisy " + name) if noisy else name
        return arr, phrase

    def caption(self, sample):
        """A fresh caption for an existing sample (draws from this generator's stream)."""
        return self._caption(sample.colour, sample.shape, sample.rel_size, sample.background)

    def _caption(self, colour, shape, rel_size, bg_phrase):
        rng = self.rng
        if colour == OTHER_COLOUR:
            return rng.choice(_TEMPLATES_SHAPE_ONLY).format(s=shape)
        # A few captions name only one attribute, which nudges the towers towards separable colour and
        # shape features (what zero-shot transfer to held-out pairs relies on).
        if rng.random() < self.partial_captions:
            # Colour is learnt early and easily; shape is the slow part, so shape-only captions are commoner.
            t = rng.choice(_TEMPLATES_COLOUR_ONLY if rng.random() < 0.3 else _TEMPLATES_SHAPE_ONLY)
            return t.format(c=colour, s=shape)
        size = size_word(rel_size)
        choices = list(_TEMPLATES_ANY)
        if size:
            choices += _TEMPLATES_SIZE
        if bg_phrase:
            choices += _TEMPLATES_BG
        if size and bg_phrase:
            choices += _TEMPLATES_SIZE_BG
        t = rng.choice(choices)
        text = t.format(c=colour, s=shape, size=size, bg=bg_phrase)
        # Both articles occur, so "a orange" (the literal evaluation prompt) and "an orange" are known.
        if rng.random() < 0.3:
            text = text.replace("a orange", "an orange")
        return text

    def _unnamed_rgb(self):
        for _ in range(1000):
            rgb = tuple(self.rng.randint(0, 255) for _ in range(3))
            if min(_dist(rgb, named) for named in COLOURS.values()) >= _MIN_UNNAMED_DISTANCE:
                return rgb
        raise RuntimeError("no unnamed colour found")

    def sample(self, pair=None):
        rng = self.rng
        if pair is None and self.unnamed_colours and rng.random() < self.unnamed_colours:
            pair = (OTHER_COLOUR, rng.choice(SHAPES))
        colour, shape = pair if pair is not None else rng.choice(self.pairs)
        # Mostly square; sometimes a different aspect ratio so Resize+CenterCrop is exercised.
        side = rng.randint(self.min_side, self.max_side)
        if rng.random() < 0.25:
            long_side = int(side * rng.uniform(1.1, 1.6))
            w, h = (long_side, side) if rng.random() < 0.5 else (side, long_side)
        else:
            w = h = side
        shape_rgb = self._unnamed_rgb() if colour == OTHER_COLOUR else self._jitter(COLOURS[colour], 15)
        bg, bg_phrase = self._background(w, h, shape_rgb, colour)
        img = Image.fromarray(bg, "RGB")

        if self.small_shapes and rng.random() < self.small_shapes:
            rel = rng.uniform(MIN_REL_SIZE, SMALL_REL_SIZE)
        else:
            rel = rng.uniform(MIN_REL_SIZE, MAX_REL_SIZE)
        r = rel * side / 2.0
        # Centre square that CenterCrop keeps; allow the shape to poke out by at most 10% of its size.
        x0, y0 = (w - side) / 2.0, (h - side) / 2.0
        slack = 0.1 * r
        cx = rng.uniform(x0 + r - slack, x0 + side - r + slack)
        cy = rng.uniform(y0 + r - slack, y0 + side - r + slack)
        draw = ImageDraw.Draw(img)
        if shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=shape_rgb)
        else:
            angle = math.radians(rng.uniform(-15.0, 15.0))
            draw.polygon(_shape_points(shape, cx, cy, r, angle), fill=shape_rgb)
        return Sample(img, colour, shape, self._caption(colour, shape, rel, bg_phrase), rel, bg_phrase)


def size_word(rel_size):
    """The size word captions use for a relative size (None between the two)."""
    return "small" if rel_size < 0.3 else ("large" if rel_size > 0.55 else None)


def caption_attributes(text):
    """(colour, shape, size, background) a caption states; None where it says nothing about one.

    Used to find every image in a batch that a caption describes (several positives per caption).
    """
    words = text.lower().rstrip(".").split()
    background = None
    if "background" in words and "on" in words:
        on = words.index("on")
        bg_words = [w for w in words[on + 1:words.index("background")] if w not in ("a", "an")]
        background = " ".join(bg_words)
        words = words[:on]
    colour = next((w for w in words if w in COLOURS), None)
    shape = next((w for w in words if w in SHAPES), None)
    size = next((w for w in words if w in ("small", "large")), None)
    return colour, shape, size, background


def all_caption_texts():
    """Every caption the generator can emit, plus the evaluation prompt (corpus for the BPE learner)."""
    sizes = ["small", "large"]
    bgs = []
    for c in COLOURS:
        bgs += [c, "noisy " + c]
    out = []
    for c in COLOURS:
        for s in SHAPES:
            out.append(EVAL_TEMPLATE.format(c, s))
            for t in _TEMPLATES_ANY:
                out.append(t.format(c=c, s=s))
            for t in _TEMPLATES_SIZE:
                for z in sizes:
                    out.append(t.format(c=c, s=s, size=z))
            for t in _TEMPLATES_BG:
                for b in bgs:
                    out.append(t.format(c=c, s=s, bg=b))
            for t in _TEMPLATES_SIZE_BG:
                for z in sizes:
                    for b in bgs:
                        out.append(t.format(c=c, s=s, size=z, bg=b))
        for t in _TEMPLATES_COLOUR_ONLY:
            out.append(t.format(c=c))
    for s in SHAPES:
        for t in _TEMPLATES_SHAPE_ONLY:
            out.append(t.format(s=s))
    return out + [t.replace("a orange", "an orange") for t in out if "a orange" in t]
