"""safetensors files with the Python standard library and torch (no `safetensors` package).

The format: an 8-byte little-endian unsigned header length N, N bytes of a UTF-8 JSON object that maps
each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data that
follows the header) plus an optional "__metadata__" object of strings, then the raw little-endian data.

    tensors, metadata = read_safetensors("model.safetensors")   # OrderedDict name -> tensor (header order)
    write_safetensors("out.safetensors", tensors, {"format": "pt"})

Every malformed file is a SafetensorsError whose message names the file and what is wrong: a header
length that does not fit the file, a header that is not a JSON object, an entry with missing or extra
fields, an unknown dtype, a shape whose size does not match its offsets (or with a dim or element count
over 2**63), offsets that overlap, leave a gap or run past the data (a truncated file), trailing bytes
after the data, and JSON nested too deeply. Names and values in the messages are shortened to 120
characters. tests/safetensors_fuzz.py holds the reader to this.
"""
from __future__ import annotations

import json
import os
import struct
import sys
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Tuple

import torch

__all__ = ["SafetensorsError", "read_safetensors", "write_safetensors", "is_safetensors", "DTYPES"]

# safetensors dtype name -> (torch dtype, bytes per element). F32/F16/BF16 are what CLIP checkpoints use;
# the integer and bool types appear in old HF checkpoints (position_ids buffers) and are read so that the
# caller can say what they are.
DTYPES: Dict[str, Tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "I16": (torch.int16, 2),
    "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1),
    "BOOL": (torch.bool, 1),
}
_NAMES = {dtype: name for name, (dtype, _) in DTYPES.items()}

# Upstream refuses headers over 100 MB; a real header is a few hundred bytes per tensor.
MAX_HEADER_BYTES = 100 * 1000 * 1000
# Dimensions and element counts must fit torch's int64 sizes (upstream's usize is 64-bit as well).
_MAX_SIZE = 2 ** 63 - 1


class SafetensorsError(ValueError):
    """A file that is not a well-formed safetensors file (the message names the file)."""


def is_safetensors(path: str) -> bool:
    """True when the file starts like a safetensors file (a plausible length, then '{')."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _no_duplicates(pairs):
    out = OrderedDict()
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _show(value, limit: int = 120) -> str:
    """repr() for an error message, shortened: a malformed header may hold megabyte-long names or shapes."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 20]}...{text[-12:]} ({len(text)} characters)"


def _elements(shape) -> Optional[int]:
    """The number of elements of a shape of non-negative dims, None when over _MAX_SIZE. Stops early: a
    long list of big dims would otherwise be a multiplication of megabit integers (minutes of CPU)."""
    if 0 in shape:
        return 0
    count = 1
    for d in shape:
        count *= d
        if count > _MAX_SIZE:
            return None
    return count


def _parse_header(path: str, raw: bytes) -> Tuple["OrderedDict[str, dict]", Optional[Dict[str, str]]]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SafetensorsError(f"{path}: malformed safetensors header: not UTF-8 ({e})") from e
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise SafetensorsError(f"{path}: malformed safetensors header: not JSON ({e})") from e
    except RecursionError as e:  # "[[[[..." : the decoder recurses once per level
        raise SafetensorsError(f"{path}: malformed safetensors header: JSON nested too deeply") from e
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: malformed safetensors header: a JSON {type(header).__name__}, not an object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in metadata.items()):
            raise SafetensorsError(f"{path}: malformed safetensors header: __metadata__ must map strings to strings")
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise SafetensorsError(f"{path}: malformed safetensors header: entry {_show(name)} is not an object")
        fields = set(entry)
        if fields != {"dtype", "shape", "data_offsets"}:
            missing = sorted({"dtype", "shape", "data_offsets"} - fields)
            extra = sorted(fields - {"dtype", "shape", "data_offsets"})
            raise SafetensorsError(f"{path}: malformed safetensors header: entry {_show(name)} "
                                   + (f"lacks {', '.join(missing)}" if missing else "")
                                   + ("; " if missing and extra else "")
                                   + (f"has unknown field(s) {_show(', '.join(extra))}" if extra else ""))
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise SafetensorsError(f"{path}: tensor {_show(name)} has dtype {_show(dtype)}, which this reader does not "
                                   f"support (supported: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(type(d) is int and 0 <= d <= _MAX_SIZE for d in shape):
            raise SafetensorsError(f"{path}: malformed safetensors header: tensor {_show(name)} has shape "
                                   f"{_show(shape)}, not a list of integers in [0, 2**63)")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int and o >= 0 for o in offsets)
                or offsets[0] > offsets[1]):
            raise SafetensorsError(f"{path}: malformed safetensors header: tensor {_show(name)} has data_offsets "
                                   f"{_show(offsets)}, not [begin, end] with 0 <= begin <= end")
        elements = _elements(shape)
        if elements is None:
            raise SafetensorsError(f"{path}: malformed safetensors header: tensor {_show(name)} has shape "
                                   f"{_show(shape)}, more than 2**63 elements")
        expected = elements * DTYPES[dtype][1]
        if offsets[1] - offsets[0] != expected:
            raise SafetensorsError(f"{path}: malformed safetensors header: tensor {_show(name)} "
                                   f"({dtype} {_show(shape)}) needs {expected} bytes but its data_offsets "
                                   f"{_show(offsets)} span {_show(offsets[1] - offsets[0])}")
    return header, (dict(metadata) if metadata is not None else None)


