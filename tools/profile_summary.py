#!/usr/bin/env python3
"""Sums a Chrome trace written by `zsclip bench --profile FILE` by op name: total ms, calls, share
of the traced time. Ops nest (a TorchScript call contains its ops), so shares of outer and inner
ops overlap; the table lists what it finds, largest first.

    tools/profile_summary.py FILE [--top 25]
"""
import argparse
import collections
import json
import sys


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("trace")
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    try:
        with open(a.trace) as f:
            text = f.read().strip()
        if text.endswith(","):
            text = text[:-1]
        if not text.endswith("]"):
            text += "]"
        events = json.loads(text)
    except (OSError, ValueError) as e:
        print(f"profile_summary: {a.trace}: {e}", file=sys.stderr)
        return 1
    total = collections.Counter()
    calls = collections.Counter()
    first, last = None, None
    for e in events:
        if e.get("ph") != "X":
            continue
        total[e["name"]] += e.get("dur", 0.0)
        calls[e["name"]] += 1
        first = e["ts"] if first is None else min(first, e["ts"])
        last = e["ts"] + e.get("dur", 0) if last is None else max(last, e["ts"] + e.get("dur", 0))
    span = (last - first) if first is not None else 0
    print(f"traced span {span / 1000:.1f} ms")
    print(f"{'op':40s} {'ms':>10s} {'calls':>7s} {'share':>7s}")
    for name, us in total.most_common(a.top):
        print(f"{name[:40]:40s} {us / 1000:10.2f} {calls[name]:7d} {100 * us / max(span, 1):6.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
