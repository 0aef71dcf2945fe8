#!/usr/bin/env python3
"""A SHA-256 digest of a whole model folder, to compare with the one its publisher gives.

    python3 tools/model_digest.py DIR                  # prints each file's sha256, then the folder's
    python3 tools/model_digest.py DIR --expect HEX     # exit 0 when the folder's digest is HEX, else 1

The folder digest is the SHA-256 of the listing that coreutils' sha256sum prints for every regular file
under DIR (recursively), named relative to DIR and sorted bytewise, so it can be checked without this
script:

    (cd DIR && find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs -d '\\n' sha256sum) | sha256sum

Every file counts (config.json, the .pt files, the tokenizer, any README): a folder with an extra, a
missing or a changed file has another digest. A symbolic link, a special file, or a name that
sha256sum would escape (newline, backslash) is refused (exit 2), as the digest would not say what is
loaded. Standard library only (any python3).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import stat
import sys
from typing import List, Tuple


class DigestError(Exception):
    pass


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def listing(folder: str) -> List[Tuple[str, str]]:
    """(sha256, name relative to folder) of every regular file, sorted by the name's bytes."""
    if not os.path.isdir(folder):
        raise DigestError(f"{folder}: not a directory")
    out = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in list(dirs):
            full = os.path.join(root, name)
            if os.path.islink(full):
                raise DigestError(f"{full}: a symbolic link (to a folder); the digest covers only regular files")
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, folder)
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                raise DigestError(f"{full}: a symbolic link; copy the file it points to into the folder")
            if not stat.S_ISREG(mode):
                raise DigestError(f"{full}: not a regular file")
            if "\n" in rel or "\\" in rel or "\r" in rel:
                raise DigestError(f"{full}: a name with a newline or backslash (sha256sum would escape it)")
            out.append((file_sha256(full), rel))
    return sorted(out, key=lambda e: os.fsencode(e[1]))


def folder_digest(entries: List[Tuple[str, str]]) -> str:
    text = "".join(f"{digest}  {name}\n" for digest, name in entries)
    return hashlib.sha256(os.fsencode(text)).hexdigest()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="SHA-256 digest of a whole zsclip model folder")
    p.add_argument("folder")
    p.add_argument("--expect", metavar="HEX", help="the digest the folder's publisher gives: exit 1 unless equal")
    p.add_argument("--quiet", action="store_true", help="print the folder digest only")
    args = p.parse_args(argv)
    try:
        entries = listing(args.folder)
    except (DigestError, OSError) as e:
        print(f"model_digest.py: error: {e}", file=sys.stderr)
        return 2
    digest = folder_digest(entries)
    if not args.quiet:
        for d, name in entries:
            print(f"{d}  {name}")
    print(f"{digest}  {args.folder.rstrip('/') or '/'}/ (folder: sha256 of the {len(entries)} lines above)"
          if not args.quiet else digest)
    if args.expect is not None:
        want = args.expect.strip().lower()
        if want != digest:
            print(f"model_digest.py: MISMATCH: {args.folder} has digest {digest}, not the expected {want}: "
                  "do not load it", file=sys.stderr)
            return 1
        print(f"model_digest.py: {args.folder}: matches the expected digest", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
