#!/usr/bin/python3
"""ONNX exports of a CLIP or SigLIP checkpoint for the ONNX Runtime peer benchmark (benchmarks/peers/run.sh).

    /usr/bin/python3 benchmarks/peers/export_onnx.py --checkpoint W/random.pt --activation quick_gelu --out W/onnx
    /usr/bin/python3 benchmarks/peers/export_onnx.py --checkpoint W/random-siglip --out W/onnx   # a model folder

writes, from the same weights that models/export_clip.py exports for zsclip (models/clip_model.py's
CLIP, loaded from the same state dict; a folder through the exporter's own layouts.load_checkpoint):

    image_fp32.onnx   pixels [B, 3, S, S] float32 -> projected image features [B, embed_dim] (SigLIP: the
                      MAP head's output, no projection)
    text_fp32.onnx    ids [B, L] int64 (B and L dynamic, L <= context_length) -> projected text features
                      [B, embed_dim], pooled at each row's argmax (CLIP's end token) under the causal mask;
                      SigLIP (no causal mask, pooled at the last position, projection with bias): ids
                      [B, context_length] (the tokenizer's padded rows; only B dynamic)
    image_int8.onnx   image_fp32.onnx with every linear layer of the transformer blocks (4 per block; and
    text_int8.onnx    the MAP head's kv projection, over every token) rewritten to dynamic int8 (see
                      quantize_linear_layers; the MAP head's other layers see one row per image, stay float)
    export.json       what was written: shapes, opset, the number of rewritten layers

torch.onnx.export (opset 17) traces the towers as trained (not clip_model.fold_for_inference's folded
form: ONNX Runtime's graph optimiser does its own fusions). Needs Debian's python3-onnx (1.12) for the
int8 rewrite; onnxruntime's Python package is not used.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import nn

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "models"))

from layouts import build_model, load_checkpoint  # noqa: E402
from clip_model import CLIP, build_from_state_dict  # noqa: E402


class ExportError(RuntimeError):
    pass


class ImageFeatures(nn.Module):
    """pixels -> projected image features: CLIP.encode_image (VisionTower, then @ image_projection)."""

    def __init__(self, model: CLIP):
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)


class TextFeatures(nn.Module):
    """ids [B, L] -> projected text features: TextTower.forward's arithmetic for causal, argmax-pooled
    towers (OpenAI's) and for bidirectional towers pooled at the last position (SigLIP's, given padded
    rows of context_length ids), without its data-dependent input checks (min/max id, which tracing
    would freeze into constants), then @ text_projection (+ its bias)."""

    def __init__(self, model: CLIP):
        super().__init__()
        text = model.text
        self.siglip = not text.causal_mask and text.pool == "last"
        if not self.siglip and (not text.causal_mask or text.pool != "argmax"):
            raise ExportError(f"text tower with causal_mask={text.causal_mask}, pool={text.pool!r}: only OpenAI's "
                              "causal argmax-pooled tower and SigLIP's bidirectional last-pooled one are exported")
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        text = self.model.text
        length = ids.size(1)
        x = text.token_embedding(ids) + text.positional_embedding[:length]
        x = text.transformer(x, None if self.siglip else text.attn_mask[:length, :length])
        x = text.ln_final(x)
        if self.siglip:
            pooled = x[:, -1]
        else:
            pooled = x[torch.arange(x.size(0)), ids.argmax(dim=-1)]
        return self.model.project_text(pooled)


def export_towers(model: CLIP, out: str, opset: int) -> Dict[str, str]:
    size = model.visual.image_resolution
    ctx = model.context_length
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    text = TextFeatures(model).eval()
    if text.siglip:  # padded rows of context_length ids: only the batch is dynamic
        ids = torch.randint(0, model.text.vocab_size, (2, ctx), generator=torch.Generator().manual_seed(0))
        text_axes = {0: "batch"}
    else:
        ids = torch.zeros(2, ctx, dtype=torch.long)
        ids[:, 0] = model.text.vocab_size - 2  # <|startoftext|>
        ids[0, 1:4] = torch.tensor([320, 1125, 539])
        ids[0, 4] = model.text.vocab_size - 1  # <|endoftext|>
        ids[1, 1] = model.text.vocab_size - 1
        ids = ids[:, :9]  # a traced length below context_length: L is a dynamic axis
        text_axes = {0: "batch", 1: "length"}
    paths = {"image": os.path.join(out, "image_fp32.onnx"), "text": os.path.join(out, "text_fp32.onnx")}
    jobs = [("image", ImageFeatures(model).eval(), pixels, "pixels", {0: "batch"}),
            ("text", text, ids, "ids", text_axes)]
    for tower, module, example, name, axes in jobs:
        try:
            with torch.no_grad():
                torch.onnx.export(module, (example,), paths[tower], input_names=[name], output_names=["features"],
                                  dynamic_axes={name: axes, "features": {0: "batch"}}, opset_version=opset,
                                  do_constant_folding=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the step named
            raise ExportError(f"torch.onnx.export of the {tower} tower to {paths[tower]} failed: {e}") from e
        print(f"export_onnx: {tower} tower -> {paths[tower]} ({os.path.getsize(paths[tower]) / 2**20:.0f} MiB)")
    return paths


# ---- dynamic int8 rewrite ---------------------------------------------------------------------------

def _symmetric_per_column(w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """int8 weights and float scales of a [K, N] weight, one scale per output column n: scale[n] =
    max_k |w[k, n]| / 127 (1 for an all-zero column), q = round(w / scale) in [-127, 127], zero point 0."""
    amax = np.abs(w).max(axis=0)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return q, scale


def quantize_linear_layers(graph, name_filters: Tuple[str, ...]) -> List[str]:
    """Rewrites, in place, every MatMul whose node name contains one of `name_filters` and whose second input is
    a 2-D float initializer (a linear layer's transposed weight; its bias is the Add that follows, kept):

        y = MatMul(x, W)   ->   xq, xs, xz = DynamicQuantizeLinear(x)          (uint8, per tensor)
                                y32 = MatMulInteger(xq, Wq, xz, Wz)              (Wq int8 [K, N], Wz = 0 [N])
                                y = Cast<float>(y32) * (xs * Ws)                 (Ws [N]: per output channel)

    the graph dynamic quantisation makes. Returns the rewritten nodes' names."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}
    consumers: Dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    new_nodes = []
    done: List[str] = []
    for node in graph.node:
        w_name = node.input[1] if node.op_type == "MatMul" and len(node.input) == 2 else ""
        init = inits.get(w_name)
        if (init is None or not any(f in node.name for f in name_filters) or len(init.dims) != 2
                or init.data_type != TensorProto.FLOAT):
            new_nodes.append(node)
            continue
        w = numpy_helper.to_array(init)
        q, scale = _symmetric_per_column(w)
        base = node.name.strip("/").replace("/", "_") or f"matmul{len(done)}"
        x, y = node.input[0], node.output[0]
        names = {k: f"{base}_{k}" for k in ("xq", "xs", "xz", "wq", "wz", "ws", "y32", "yf", "s")}
        graph.initializer.extend([
            numpy_helper.from_array(q, names["wq"]),
            numpy_helper.from_array(np.zeros(q.shape[1], dtype=np.int8), names["wz"]),
            numpy_helper.from_array(scale, names["ws"]),
        ])
        new_nodes += [
            helper.make_node("DynamicQuantizeLinear", [x], [names["xq"], names["xs"], names["xz"]], name=base + "_dql"),
            helper.make_node("MatMulInteger", [names["xq"], names["wq"], names["xz"], names["wz"]], [names["y32"]],
                             name=base + "_mmi"),
            helper.make_node("Cast", [names["y32"]], [names["yf"]], name=base + "_cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", [names["xs"], names["ws"]], [names["s"]], name=base + "_scale"),
            helper.make_node("Mul", [names["yf"], names["s"]], [y], name=base + "_mul"),
        ]
        done.append(node.name)
        if consumers.get(w_name, 0) == 1:  # the float weight has no other user: drop it
            graph.initializer.remove(init)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return done


def write_int8(fp32_path: str, int8_path: str, expected: int) -> int:
    import onnx

    model = onnx.load(fp32_path)
    done = quantize_linear_layers(model.graph, ("resblocks", "attn_pool/kv/"))
    if len(done) != expected:
        raise ExportError(f"int8 rewrite of {fp32_path}: found {len(done)} linear layers in the transformer blocks "
                          f"and MAP head (MatMul nodes named */resblocks.*/* or */attn_pool/kv/* with a constant 2-D "
                          f"weight), expected {expected}: {done[:6]}")
    onnx.checker.check_model(model)
    onnx.save(model, int8_path)
    print(f"export_onnx: int8 rewrite of {len(done)} linear layers -> {int8_path} "
          f"({os.path.getsize(int8_path) / 2**20:.0f} MiB)")
    return len(done)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="state dict (.pt) with OpenAI's key names, or a model "
                   "folder models/export_clip.py reads (e.g. open_clip's SigLIP hub layout)")
    p.add_argument("--activation", choices=["quick_gelu", "gelu"], default="quick_gelu",
                   help="of a state dict (a folder's config gives its own)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--opset", type=int, default=17)
    args = p.parse_args(argv)
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ExportError("python3-onnx is missing (apt-get install python3-onnx; run.sh installs it)")
    if not os.path.exists(args.checkpoint):
        raise ExportError(f"checkpoint {args.checkpoint} not found")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    if os.path.isdir(args.checkpoint):
        ckpt = load_checkpoint(args.checkpoint)
        model = build_model(args.checkpoint, ckpt.state_dict, ckpt.options, ckpt.what)
        args.activation = "from the folder's config"
    else:
        model = build_from_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=True),
                                      activation=args.activation)
    model.eval()
    paths = export_towers(model, args.out, args.opset)
    info = {"checkpoint": os.path.abspath(args.checkpoint), "activation": args.activation, "opset": args.opset,
            "torch": torch.__version__, "image_size": model.visual.image_resolution,
            "context_length": model.context_length, "embed_dim": model.embed_dim, "files": {}}
    # SigLIP's MAP head: kv (its q acts on the constant probe; out_proj and the MLP on one row an image: Gemm nodes)
    map_head = 1 if hasattr(model.visual, "attn_pool") else 0
    for tower, layers, extra in (("image", model.visual.transformer.layers, map_head),
                                 ("text", model.text.transformer.layers, 0)):
        int8_path = os.path.join(args.out, f"{tower}_int8.onnx")
        n = write_int8(paths[tower], int8_path, 4 * layers + extra)
        info["files"][f"{tower}_fp32"] = os.path.basename(paths[tower])
        info["files"][f"{tower}_int8"] = os.path.basename(int8_path)
        info[f"{tower}_int8_layers"] = n
    with open(os.path.join(args.out, "export.json"), "w") as f:
        json.dump(info, f, indent=1)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ExportError as e:
        print(f"export_onnx: error: {e}", file=sys.stderr)
        sys.exit(1)
