#!/usr/bin/python3
"""Fuzz test of models/safetensors_io.py, the exporter's safetensors reader (a ctest, run with Debian's
/usr/bin/python3: torch 1.13).

    /usr/bin/python3 tests/safetensors_fuzz.py [--source DIR] [--work DIR] [--seed N] [--iterations N]
                                               [--seconds S] [--case-timeout S] [--start I] [--keep]

Builds small valid files with the module's own write_safetensors (F32, F16, BF16, I64, I32, U8 and BOOL
tensors, a 0-d and an empty one, a non-ASCII name; with and without __metadata__, and an empty file "{}"),
then runs --iterations cases (fewer when --seconds run out), each written to a file and read with
read_safetensors:

  * directed cases first: every base file as written, truncation at and around each region boundary (the
    length field, the header, the data), empty and tiny files, header lengths 0/1/huge/2**64-1/over the
    100 MB limit, deeply nested JSON, 5000-digit integers, NaN/Infinity, a BOM, duplicate names,
    zero-size tensors at the end of the data and past it, shapes with huge dims or huge products;
  * then random cases, seeded by (--seed, iteration) so that each one can be rerun alone with --start I
    --iterations 1: 0-3 structure-aware mutations of the header (wrong, near-miss or non-string dtypes;
    negative, huge, float, swapped, overlapping, out-of-range or gapped data_offsets; shapes that do not
    match their offsets; missing, extra and duplicated keys; entries and headers that are not objects;
    unicode, empty and surrogate names; bad __metadata__; valid-preserving edits too: reordered entries,
    same-size dtype swaps, reshapes, dropped or added tensors, JSON whitespace), then, in about half the
    cases, 1-3 byte-level mutations (bit flips, byte sets, insertions, deletions, duplicated ranges,
    truncation) in the length field, the header (with the length fixed up or not) or the data.

Each case must end in one of two ways:
  * read: then an independent validator in this file must agree that the file is well formed, and the
    tensors must be CPU, contiguous, in header order, of the header's dtypes and shapes, numel x element
    size equal to their data_offsets span, byte-identical to the file's data, and survive a round trip
    through write_safetensors; the metadata must be the header's;
  * refused with safetensors_io.SafetensorsError whose message contains the file's path (and is not
    absurdly long), for a file the validator also calls malformed.
Anything else is a failure: another exception (RecursionError, TypeError, MemoryError, a plain
ValueError...), a warning, a disagreement with the validator, a case slower than --case-timeout, or a
worker that crashes or hangs (the cases run in a child process that the parent watches: a hang past
--case-timeout + 10 s is killed). A failure prints the seed, the iteration, the mutations, a command that
reruns it and a hex dump of the file's first bytes, and keeps the file under WORK/failures.

Prints "safetensors fuzz: N cases (D directed, R random), X refused cleanly, Y read, F failures" and
the refusals by kind. Exit status 0 without failures, 1 with, 77 (skipped) when torch cannot be imported.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77
HARD_GRACE_S = 10.0      # the parent kills a worker this long after --case-timeout
MAX_MESSAGE = 2000       # characters of an error message beyond the file's path
DUMP_BYTES = 256

# --------------------------------------------------------------------------------------------------
# The independent validator: the format as models/safetensors_io.py documents it (and upstream requires),
# written without looking at how the reader does it.

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
HEADER_LIMIT = 100 * 1000 * 1000
SIZE_LIMIT = 2 ** 63 - 1


class Malformed(Exception):
    pass


def _strict_pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Malformed("duplicate key")
    return OrderedDict(pairs)


def _no_constants(name):
    raise Malformed(f"JSON constant {name}")


def validate(blob: bytes):
    """(entries, metadata, data) of a well-formed file, entries an OrderedDict name -> (dtype, shape, begin,
    end); raises Malformed otherwise."""
    if len(blob) < 8:
        raise Malformed("no length field")
    n = int.from_bytes(blob[:8], "little")
    if n > HEADER_LIMIT or n > len(blob) - 8:
        raise Malformed("header length")
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=_strict_pairs,
                            parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise Malformed(f"not JSON: {type(e).__name__}") from None
    if type(header) is not OrderedDict:
        raise Malformed("not an object")
    metadata = None
    if "__metadata__" in header:
        metadata = header.pop("__metadata__")
        if metadata is not None:
            if type(metadata) is not OrderedDict or any(type(v) is not str for v in metadata.values()):
                raise Malformed("metadata")
            metadata = dict(metadata)
    data = blob[8 + n:]
    entries = OrderedDict()
    for name, entry in header.items():
        if type(entry) is not OrderedDict or sorted(entry) != ["data_offsets", "dtype", "shape"]:
            raise Malformed("entry fields")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if type(dtype) is not str or dtype not in SIZES:
            raise Malformed("dtype")
        if type(shape) is not list or any(type(d) is not int or d < 0 or d > SIZE_LIMIT for d in shape):
            raise Malformed("shape")
        if (type(offsets) is not list or len(offsets) != 2 or any(type(o) is not int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise Malformed("data_offsets")
        count = 0 if 0 in shape else 1
        for d in shape:
            count *= d
            if count > SIZE_LIMIT:
                raise Malformed("element count")
        if offsets[1] - offsets[0] != count * SIZES[dtype]:
            raise Malformed("size")
        entries[name] = (dtype, list(shape), offsets[0], offsets[1])
    end = 0
    for begin, stop in sorted((e[2], e[3]) for e in entries.values()):
        if begin != end:
            raise Malformed("not tiled")
        end = stop
    if end != len(data):
        raise Malformed("data size")
    return entries, metadata, data


# --------------------------------------------------------------------------------------------------
# Mutants.

class Raw(str):
    """JSON text emitted verbatim (numbers JSON allows but Python would write otherwise, broken syntax)."""


class Pairs(list):
    """A JSON object as a list of (key, value), so that it can hold a key twice."""


def dump(value, ascii_only=True) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, (Pairs, dict)):
        items = value if isinstance(value, Pairs) else value.items()
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=ascii_only)}:{dump(v, ascii_only)}"
                              for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dump(v, ascii_only) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def parse_file(blob: bytes):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n], object_pairs_hook=OrderedDict), blob[8 + n:]


class Model:
    """A header as ordered (key, value) pairs plus the data, for structure-aware mutations."""

    def __init__(self, blob: bytes):
        header, data = parse_file(blob)
        self.pairs = [[k, v if k == "__metadata__" else OrderedDict((f, list(x) if isinstance(x, list) else x)
                                                                    for f, x in v.items())]
                      for k, v in header.items()]
        self.data = bytearray(data)
        self.ascii_only = True
        self.lead, self.trail = "", ""
        self.text = None  # replaces the whole header text when set

    def tensors(self):
        return [p for p in self.pairs if p[0] != "__metadata__" and isinstance(p[1], dict)
                and isinstance(p[1].get("data_offsets"), list) and len(p[1]["data_offsets"]) == 2
                and all(type(o) is int for o in p[1]["data_offsets"])]

    def serialize(self) -> bytes:
        text = self.text if self.text is not None else \
            self.lead + "{" + ",".join(f"{json.dumps(k, ensure_ascii=self.ascii_only)}:{dump(v, self.ascii_only)}"
                                       for k, v in self.pairs) + "}" + self.trail
        raw = text.encode("utf-8", "surrogatepass")
        return struct.pack("<Q", len(raw)) + raw + bytes(self.data)


WRONG_DTYPES = ["f32", "F8", "", "F32 ", " F32", "I128", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "C64",
                "float32", "BOOL\u0000", "\uff26\uff13\uff12", "bf16", None, 32, 4.0, True, ["F32"], {"F32": 1}]
SAME_SIZE = [["F16", "BF16", "I16"], ["F32", "I32"], ["F64", "I64"], ["U8", "I8", "BOOL"]]
NAMES = ["", " ", "a", "\u00e9\u00e8", "\u5c42.weight", "\U0001f600", "\ud800", "\udfff\ud800", "\u0000",
         "a\nb", "\\", '"', "__metadata", "__METADATA__", "__metadata__ ", "x" * 3000, "\u202e", "\ufeff"]
INTERESTING_BYTES = b'{}[]":,\\-0123456789eE.+ \t\n\x00\xff\xfe\xc3\xa9\xed\xa0\x80\xf0\x9f'


def pick_tensor(rng, model):
    ts = model.tensors()
    return rng.choice(ts) if ts else None


def m_dtype(rng, model):
    t = pick_tensor(rng, model)
    if t is None:
        return "dtype(none)"
    old = t[1].get("dtype")
    if rng.random() < 0.4:
        group = next((g for g in SAME_SIZE if old in g), [old])
        t[1]["dtype"] = rng.choice(group)
        return f"dtype-same-size({t[1]['dtype']!r})"
    t[1]["dtype"] = rng.choice(WRONG_DTYPES + list(SIZES))
    return f"dtype({t[1]['dtype']!r})"


def m_offsets(rng, model):
    ts = model.tensors()
    if not ts:
        return "offsets(none)"
    t = rng.choice(ts)
    b, e = t[1]["data_offsets"]
    size, k, end = e - b, rng.randint(1, 9), len(model.data)
    other = rng.choice(ts)[1]["data_offsets"]
    choices = [
        [-1, e], [b, -1], [-b - 1, -e - 1], [e, b], [b, e + k], [b + k, e + k], [max(b - k, 0), max(e - k, 0)],
        [b, 2 ** 64], [2 ** 64, 2 ** 64 + size], [2 ** 63 - 1, 2 ** 63 - 1 + size], [10 ** 30, 10 ** 30 + size],
        [float(b), float(e)], [b, e, e], [b], [], None, f"{b},{e}", {"0": b, "1": e}, [True, e], [b, [e]],
        [Raw("-0"), e], [b, Raw(f"{e}.0")], [b, Raw(f"{e}e0")], [Raw("9" * 5000), e], [Raw("NaN"), e],
        [b, Raw("Infinity")], [str(b), e], list(other), [other[0], other[0] + size], [end, end + size],
        [end - size + 1, end + 1], [end + k, end + k], [0, size], [end - size, end]]
    t[1]["data_offsets"] = rng.choice(choices)
    return f"offsets({dump(t[1]['data_offsets'])[:40]})"


def m_shape(rng, model):
    t = pick_tensor(rng, model)
    if t is None:
        return "shape(none)"
    shape = t[1].get("shape")
    shape = list(shape) if isinstance(shape, list) and all(type(d) is int for d in shape) else [1]
    i = rng.randrange(len(shape) + 1)
    choices = [
        shape[::-1], shape[:i] + [1] + shape[i:], [1] * rng.randint(60, 3000) + shape,
        shape[:i] + [0] + shape[i:], [d + 1 for d in shape], [d - 1 for d in shape], [], [-1], [2 ** 63],
        [2 ** 63 - 1], [2 ** 64 + 1], [0, 2 ** 70], [0, 2 ** 63 - 1], [2 ** 62] * rng.randint(2, 6000),
        [2 ** 32, 2 ** 32], [float(d) for d in shape] or [1.0], [True] * max(len(shape), 1), "2,3", None,
        {"0": 2}, [[d] for d in shape] or [[]], [Raw("9" * 4400)], [Raw("1e2")], [Raw("-0")] + shape]
    t[1]["shape"] = rng.choice(choices)
    return f"shape({dump(t[1]['shape'])[:40]})"


def m_reshape_valid(rng, model):
    t = pick_tensor(rng, model)
    if t is None or not isinstance(t[1].get("shape"), list) or not all(type(d) is int for d in t[1]["shape"]):
        return "reshape(none)"
    shape = list(t[1]["shape"])
    rng.shuffle(shape)
    for _ in range(rng.randint(0, 3)):
        shape.insert(rng.randrange(len(shape) + 1), 1)
    t[1]["shape"] = shape
    return f"reshape-valid({shape[:8]})"


def m_fields(rng, model):
    t = pick_tensor(rng, model)
    if t is None:
        return "fields(none)"
    e = t[1]
    how = rng.randrange(6) if e else 1
    if how == 0:
        key = rng.choice(list(e))
        del e[key]
        return f"missing({key})"
    if how == 1:
        e[rng.choice(["offset", "dtypes", "__metadata__", "dtype ", "Shape", "", "extra"])] = rng.choice([0, "x", None])
        return "extra-field"
    if how == 2:  # a field twice, same or different value
        key = rng.choice(list(e))
        pairs = Pairs(e.items())
        pairs.insert(rng.randrange(len(pairs) + 1), (key, e[key] if rng.random() < 0.5 else "F32"))
        t[1] = pairs
        return f"duplicate-field({key})"
    if how == 3:
        t[1] = rng.choice([[], ["F32", [1], [0, 4]], "F32", 0, None, True, 1.5, {}])
        return f"entry-not-object({dump(t[1])[:20]})"
    if how == 4:
        order = list(e.items())
        rng.shuffle(order)
        t[1] = OrderedDict(order)
        return "fields-reordered"
    t[1] = OrderedDict((k.upper() if k == "dtype" else k, v) for k, v in e.items())
    return "field-case"


def m_names(rng, model):
    if not model.pairs:
        return "names(none)"
    how = rng.randrange(4)
    p = rng.choice(model.pairs)
    if how == 0 and p[0] != "__metadata__":
        p[0] = rng.choice(NAMES) + (str(rng.randrange(100)) if rng.random() < 0.5 else "")
        return f"rename({p[0][:20]!r})"
    if how == 1:  # a name twice (the copy's entry identical or not)
        value = json.loads(json.dumps(p[1])) if rng.random() < 0.5 else rng.choice(model.pairs)[1]
        model.pairs.insert(rng.randrange(len(model.pairs) + 1), [p[0], value])
        return f"duplicate-name({p[0][:20]!r})"
    if how == 2:
        rng.shuffle(model.pairs)
        return "reorder-entries"
    model.ascii_only = not model.ascii_only
    return "ascii-toggle"


def m_metadata(rng, model):
    meta = [p for p in model.pairs if p[0] == "__metadata__"]
    value = rng.choice([None, {}, {"format": "pt"}, {"\u00e9": "\u5c42", "": ""}, {"k": 1}, {"k": None},
                        {"k": ["v"]}, {"k": {"a": "b"}}, [], "pt", 0, True, Pairs([("a", "b"), ("a", "c")]),
                        {"format": "pt", "x" * 5000: "y" * 5000}])
    if meta and rng.random() < 0.2:
        model.pairs.remove(meta[0])
        return "metadata-removed"
    if meta:
        meta[0][1] = value
    else:
        model.pairs.insert(rng.randrange(len(model.pairs) + 1), ["__metadata__", value])
    return f"metadata({dump(value)[:30]})"


def m_drop_tensor(rng, model):
    """Removes a tensor and its bytes, shifting the later offsets: stays well formed."""
    ts = model.tensors()
    if not ts:
        return "drop(none)"
    t = rng.choice(ts)
    b, e = t[1]["data_offsets"]
    if not 0 <= b <= e <= len(model.data):
        return "drop(skip)"
    model.pairs.remove(t)
    del model.data[b:e]
    for o in model.tensors():
        ob, oe = o[1]["data_offsets"]
        if ob >= e:
            o[1]["data_offsets"] = [ob - (e - b), oe - (e - b)]
    return f"drop({t[0][:20]!r})"


def m_add_tensor(rng, model):
    """Appends a tensor at the end of the data (well formed unless the data was already broken)."""
    dtype = rng.choice(list(SIZES))
    shape = [rng.randint(0, 3) for _ in range(rng.randint(0, 3))]
    count = 1
    for d in shape:
        count *= d
    raw = bytes(rng.randrange(256) for _ in range(count * SIZES[dtype]))
    name = f"added{rng.randrange(1000)}" + rng.choice(["", "\u00e9", "\U0001f600"])
    model.pairs.insert(rng.randrange(len(model.pairs) + 1),
                       [name, OrderedDict(dtype=dtype, shape=shape,
                                          data_offsets=[len(model.data), len(model.data) + len(raw)])])
    model.data += raw
    return f"add({dtype}{shape})"


def m_whitespace(rng, model):
    how = rng.randrange(5)
    ws = "".join(rng.choice(" \t\r\n") for _ in range(rng.randint(1, 20)))
    if how == 0:
        model.lead = ws
    elif how == 1:
        model.trail = ws
    elif how == 2:
        model.trail = rng.choice(["\u0000", "\u00a0", "\ufeff", "x", "}", ",", "{}", "\u2028"]) * rng.randint(1, 8)
    elif how == 3:
        model.lead = rng.choice(["\ufeff", "\u00a0", "[", "\u0000"])
    else:
        model.text = "{" + ",\n".join(f"  {json.dumps(k)} : {dump(v)}" for k, v in model.pairs) + "\n}"
    return f"whitespace({how})"


def m_header_kind(rng, model):
    model.text = rng.choice(["[]", "null", "1", '"{}"', "{}", "{ }", "", " ", "{", "}", "{}}", "{}{}", "[{}]",
                             "true", '{"a"}', '{"a":}', '{"a":1,}', '{,}', "\u0000{}", "{}\u0000",
                             '{"__metadata__":{}}',
                             "{" * 2000 + "}" * 2000, "[" * 5000, '{"a":' * 5000])
    return f"header({model.text[:12]!r})"


def m_data(rng, model):
    how = rng.randrange(4)
    if how == 0:
        model.data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 9)))
        return "data-appended"
    if how == 1 and model.data:
        cut = rng.randrange(len(model.data))
        del model.data[cut:]
        return f"data-cut({cut})"
    if how == 2 and model.data:  # same size, different bytes: stays well formed
        i = rng.randrange(len(model.data))
        model.data[i] = rng.randrange(256)
        return "data-byte"
    model.data = bytearray()
    return "data-empty"


STRUCTURAL = [(m_dtype, 3), (m_offsets, 5), (m_shape, 4), (m_reshape_valid, 2), (m_fields, 3), (m_names, 3),
              (m_metadata, 2), (m_drop_tensor, 2), (m_add_tensor, 2), (m_whitespace, 2), (m_header_kind, 1),
              (m_data, 2)]


def byte_mutation(rng, blob: bytearray) -> str:
    n = struct.unpack("<Q", bytes(blob[:8]))[0] if len(blob) >= 8 else 0
    header_end = min(8 + n, len(blob))
    region = rng.choice(["length", "header", "header", "header", "data"])
    lo, hi = {"length": (0, min(8, len(blob))), "header": (8, header_end), "data": (header_end, len(blob))}[region]
    if hi <= lo:
        lo, hi = 0, len(blob)
    if hi <= lo:
        blob += bytes([rng.randrange(256)])
        return "append-byte"
    how = rng.randrange(7)
    pos = rng.randrange(lo, hi)
    fix_length = region == "header" and rng.random() < 0.7

    def fixed():
        if fix_length and len(blob) >= 8:
            blob[:8] = struct.pack("<Q", (n + len(blob) - size_before) % 2 ** 64)
        return ""
    size_before = len(blob)
    if how == 0:
        blob[pos] ^= 1 << rng.randrange(8)
        return f"bitflip@{pos}"
    if how == 1:
        blob[pos] = rng.choice(INTERESTING_BYTES) if rng.random() < 0.6 else rng.randrange(256)
        return f"set@{pos}"
    if how == 2:
        k = rng.randint(1, 16)
        blob[pos:pos] = bytes(rng.choice(INTERESTING_BYTES) if rng.random() < 0.6 else rng.randrange(256)
                              for _ in range(k))
        fixed()
        return f"insert{k}@{pos}{'+len' if fix_length else ''}"
    if how == 3:
        k = rng.randint(1, max(1, min(16, hi - pos)))
        del blob[pos:pos + k]
        fixed()
        return f"delete{k}@{pos}{'+len' if fix_length else ''}"
    if how == 4:
        k = rng.randint(1, max(1, min(32, hi - pos)))
        blob[pos:pos] = blob[pos:pos + k]
        fixed()
        return f"duplicate{k}@{pos}{'+len' if fix_length else ''}"
    if how == 5:
        del blob[pos:]
        return f"truncate@{pos}({region})"
    value = rng.choice([0, 1, 2, n - 1, n + 1, n + rng.randint(2, 64), max(n - rng.randint(2, 64), 0),
                        len(blob) - 8, len(blob) - 7, HEADER_LIMIT, HEADER_LIMIT + 1, 2 ** 32 + n, 2 ** 63,
                        2 ** 64 - 1, rng.randrange(2 ** 64)])
    if len(blob) < 8:
        blob[:] = blob + bytes(8 - len(blob))
    blob[:8] = struct.pack("<Q", value % 2 ** 64)
    return f"length={value}"


def random_case(rng, bases):
    base_name, base = rng.choice(bases)
    ops = [base_name]
    model = Model(base)
    weights = [w for _, w in STRUCTURAL]
    for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3])):
        op = rng.choices([f for f, _ in STRUCTURAL], weights)[0]
        ops.append(op(rng, model))
    blob = bytearray(model.serialize())
    if len(ops) == 1 or rng.random() < 0.5:
        for _ in range(rng.choice([1, 1, 2, 3])):
            ops.append(byte_mutation(rng, blob))
    return " ".join(ops), bytes(blob)


def header_file(header, data=b"", text=None) -> bytes:
    raw = (text if text is not None else dump(header)).encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(raw)) + raw + data


def directed_cases(bases):
    """(description, bytes) of hand-picked cases, the same for every seed."""
    cases = [(f"{name} as written", blob) for name, blob in bases]
    for name, blob in bases:
        n = struct.unpack("<Q", blob[:8])[0]
        for cut in sorted({0, 1, 7, 8, 9, 8 + n // 2, 8 + n - 1, 8 + n, 8 + n + 1, len(blob) - 1}):
            if 0 <= cut < len(blob):
                cases.append((f"{name} truncated to {cut} bytes", blob[:cut]))
        for value in (0, 1, 2, n - 1, n + 1, len(blob) - 8 + 1, HEADER_LIMIT, HEADER_LIMIT + 1, 2 ** 63,
                      2 ** 64 - 1):
            cases.append((f"{name} header length {value}", struct.pack("<Q", value) + blob[8:]))
        cases.append((f"{name} + 1 trailing byte", blob + b"\0"))
    f32 = lambda shape, b, e: OrderedDict(dtype="F32", shape=shape, data_offsets=[b, e])
    cases += [
        ("8 zero bytes", bytes(8)),
        ("length 1, '{'", header_file(None, text="{")),
        ("length 2, '[]'", header_file(None, text="[]")),
        ("empty header {}", header_file({})),
        ("empty header {} + data", header_file({}, b"\1\2\3\4")),
        ("deep arrays", header_file(None, text="[" * 100000)),
        ("deep objects", header_file(None, text='{"a":' * 100000)),
        ("deep shape", header_file(None, text='{"a":{"dtype":"F32","data_offsets":[0,4],"shape":'
                                              + "[" * 50000 + "]" * 50000 + "}}", data=bytes(4))),
        ("5000-digit offset", header_file({"a": {"dtype": "F32", "shape": [1],
                                                 "data_offsets": [0, Raw("9" * 5000)]}}, bytes(4))),
        ("4300-digit offsets span", header_file({"a": {"dtype": "F32", "shape": [1],
                                                       "data_offsets": [0, Raw("9" * 4300)]}}, bytes(4))),
        ("NaN offset", header_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [Raw("NaN"), 4]}}, bytes(4))),
        ("Infinity dim", header_file({"a": {"dtype": "F32", "shape": [Raw("Infinity")], "data_offsets": [0, 4]}},
                                     bytes(4))),
        ("BOM", header_file(None, text="\ufeff{}")),
        ("duplicate name", header_file(Pairs([("a", f32([1], 0, 4)), ("a", f32([1], 4, 8))]), bytes(8))),
        ("duplicate metadata", header_file(Pairs([("__metadata__", {}), ("__metadata__", {})]))),
        ("metadata null", header_file({"__metadata__": None, "a": f32([1], 0, 4)}, bytes(4))),
        ("metadata {}", header_file({"__metadata__": {}, "a": f32([1], 0, 4)}, bytes(4))),
        ("metadata only", header_file({"__metadata__": {"format": "pt"}})),
        ("zero-size tensor at the end", header_file({"a": f32([1], 0, 4), "z": f32([0], 4, 4)}, bytes(4))),
        ("zero-size tensor past the end", header_file({"a": f32([1], 0, 4), "z": f32([0], 5, 5)}, bytes(4))),
        ("zero-size tensor inside another", header_file({"a": f32([2], 0, 8), "z": f32([0], 4, 4)}, bytes(8))),
        ("shape [0, 2**70]", header_file({"a": f32([0, 2 ** 70], 0, 0)})),
        ("shape [0, 2**63-1]", header_file({"a": f32([0, 2 ** 63 - 1], 0, 0)})),
        ("shape [2**63]", header_file({"a": f32([2 ** 63], 0, 4)}, bytes(4))),
        ("shape [2**32, 2**32]", header_file({"a": f32([2 ** 32, 2 ** 32], 0, 4)}, bytes(4))),
        ("shape [2**62] * 40000", header_file({"a": f32([2 ** 62] * 40000, 0, 4)}, bytes(4))),
        ("shape [1] * 100000", header_file({"a": f32([1] * 100000, 0, 4)}, bytes(4))),
        ("negative zero offset", header_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [Raw("-0"), 4]}},
                                             bytes(4))),
        ("float offsets 0.0", header_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0.0, 4.0]}},
                                          bytes(4))),
        ("bool dim", header_file({"a": f32([True], 0, 4)}, bytes(4))),
        ("lone surrogate name", header_file({"\ud800": f32([1], 0, 4)}, bytes(4))),
        ("empty name", header_file({"": f32([1], 0, 4)}, bytes(4))),
        ("1 MB name", header_file({"n" * 1000000: f32([1], 0, 4)}, bytes(4))),
        ("1 MB unknown dtype", header_file({"a": {"dtype": "F" * 1000000, "shape": [1], "data_offsets": [0, 4]}},
                                           bytes(4))),
        ("not UTF-8", struct.pack("<Q", 3) + b"{\xff}"),
        ("UTF-8-encoded surrogate", struct.pack("<Q", 10) + b'{"\xed\xa0\x80":1}'),
        ("BOOL with byte 2", header_file({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x02\xff")),
    ]
    return cases


# --------------------------------------------------------------------------------------------------
# The worker: runs cases and reports each on stdout ("@case I", "@ok I read|refused KIND", "@fail I").

REFUSAL_KINDS = ["nested too deeply", "not UTF-8", "not JSON", "header length", "truncated", "__metadata__",
                 "not an object", "lacks", "unknown field", "has dtype", "2**63 elements", "has shape", "needs",
                 "has data_offsets", "out-of-range", "overlap", "belong to no tensor", "after the last tensor"]


def refusal_kind(message: str) -> str:
    return next((k for k in REFUSAL_KINDS if k in message), "other")


def hexdump(blob: bytes, limit: int = DUMP_BYTES) -> str:
    lines = []
    for off in range(0, min(len(blob), limit), 16):
        chunk = blob[off:off + 16]
        text = "".join(chr(c) if 32 <= c < 127 else "." for c in chunk)
        lines.append(f"  {off:08x}  {chunk.hex(' '):<47}  |{text}|")
    if len(blob) > limit:
        lines.append(f"  ... {len(blob)} bytes in all")
    return "\n".join(lines) if lines else "  (empty file)"


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def build_bases(torch, st, work):
    t = OrderedDict([
        ("text.weight", (torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7)),
        ("half", torch.linspace(-2, 2, 4).half()),
        ("brain", torch.tensor([[1.5, -0.25], [3.0, 1e-3]]).bfloat16()),
        ("position_ids", torch.arange(3, dtype=torch.int64).unsqueeze(0)),
        ("mask", torch.tensor([True, False, True])),
        ("bytes", torch.arange(5, dtype=torch.uint8)),
        ("scale", torch.tensor(0.5)),
        ("empty", torch.zeros(0, 3)),
        ("\u00fcn\u00ef/\u5c42.bias", torch.ones(2, dtype=torch.int32)),
    ])
    specs = [("all+metadata", t, {"format": "pt", "note": "fuzz \u2713"}),
             ("four", OrderedDict(list(t.items())[:4]), None),
             ("empty", OrderedDict(), None)]
    bases = []
    for name, tensors, meta in specs:
        path = os.path.join(work, f"base-{name}.safetensors")
        st.write_safetensors(path, tensors, meta)
        with open(path, "rb") as f:
            bases.append((name, f.read()))
    return bases


def check_read(torch, st, result, blob, work):
    """Problems with a successful read (an empty list when it is right)."""
    try:
        entries, metadata, data = validate(blob)
    except Malformed as e:
        return [f"read a malformed file (the validator says: {e})"]
    problems = []
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], dict)):
        return [f"read_safetensors returned {type(result).__name__}, not (dict, metadata)"]
    tensors, meta = result
    if list(tensors) != list(entries):
        problems.append(f"tensor names/order {list(tensors)[:5]} != header's {list(entries)[:5]}")
    if meta != metadata:
        problems.append(f"metadata {meta!r} != header's {metadata!r}")
    for name, (dtype, shape, begin, end) in entries.items():
        x = tensors.get(name)
        if not isinstance(x, torch.Tensor):
            problems.append(f"{name!r}: not a tensor ({type(x).__name__})")
            continue
        if x.dtype != st.DTYPES[dtype][0] or list(x.shape) != shape:
            problems.append(f"{name!r}: {x.dtype} {list(x.shape)[:6]} != header's {dtype} {shape[:6]}")
            continue
        if x.numel() * x.element_size() != end - begin:
            problems.append(f"{name!r}: {x.numel()} x {x.element_size()} bytes != data_offsets span {end - begin}")
        if x.device.type != "cpu" or not x.is_contiguous():
            problems.append(f"{name!r}: not a contiguous CPU tensor")
        elif x.numel() and x.reshape(-1).view(torch.uint8).numpy().tobytes() != data[begin:end]:
            problems.append(f"{name!r}: bytes differ from the file's data[{begin}:{end}]")
    if problems:
        return problems
    # Round trip through the writer.
    again = os.path.join(work, "roundtrip.safetensors")
    st.write_safetensors(again, tensors, meta)
    back, back_meta = st.read_safetensors(again)
    bits = lambda x: x.reshape(-1).view(torch.uint8)  # noqa: E731 -- bitwise, so that NaNs compare equal
    if back_meta != (meta or None) or list(back) != list(tensors) or any(
            back[k].dtype != v.dtype or back[k].shape != v.shape or not torch.equal(bits(back[k]), bits(v))
            for k, v in tensors.items()):
        problems.append("write_safetensors + read_safetensors does not give back the same tensors and metadata")
    return problems


def worker(args) -> int:
    try:
        import torch
    except ImportError as e:
        print(f"skipped: torch cannot be imported ({e})")
        return SKIP
    sys.path.insert(0, os.path.join(args.source, "models"))
    import safetensors_io as st
    try:  # a runaway allocation becomes a MemoryError (reported), not a swapping machine
        import resource
        vm_kb = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0])
        limit = vm_kb * 1024 + (3 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (OSError, ValueError, IndexError, ImportError):
        pass
    os.makedirs(args.work, exist_ok=True)
    bases = build_bases(torch, st, args.work)
    directed = directed_cases(bases)
    path = case_path(args)
    emit(f"@ready {len(directed)}")
    for i in range(args.start, args.start + args.iterations):
        if time.time() > args.deadline:
            break
        if i < len(directed):
            desc, blob = directed[i]
            desc = f"directed: {desc}"
        else:
            try:
                desc, blob = random_case(random.Random(f"safetensors-fuzz:{args.seed}:{i}"), bases)
            except Exception:  # a bug of this file, not of the reader
                report(args, i, "generating the case", b"", "the fuzzer's generator raised:\n"
                       + traceback.format_exc())
                emit(f"@fail {i}")
                continue
        with open(path, "wb") as f:
            f.write(blob)
        emit(f"@case {i} {' '.join(desc.split())[:300]}")
        problems, outcome = [], None
        t0 = time.monotonic()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                result = st.read_safetensors(path)
        except st.SafetensorsError as e:
            message = str(e)
            outcome = f"refused {refusal_kind(message).replace(' ', '~')}"
            if path not in message:
                problems.append(f"the message does not name the file: {message[:300]!r}")
            if len(message) > len(path) + MAX_MESSAGE:
                problems.append(f"a {len(message)}-character message: {message[:200]!r}...")
            try:
                validate(blob)
                problems.append(f"refused a well-formed file: {message[:300]}")
            except Malformed:
                pass
        except BaseException as e:  # noqa: B902 -- everything else is the bug being looked for
            if isinstance(e, KeyboardInterrupt):
                raise
            tb = traceback.format_exc().rstrip().splitlines()
            problems.append(f"raised {type(e).__name__}, not SafetensorsError: {str(e)[:300]}\n    "
                            + "\n    ".join(tb[-6:]))
        else:
            outcome = "read"
            try:
                problems += check_read(torch, st, result, blob, args.work)
            except Exception as e:
                problems.append(f"checking the tensors read raised {type(e).__name__}: {e}")
            del result
        elapsed = time.monotonic() - t0
        if elapsed > args.case_timeout:
            problems.append(f"took {elapsed:.1f} s (limit {args.case_timeout} s)")
        try:
            if type(st.is_safetensors(path)) is not bool:
                problems.append("is_safetensors did not return a bool")
        except Exception as e:
            problems.append(f"is_safetensors raised {type(e).__name__}: {e}")
        if problems:
            report(args, i, desc, blob, "\n  ".join(problems))
            emit(f"@fail {i}")
        else:
            emit(f"@ok {i} {outcome}")
    for extra in (path, os.path.join(args.work, "roundtrip.safetensors")):
        if os.path.exists(extra) and not args.keep:
            os.remove(extra)
    emit("@done")
    return 0


def case_path(args) -> str:
    return os.path.join(args.work, f"case seed{args.seed}.safetensors")


def report(args, i, desc, blob, what) -> None:
    os.makedirs(os.path.join(args.work, "failures"), exist_ok=True)
    saved = os.path.join(args.work, "failures", f"seed{args.seed}-iteration{i}.safetensors")
    with open(saved, "wb") as f:
        f.write(blob)
    print(f"FAIL seed {args.seed} iteration {i} ({desc[:300]}):\n  {what}\n"
          f"  rerun: {sys.executable} {os.path.abspath(__file__)} --source {args.source} --seed {args.seed} "
          f"--start {i} --iterations 1\n  file: {saved} ({len(blob)} bytes)\n{hexdump(blob)}", flush=True)


# --------------------------------------------------------------------------------------------------
# The parent: starts the worker, watches it for hangs and crashes, counts.

def supervise(args) -> int:
    deadline = time.time() + args.seconds
    stop = args.start + args.iterations
    start, counts, kinds = args.start, Counter(), Counter()
    directed_count, restarts = 0, 0
    t_begin = time.monotonic()
    while start < stop:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--source", args.source, "--work", args.work,
               "--seed", str(args.seed), "--start", str(start), "--iterations", str(stop - start),
               "--case-timeout", str(args.case_timeout), "--deadline", repr(deadline)]
        proc = subprocess.Popen(cmd + (["--keep"] if args.keep else []), stdout=subprocess.PIPE)
        fd, buf, current, desc, done, ready = proc.stdout.fileno(), b"", None, "", False, False
        case_started = time.monotonic()
        hung = False
        while True:
            limit = args.case_timeout + HARD_GRACE_S if ready else 120.0
            wait = limit - (time.monotonic() - case_started)
            readable = select.select([fd], [], [], max(wait, 0))[0] if wait > 0 else []
            if not readable:
                hung = True
                proc.kill()
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if line.startswith("@ready"):
                    ready, case_started = True, time.monotonic()
                    directed_count = int(line.split()[1])
                elif line.startswith("@case "):
                    _, number, desc = (line + " ").split(" ", 2)
                    current, case_started = int(number), time.monotonic()
                elif line.startswith("@ok "):
                    _, _, outcome, *kind = line.split()
                    counts[outcome] += 1
                    if kind:
                        kinds[kind[0].replace("~", " ")] += 1
                    current = None
                elif line.startswith("@fail "):
                    counts["failed"] += 1
                    current = None
                elif line == "@done":
                    done = True
                else:
                    print(line, flush=True)
        rc = proc.wait()
        proc.stdout.close()
        if done and not hung:
            break
        if rc == SKIP and not ready:
            return SKIP
        if current is None:  # died or hung outside a case: nothing to resume from
            print(f"FAIL: the worker {'hung' if hung else f'exited with status {rc}'} outside a case "
                  f"(after iteration {start})")
            counts["failed"] += 1
            break
        what = (f"no result after {args.case_timeout + HARD_GRACE_S:.0f} s: killed" if hung else
                f"the worker died ({'signal ' + signal.Signals(-rc).name if rc < 0 else f'exit status {rc}'})")
        blob = open(case_path(args), "rb").read() if os.path.exists(case_path(args)) else b""
        report(args, current, desc.strip(), blob, what)
        counts["failed"] += 1
        start, restarts = current + 1, restarts + 1
        if restarts > 5:
            print("FAIL: more than 5 hangs or crashes; giving up")
            break
    total = counts["read"] + counts["refused"] + counts["failed"]
    directed_run = max(0, min(directed_count, stop) - args.start) if total else 0
    directed_run = min(directed_run, total)
    print("refusals by kind: " + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    print(f"safetensors fuzz: seed {args.seed}, {total} cases ({directed_run} directed, {total - directed_run} random) "
          f"in {time.monotonic() - t_begin:.1f} s, {counts['refused']} refused cleanly, {counts['read']} read, "
          f"{counts['failed']} failures")
    if total < args.iterations and not counts["failed"]:
        print(f"note: --seconds {args.seconds} ran out after {total} of {args.iterations} cases")
    return 1 if counts["failed"] else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default=os.path.dirname(HERE), help="the repository (for models/)")
    ap.add_argument("--work", help="scratch folder (default: a temporary one, removed unless --keep)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=3000, help="cases, the directed ones included")
    ap.add_argument("--seconds", type=float, default=20.0, help="stop starting cases after this long")
    ap.add_argument("--case-timeout", type=float, default=5.0, help="seconds one case may take")
    ap.add_argument("--start", type=int, default=0, help="first iteration (to rerun one case)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch files")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.source = os.path.abspath(args.source)
    if args.worker:
        return worker(args)
    try:
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            print("skipped: torch cannot be imported")
            return SKIP
    except (ImportError, ValueError):
        pass
    temporary = args.work is None
    args.work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="safetensors_fuzz."))
    os.makedirs(args.work, exist_ok=True)
    try:
        return supervise(args)
    finally:
        failures = os.path.isdir(os.path.join(args.work, "failures"))
        if temporary and not args.keep and not failures:
            shutil.rmtree(args.work, ignore_errors=True)
        elif not args.keep:
            for name in os.listdir(args.work):
                if name.startswith("base-"):
                    os.remove(os.path.join(args.work, name))


if __name__ == "__main__":
    sys.exit(main())
