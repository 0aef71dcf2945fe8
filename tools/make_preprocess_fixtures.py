#!/usr/bin/python3
"""Makes tests/data/preprocess/: small deterministic images and what Pillow 9.4 + torchvision 0.14 make
of them, for tests/core/resample_test.cpp and tests/core/preprocess_test.cpp.

Run with Debian's interpreter (python3-pil, python3-torchvision, python3-numpy):
    /usr/bin/python3 tools/make_preprocess_fixtures.py [out_dir]

cases.json lists
  resize:     {input, mode, size: [w, h], filter, expected}  expected = raw bytes of
              Image.open(input).resize(size, filter), converted to the layout zsclip's Image8 uses
              (P -> RGB, 1 -> L with 0/255, LA -> RGBA), row-major interleaved.
  preprocess: {input, image_size, resize, crop, interpolation, exif, fill, expected}  expected = float32
              C-order [3, n, n] from OpenAI CLIP's _transform(n) (torchvision Compose below); resize
              "longer_side" is open_clip's resize_mode "longest" instead: ResizeKeepRatio(n, longest=1)
              then CenterCropOrPad(n, fill), written below from torchvision's functional ops.
  errors:     {input, code}  files zsclip must refuse with that zsclip::ErrorCode name.
"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor
from torchvision.transforms import functional as TF

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}
TV_FILTERS = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
              "nearest": InterpolationMode.NEAREST}


def resize_longer_side(im, n, interpolation):
    # open_clip's ResizeKeepRatio(n, longest=1) in eval: ratio = max(h / n, w / n), each side
    # round(side / ratio) (Python's round), then a torchvision resize to exactly that size.
    w, h = im.size
    ratio = max(h / n, w / n) * 1.0 + min(h / n, w / n) * 0.0
    return TF.resize(im, [round(h / ratio), round(w / ratio)], TV_FILTERS[interpolation])


def center_crop_or_pad(im, n, fill):
    # open_clip's CenterCropOrPad: pad (floor half left/top) where smaller, then a centre crop.
    w, h = im.size
    if n > w or n > h:
        im = TF.pad(im, [max(n - w, 0) // 2, max(n - h, 0) // 2, max(n - w + 1, 0) // 2, max(n - h + 1, 0) // 2],
                    fill=fill)
        w, h = im.size
    return TF.crop(im, int(round((h - n) / 2.0)), int(round((w - n) / 2.0)), n, n)


def transform(n, interpolation="bicubic", resize="shorter_side", fill=0):
    # OpenAI's clip.clip._transform(n), with the interpolation/resize rule as zsclip's config allows.
    if resize == "longer_side":
        return Compose([lambda im: resize_longer_side(im, n, interpolation), lambda im: center_crop_or_pad(im, n, fill),
                        lambda im: im.convert("RGB"), ToTensor(), Normalize(MEAN, STD)])
    size = n if resize == "shorter_side" else (n, n)
    return Compose([Resize(size, interpolation=TV_FILTERS[interpolation]), CenterCrop(n),
                    lambda im: im.convert("RGB"), ToTensor(), Normalize(MEAN, STD)])


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width, height, bit_depth, color_type, rows):
    """A PNG written by hand, for bit depths Pillow cannot save (16-bit RGB, 2-bit grey)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    raw = b"".join(b"\x00" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def make_images(rng):
    imgs = {}

    def rand(h, w, c):
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)

    imgs["rgb_17x13.png"] = Image.fromarray(rand(13, 17, 3), "RGB")
    imgs["rgb_1x1.png"] = Image.fromarray(rand(1, 1, 3), "RGB")
    imgs["rgb_3x200.png"] = Image.fromarray(rand(200, 3, 3), "RGB")
    imgs["rgb_300x2.png"] = Image.fromarray(rand(2, 300, 3), "RGB")
    imgs["rgb_97x61.png"] = Image.fromarray(rand(61, 97, 3), "RGB")
    yy, xx = np.mgrid[0:150, 0:211]
    grad = np.stack([xx * 255 // 210, yy * 255 // 149, (xx + yy) % 256], -1).astype(np.uint8)
    imgs["gradient_211x150.png"] = Image.fromarray(grad, "RGB")
    imgs["l_45x70.png"] = Image.fromarray(rand(70, 45, 1)[..., 0], "L")
    rgba = rand(40, 57, 4)
    rgba[::3, :, 3] = 0
    rgba[1::5, :, 3] = 255
    imgs["rgba_57x40.png"] = Image.fromarray(rgba, "RGBA")
    imgs["la_33x29.png"] = Image.fromarray(rand(29, 33, 2), "LA")
    p = Image.fromarray(rand(50, 36, 1)[..., 0], "P")
    p.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
    imgs["p_36x50.png"] = p
    imgs["bin_41x23.png"] = Image.fromarray((rand(23, 41, 1)[..., 0] > 127).astype(np.uint8) * 255,
                                            "L").convert("1")
    return imgs


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests",
                                                              "data", "preprocess")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240601)
    imgs = make_images(rng)
    for name, im in imgs.items():
        im.save(os.path.join(out, name))

    # Formats Pillow cannot write directly, and JPEGs.
    rows16 = [rng.integers(0, 65536, 19 * 3, dtype=np.uint16).astype(">u2").tobytes() for _ in range(23)]
    extra = {"rgb16_19x23.png": raw_png(19, 23, 16, 2, rows16)}
    rows16a = [rng.integers(0, 65536, 21 * 4, dtype=np.uint16).astype(">u2").tobytes() for _ in range(14)]
    extra["rgba16_21x14.png"] = raw_png(21, 14, 16, 6, rows16a)
    rows2 = [rng.integers(0, 256, 4, dtype=np.uint8).tobytes() for _ in range(9)]
    extra["l2bit_16x9.png"] = raw_png(16, 9, 2, 0, rows2)
    buf = io.BytesIO()
    imgs["gradient_211x150.png"].save(buf, "JPEG", quality=90)
    extra["gradient_211x150.jpg"] = buf.getvalue()
    buf = io.BytesIO()
    imgs["rgb_97x61.png"].save(buf, "JPEG", quality=85, progressive=True, subsampling=2)
    extra["rgb_97x61_progressive.jpg"] = buf.getvalue()
    buf = io.BytesIO()
    imgs["l_45x70.png"].save(buf, "JPEG", quality=80)
    extra["l_45x70.jpg"] = buf.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 clockwise to display
    buf = io.BytesIO()
    imgs["rgb_97x61.png"].save(buf, "JPEG", quality=95, exif=exif.tobytes())
    extra["exif6_97x61.jpg"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "CMYK").save(buf, "JPEG")
    extra["cmyk_8x8.jpg"] = buf.getvalue()
    rows16g = [rng.integers(0, 65536, 5, dtype=np.uint16).astype(">u2").tobytes() for _ in range(5)]
    extra["l16_5x5.png"] = raw_png(5, 5, 16, 0, rows16g)
    for name, data in extra.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    cases = {"resize": [], "preprocess": [], "errors": [
        {"input": "cmyk_8x8.jpg", "code": "unsupported"},
        {"input": "l16_5x5.png", "code": "unsupported"},
    ]}

    def layout(im, mode):
        return im.convert({"P": "RGB", "1": "L", "LA": "RGBA"}.get(mode, mode))

    resize_plan = [
        ("rgb_17x13.png", [(40, 31), (17, 13), (5, 4), (1, 1), (17, 50)]),
        ("rgb_1x1.png", [(7, 3), (1, 1)]),
        ("rgb_3x200.png", [(1, 66), (5, 300), (3, 17)]),
        ("rgb_300x2.png", [(64, 1), (450, 3), (299, 2)]),
        ("rgb_97x61.png", [(32, 20), (200, 126), (96, 61)]),
        ("l_45x70.png", [(9, 14), (90, 141)]),
        ("rgba_57x40.png", [(19, 13), (120, 84)]),
        ("la_33x29.png", [(11, 10), (70, 60)]),
        ("p_36x50.png", [(12, 17), (80, 111)]),
        ("bin_41x23.png", [(14, 8), (90, 50)]),
        ("rgb16_19x23.png", [(7, 9)]),
        ("l2bit_16x9.png", [(5, 3)]),
    ]
    for name, sizes in resize_plan:
        src = Image.open(os.path.join(out, name))
        src.load()
        for i, size in enumerate(sizes):
            for fname in (["bicubic", "bilinear", "nearest"] if i < 2 else ["bicubic"]):
                res = layout(src.resize(size, FILTERS[fname]), src.mode)
                exp = "resize_%s_%dx%d_%s.u8" % (name.rsplit(".", 1)[0], size[0], size[1], fname)
                with open(os.path.join(out, exp), "wb") as f:
                    f.write(np.asarray(res).tobytes())
                cases["resize"].append({"input": name, "mode": src.mode, "size": list(size), "filter": fname,
                                        "expected": exp})

    pre_plan = [
        ("rgb_17x13.png", 32, {}), ("rgb_17x13.png", 8, {}), ("rgb_1x1.png", 32, {}),
        ("rgb_3x200.png", 64, {}), ("rgb_300x2.png", 32, {}), ("rgb_97x61.png", 64, {}),
        ("rgb_97x61.png", 33, {"interpolation": "bilinear"}), ("rgb_97x61.png", 30, {"interpolation": "nearest"}),
        ("rgb_97x61.png", 48, {"resize": "stretch"}),
        ("gradient_211x150.png", 224, {}), ("gradient_211x150.png", 64, {}),
        ("l_45x70.png", 32, {}), ("rgba_57x40.png", 32, {}), ("rgba_57x40.png", 40, {}),
        ("la_33x29.png", 32, {}), ("p_36x50.png", 32, {}), ("bin_41x23.png", 32, {}),
        ("rgb16_19x23.png", 16, {}), ("rgba16_21x14.png", 16, {}), ("l2bit_16x9.png", 8, {}),
        ("gradient_211x150.jpg", 64, {}), ("rgb_97x61_progressive.jpg", 32, {}), ("l_45x70.jpg", 32, {}),
        ("exif6_97x61.jpg", 32, {}), ("exif6_97x61.jpg", 32, {"exif": True}),
        # open_clip's resize_mode "longest": padded with fill (a palette image pads with palette[fill]).
        ("rgb_97x61.png", 48, {"resize": "longer_side"}), ("rgb_3x200.png", 64, {"resize": "longer_side"}),
        ("rgb_300x2.png", 160, {"resize": "longer_side", "fill": 200}),
        ("rgb_17x13.png", 40, {"resize": "longer_side", "interpolation": "bilinear"}),
        ("l_45x70.png", 32, {"resize": "longer_side", "fill": 77}), ("rgba_57x40.png", 32, {"resize": "longer_side"}),
        ("la_33x29.png", 24, {"resize": "longer_side", "fill": 9}), ("p_36x50.png", 32, {"resize": "longer_side"}),
        ("p_36x50.png", 30, {"resize": "longer_side", "fill": 5}), ("bin_41x23.png", 32, {"resize": "longer_side"}),
    ]
    for name, n, opt in pre_plan:
        im = Image.open(os.path.join(out, name))
        if opt.get("exif"):
            im = ImageOps.exif_transpose(im)
        t = transform(n, opt.get("interpolation", "bicubic"), opt.get("resize", "shorter_side"), opt.get("fill", 0))(im)
        assert t.dtype == torch.float32 and tuple(t.shape) == (3, n, n)
        exp = "pre_%s_%d%s.f32" % (name.replace(".", "_"), n,
                                   "".join("_%s" % (v if v is not True else k) for k, v in sorted(opt.items())))
        t.numpy().astype("<f4").tofile(os.path.join(out, exp))
        cases["preprocess"].append({"input": name, "image_size": n, "expected": exp,
                                    "interpolation": opt.get("interpolation", "bicubic"),
                                    "resize": opt.get("resize", "shorter_side"),
                                    "exif": bool(opt.get("exif", False)), "fill": opt.get("fill", 0)})
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