def read_safetensors(path: str) -> Tuple["OrderedDict[str, torch.Tensor]", Optional[Dict[str, str]]]:
    """(tensors in header order, __metadata__ or None). Tensors own their memory (CPU, contiguous)."""
    if sys.byteorder != "little":
        raise SafetensorsError(f"{path}: reading safetensors on a big-endian machine is not implemented")
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise SafetensorsError(f"{path}: cannot read: {e}") from e
    if len(blob) < 8:
        raise SafetensorsError(f"{path}: truncated safetensors file: {len(blob)} bytes, shorter than the 8-byte "
                               "header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER_BYTES:
        raise SafetensorsError(f"{path}: malformed safetensors header: header length {n} is over the "
                               f"{MAX_HEADER_BYTES}-byte limit (not a safetensors file?)")
    if n > len(blob) - 8:
        raise SafetensorsError(f"{path}: malformed or truncated safetensors file: the header length says {n} bytes, "
                               f"but only {len(blob) - 8} follow it")
    if n < 2:
        raise SafetensorsError(f"{path}: malformed safetensors header: header length {n} is too small for a JSON object")
    header, metadata = _parse_header(path, blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    # The entries must lie inside the data and tile it exactly, as upstream requires: sorted by offset,
    # each begins where the previous one ended, and the last ends at the end of the file.
    spans = sorted(((e["data_offsets"][0], e["data_offsets"][1], name) for name, e in header.items()),
                   key=lambda s: (s[0], s[1]))
    for begin, end, name in spans:
        if end > len(data):
            raise SafetensorsError(f"{path}: truncated file or out-of-range data_offsets: tensor {_show(name)} "
                                   f"needs data bytes [{begin}, {end}) but the file holds only {len(data)} bytes of data")
    position, previous = 0, None
    for begin, end, name in spans:
        if begin < position:
            raise SafetensorsError(f"{path}: malformed safetensors header: the data of tensors {_show(previous)} and "
                                   f"{_show(name)} overlap (offsets {begin} < {position})")
        if begin > position:
            raise SafetensorsError(f"{path}: malformed safetensors header: {begin - position} bytes of data before "
                                   f"tensor {_show(name)} (offset {position}) belong to no tensor")
        position, previous = end, name
    if position < len(data):
        raise SafetensorsError(f"{path}: malformed safetensors file: {len(data) - position} bytes after the last tensor")
    tensors: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, entry in header.items():
        dtype, size = DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        if end == begin:
            tensors[name] = torch.empty(entry["shape"], dtype=dtype)
            continue
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype)
        tensors[name] = flat.reshape(entry["shape"])
    return tensors, metadata


def write_safetensors(path: str, tensors: Mapping[str, torch.Tensor], metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes tensors (in the given order, packed without gaps) and optional string metadata."""
    header: Dict[str, object] = OrderedDict()
    if metadata:
        header["__metadata__"] = dict(metadata)
    chunks, offset = [], 0
    for name, t in tensors.items():
        if t.dtype not in _NAMES:
            raise SafetensorsError(f"{path}: cannot write tensor {name!r} of dtype {t.dtype}")
        t = t.detach().cpu().contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # upstream pads the header to a multiple of 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)
