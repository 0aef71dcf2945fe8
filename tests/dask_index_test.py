#!/usr/bin/env python3
"""examples/dask_index.py on a LocalCluster of 2 worker processes, one of which is killed mid-run:
the merged index must equal a single-process `zsclip index build` of the same images (same rows for
the same paths, search scores within 1e-6). Exit 77 (skipped) without python3-distributed.

usage: dask_index_test.py ZSCLIP SOURCE_DIR WORK_DIR
"""
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np


def make_images(folder, count=50, seed=16):
    from PIL import Image, ImageDraw
    rng = random.Random(seed)
    colours = [(220, 30, 30), (30, 60, 220), (30, 170, 60), (230, 210, 40), (150, 60, 190), (240, 140, 30)]
    paths = []
    for i in range(count):
        size = rng.choice([64, 80, 96])
        im = Image.new("RGB", (size, size), (255, 255, 255))
        d = ImageDraw.Draw(im)
        c = rng.choice(colours)
        r = rng.randint(size // 6, size // 3)
        x, y = rng.randint(r, size - r), rng.randint(r, size - r)
        shape = rng.choice(["circle", "square", "triangle"])
        if shape == "circle":
            d.ellipse([x - r, y - r, x + r, y + r], fill=c)
        elif shape == "square":
            d.rectangle([x - r, y - r, x + r, y + r], fill=c)
        else:
            d.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=c)
        p = os.path.join(folder, f"{i:03d}_{shape}.png")
        im.save(p)
        paths.append(p)
    return paths


def load(index):
    rows = np.load(os.path.join(index, "embeddings.npy"))
    with open(os.path.join(index, "manifest.jsonl")) as f:
        manifest = [json.loads(l) for l in f]
    return rows, {m["path"]: m["row"] for m in manifest if "row" in m}


def search(zsclip, index, text):
    r = subprocess.run([zsclip, "search", "--json", "--top-k", "50", "--index", index, "--text", text],
                       check=True, capture_output=True, text=True)
    return json.loads(r.stdout)


def main():
    zsclip, source, work = sys.argv[1:4]
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("python3-distributed (Dask) is not installed: skipped")
        return 77
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "images"))
    paths = make_images(os.path.join(work, "images"))
    listing = os.path.join(work, "images.txt")
    with open(listing, "w") as f:
        f.write("".join(p + "\n" for p in paths))

    single = os.path.join(work, "single.idx")
    subprocess.run([zsclip, "index", "build", "--dtype", "float32", "--images-from", listing, "--out", single], check=True)

    merged = os.path.join(work, "dask.idx")
    cmd = [sys.executable, os.path.join(source, "examples", "dask_index.py"), "--scheduler", "local", "--workers", "2",
           "--shards", "4", "--images-from", listing, "--out", merged, "--zsclip", zsclip, "--dtype", "float32",
           "--batch-size", "2", "--threads", "1", "--test-kill-worker", "1"]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=240)

    marker = os.path.join(work, "dask.idx.shards", "killed-worker.txt")
    assert os.path.exists(marker), "the test hook did not kill a worker"
    print(open(marker).read().strip())

    a_rows, a_paths = load(single)
    b_rows, b_paths = load(merged)
    assert set(a_paths) == set(b_paths) == set(paths), (len(a_paths), len(b_paths))
    worst = max(float(np.abs(a_rows[a_paths[p]] - b_rows[b_paths[p]]).max()) for p in paths)
    assert worst <= 1e-6, f"rows differ by {worst}"
    for text in ["red circle", "blue square", "green triangle"]:
        a, b = search(zsclip, single, text), search(zsclip, merged, text)
        assert [h["path"] for h in a] == [h["path"] for h in b], text
        diff = max(abs(x["score"] - y["score"]) for x, y in zip(a, b))
        assert diff <= 1e-6, f"{text}: scores differ by {diff}"
    print(f"dask index: {len(paths)} images in 4 shards on 2 workers, one killed mid-run; "
          f"merged index equals the single-process one (rows within {worst:.1e})")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
