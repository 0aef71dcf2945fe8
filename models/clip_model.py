"""CLIP (ViT image tower) reference architecture for zsclip.

Written from the published architecture description of OpenAI's CLIP (ViT variant). The parameters
load from, and `state_dict()` writes, OpenAI's key names (`visual.conv1.weight`,
`visual.transformer.resblocks.0.attn.in_proj_weight`, `token_embedding.weight`, `text_projection`,
`logit_scale`, ...), so an OpenAI state dict loads with strict=True.

Beyond OpenAI's architecture, the knobs of open_clip's native ViT/text towers and of HuggingFace's
CLIPModel are constructor options (defaults: OpenAI's model): `activation` ("quick_gelu" | "gelu",
exact erf GELU), per-tower `*_heads`, `*_mlp_width` and `*_layer_norm_eps`; vision `vision_ln_pre`,
`vision_pool` ("tok" | "avg": mean of the patch tokens), `vision_final_ln_after_pool`; text
`text_causal_mask`, `text_pool` ("argmax" | "eos" | "first" | "last"), `text_eos_id`,
`text_proj_bias` (a `text_projection_bias` [embed_dim] parameter); `logit_bias` (a `logit_bias`
scalar parameter, SigLIP-style sigmoid scoring). Options that add parameters add state-dict keys
(`text_projection_bias`, `logit_bias`); `vision_ln_pre=False` removes `visual.ln_pre.*`.

Internally the model is split so that each encoder can be exported without its projection:

    model = build_from_state_dict(torch.load("state_dict.pt"))
    pooled_image = model.visual(pixels)           # VisionTower: [N, vision_width]  (ln_post(class token))
    pooled_text = model.text(ids)                 # TextTower:   [N, text_width]    (ln_final at argmax(ids))
    image_features = model.project_image(pooled_image)   # @ image_projection (OpenAI's visual.proj)
    text_features = model.project_text(pooled_text)      # @ text_projection
    logits_per_image, logits_per_text = model(pixels, ids)

Every module here is TorchScript-scriptable (torch.jit.script). Attention projections are nn.Linear
modules (the packed q/k/v projection is one Linear of 3*width outputs), so
torch.ao.quantization.quantize_dynamic({nn.Linear}) quantises them too.

Internal names differ from OpenAI's in three places; load/save hooks translate:
    visual.image_projection <-> visual.proj  (kept on CLIP as `image_projection`, see below)
    text.<x>               <-> <x>           (token_embedding, positional_embedding, transformer, ln_final)
    attn.in_proj.weight    <-> attn.in_proj_weight   (and .bias)
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LayerNorm",
    "QuickGELU",
    "ACTIVATIONS",
    "make_activation",
    "Attention",
    "ResidualAttentionBlock",
    "Transformer",
    "VisionTower",
    "MAPHead",
    "SiglipVisionTower",
    "TextTower",
    "Projection",
    "CLIP",
    "build_from_state_dict",
    "infer_shape",
    "clean_state_dict",
    "CheckpointError",
    "NON_PARAMETER_KEYS",
]

# Entries of OpenAI's TorchScript archives that are not parameters; build_model drops them too.
NON_PARAMETER_KEYS = ("input_resolution", "context_length", "vocab_size")

# Text tower keys that OpenAI keeps at the top level of the model.
_TEXT_TOP_LEVEL = ("token_embedding", "positional_embedding", "transformer", "ln_final")


class CheckpointError(ValueError):
    """A state dict that is not a ViT CLIP (wrong keys, ResNet tower, inconsistent shapes)."""


def _rename_prefixes(sd: Dict[str, torch.Tensor], prefix: str, pairs: List[Tuple[str, str]]) -> None:
    """Renames keys `prefix+src...` to `prefix+dst...` in place for each (src, dst) pair."""
    for key in list(sd.keys()):
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        for src, dst in pairs:
            if rest == src or rest.startswith(src + "."):
                sd[prefix + dst + rest[len(src):]] = sd.pop(key)
                break


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input/weight dtype (as OpenAI's fp16 models do)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        orig_dtype = x.dtype
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        y = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return y.to(orig_dtype)


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the GELU approximation CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


ACTIVATIONS = ("quick_gelu", "gelu", "gelu_tanh")


def make_activation(name: str) -> nn.Module:
    """QuickGELU (OpenAI's CLIP, open_clip `quick_gelu: true`), exact GELU (nn.GELU, erf-based) or the
    tanh approximation of GELU (nn.GELU(approximate="tanh"): timm's gelu_tanh, open_clip's
    act_kwargs {"approximate": "tanh"}, HF's gelu_pytorch_tanh)."""
    if name == "quick_gelu":
        return QuickGELU()
    if name == "gelu":
        return nn.GELU()
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    raise ValueError(f"unknown activation {name!r} (expected one of {', '.join(ACTIVATIONS)})")


class Attention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter layout.

    `in_proj` is one Linear(width, 3*width) holding q, k, v stacked (OpenAI's in_proj_weight /
    in_proj_bias); being a real nn.Linear lets dynamic quantisation reach it. Inputs are batch-first.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        if heads <= 0 or width % heads != 0:
            raise ValueError(f"attention width {width} is not divisible by heads {heads}")
        self.width = width
        self.heads = heads
        self.head_dim = width // heads
        self.scale = float(self.head_dim) ** -0.5
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)
        # True once fold_for_inference has multiplied the q rows of in_proj by `scale`.
        self.q_prescaled = False
        self._register_load_state_dict_pre_hook(Attention._load_hook)
        self._register_state_dict_hook(Attention._save_hook)

    @staticmethod
    def _load_hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        _rename_prefixes(state_dict, prefix, [("in_proj_weight", "in_proj.weight"), ("in_proj_bias", "in_proj.bias")])

    @staticmethod
    def _save_hook(module, state_dict, prefix, local_metadata):
        _rename_prefixes(state_dict, prefix, [("in_proj.weight", "in_proj_weight"), ("in_proj.bias", "in_proj_bias")])

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        n, length, width = x.shape
        # One copy puts q, k, v head-major: [3, n * heads, length, head_dim]; bmm then reads k transposed
        # through its strides, and only the output needs one more copy back to [n, length, width].
        qkv = self.in_proj(x).reshape(n, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        qkv = qkv.reshape(3, n * self.heads, length, self.head_dim)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if not self.q_prescaled:
            q = q * self.scale
        scores = torch.bmm(q, k.transpose(1, 2))
        if attn_mask is not None:
            scores = scores + attn_mask.to(scores.dtype)
        weights = torch.softmax(scores, dim=-1)
        out = torch.bmm(weights, v).reshape(n, self.heads, length, self.head_dim).transpose(1, 2)
        return self.out_proj(out.reshape(n, length, width))

    def forward_rows(self, x: torch.Tensor, index: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """forward's output at one position per sequence, x [N, L, width] and index [N] -> [N, width]: keys and
        values from every position, the query, the scores and out_proj for the indexed row only."""
        n, length, width = x.shape
        qkv = self.in_proj(x).reshape(n, length, 3, self.heads, self.head_dim)
        rows = torch.arange(n, device=x.device)
        q = qkv[rows, index, 0].unsqueeze(2)  # [n, heads, 1, head_dim]
        k = qkv[:, :, 1].transpose(1, 2)  # [n, heads, length, head_dim]
        v = qkv[:, :, 2].transpose(1, 2)
        if not self.q_prescaled:
            q = q * self.scale
        scores = torch.matmul(q, k.transpose(2, 3))  # [n, heads, 1, length]
        if attn_mask is not None:
            scores = scores + attn_mask[index].to(scores.dtype).reshape(n, 1, 1, length)
        weights = torch.softmax(scores, dim=-1)
        return self.out_proj(torch.matmul(weights, v).reshape(n, width))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int, mlp_width: Optional[int] = None, activation: str = "quick_gelu",
                 eps: float = 1e-5):
        super().__init__()
        mlp_width = 4 * width if mlp_width is None else mlp_width
        self.ln_1 = LayerNorm(width, eps=eps)
        self.attn = Attention(width, heads)
        self.ln_2 = LayerNorm(width, eps=eps)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, mlp_width)), ("gelu", make_activation(activation)),
                         ("c_proj", nn.Linear(mlp_width, width))])
        )

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask)
        x = x + self.mlp(self.ln_2(x))
        return x

    def forward_rows(self, x: torch.Tensor, index: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """forward(x)[rows, index] without computing the other rows' outputs: x [N, L, width] -> [N, width]."""
        rows = torch.arange(x.size(0), device=x.device)
        y = x[rows, index] + self.attn.forward_rows(self.ln_1(x), index, attn_mask)
        return y + self.mlp(self.ln_2(y))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_width: Optional[int] = None,
                 activation: str = "quick_gelu", eps: float = 1e-5):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads, mlp_width, activation, eps)
                                        for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x

    def forward_rows(self, x: torch.Tensor, index: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """forward(x)[rows, index], x [N, L, width], index [N] -> [N, width]. Only the pooled row of each
        sequence is read after the last block, so that block computes the attention, out_proj and MLP for
        that row alone (keys and values still for every row): a 12-block tower skips about 6 % of its
        linear layers' work. The same arithmetic per row (to float rounding: GEMMs of other shapes)."""
        last = len(self.resblocks) - 1
        if last < 0:
            return x[torch.arange(x.size(0), device=x.device), index]
        out = x
        for i, block in enumerate(self.resblocks):
            if i < last:
                x = block(x, attn_mask)
            else:
                out = block.forward_rows(x, index, attn_mask)
        return out


def check_pixels(pixels: torch.Tensor, size: int) -> None:
    """Refuses image-encoder input that is not float [N, 3, size, size] (a TorchScript-compiled check)."""
    if pixels.dim() != 4 or pixels.size(1) != 3 or pixels.size(2) != size or pixels.size(3) != size:
        raise RuntimeError(
            "zsclip image encoder: expected pixels of shape [N, 3, " + str(size) + ", " + str(size) + "], got "
            + str(pixels.shape)
        )
    if not pixels.is_floating_point():
        raise RuntimeError("zsclip image encoder: pixels must be a floating-point tensor")


class VisionTower(nn.Module):
    """ViT image encoder without its projection: pixels [N, 3, S, S] -> pooled [N, width].

    pool "tok": ln_post(class token) (OpenAI); "avg": the mean of the patch tokens (class token excluded),
    with ln_post applied to every token before the mean, or to the mean when final_ln_after_pool
    (open_clip's order). ln_pre=False leaves out the LayerNorm before the transformer (open_clip
    `no_ln_pre`). Pixels of any floating dtype are accepted and cast to the weights' dtype; the output
    is float32.
    """

    def __init__(self, image_resolution: int, patch_size: int, width: int, layers: int, heads: int,
                 mlp_width: Optional[int] = None, activation: str = "quick_gelu", ln_pre: bool = True,
                 pool: str = "tok", final_ln_after_pool: bool = False, eps: float = 1e-5):
        super().__init__()
        if image_resolution % patch_size != 0:
            raise ValueError(f"image_resolution {image_resolution} is not a multiple of patch_size {patch_size}")
        if pool not in ("tok", "avg"):
            raise ValueError(f"vision pool {pool!r} is not one of tok, avg")
        self.image_resolution = image_resolution
        self.patch_size = patch_size
        self.width = width
        self.grid = image_resolution // patch_size
        self.pool = pool
        self.final_ln_after_pool = final_ln_after_pool
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid * self.grid + 1, width))
        self.ln_pre = LayerNorm(width, eps=eps) if ln_pre else nn.Identity()
        self.transformer = Transformer(width, layers, heads, mlp_width, activation, eps)
        self.ln_post = LayerNorm(width, eps=eps)
        # True once fold_for_inference chose the patch embedding as a GEMM over unfolded patches.
        self.patch_gemm = False
        # True once fold_for_inference made the last block compute the pooled row only (pool "tok").
        self.rows_only = False

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        check_pixels(pixels, self.image_resolution)
        dtype = self.conv1.weight.dtype
        if self.patch_gemm:
            # stride == kernel: the convolution is a product of the weights with non-overlapping patches
            n, g, p = pixels.size(0), self.grid, self.patch_size
            patches = pixels.to(dtype).reshape(n, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n, g * g, 3 * p * p)
            x = torch.matmul(patches, self.conv1.weight.reshape(self.width, 3 * p * p).t())  # [N, grid*grid, width]
        else:
            x = self.conv1(pixels.to(dtype))  # [N, width, grid, grid]
            x = x.flatten(2).permute(0, 2, 1)  # [N, grid*grid, width]; flatten keeps N == 0 valid
        cls = self.class_embedding.to(dtype).reshape(1, 1, self.width).expand(x.size(0), 1, self.width)
        x = torch.cat([cls, x], dim=1)
        x = x + self.positional_embedding.to(dtype)
        x = self.ln_pre(x)
        if self.pool == "tok" and self.rows_only:
            index = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
            return self.ln_post(self.transformer.forward_rows(x, index)).float()
        x = self.transformer(x)
        if self.pool == "avg":
            if self.final_ln_after_pool:
                x = self.ln_post(x[:, 1:, :].mean(dim=1))
            else:
                x = self.ln_post(x[:, 1:, :]).mean(dim=1)
        else:
            x = self.ln_post(x[:, 0, :])  # per-token LayerNorm: the same before or after taking the token
        return x.float()


class MAPHead(nn.Module):
    """Multihead attention pooling (timm's AttentionPoolLatent with one latent, HF's
    SiglipMultiheadAttentionPoolingHead): tokens [N, L, width] -> [N, width].

    A learned probe `latent` [1, 1, width] is the only query: q = q(latent), k and v = kv(tokens) (rows
    [0, width) k, [width, 2 width) v), softmax(q k^T / sqrt(head_dim)) v over the L tokens, `out_proj`;
    then x + mlp(ln(x)) with the tower's activation. Every projection is an nn.Linear (F.linear in the
    graph), so zsclip's linear-layer pass and dynamic quantisation reach them as they reach the blocks'.
    """

    def __init__(self, width: int, heads: int, mlp_width: int, activation: str, eps: float):
        super().__init__()
        if heads <= 0 or width % heads != 0:
            raise ValueError(f"attention pooling width {width} is not divisible by heads {heads}")
        self.width = width
        self.heads = heads
        self.head_dim = width // heads
        self.scale = float(self.head_dim) ** -0.5
        self.latent = nn.Parameter(torch.zeros(1, 1, width))
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, width)
        self.ln = LayerNorm(width, eps=eps)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, mlp_width)), ("gelu", make_activation(activation)),
                         ("c_proj", nn.Linear(mlp_width, width))])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        # The query does not depend on the input: [heads, 1, head_dim], shared by every image.
        q = (self.q(self.latent.to(x.dtype)) * self.scale).reshape(self.heads, 1, self.head_dim)
        q = q.unsqueeze(0).expand(n, self.heads, 1, self.head_dim).reshape(n * self.heads, 1, self.head_dim)
        kv = self.kv(x).reshape(n, length, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        kv = kv.reshape(2, n * self.heads, length, self.head_dim)
        k, v = kv[0], kv[1]
        weights = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)  # [N * heads, 1, L]
        out = self.out_proj(torch.bmm(weights, v).reshape(n, width))  # heads concatenated, as timm's
        return out + self.mlp(self.ln(out))


class SiglipVisionTower(nn.Module):
    """timm's VisionTransformer as SigLIP uses it (class_token False, global_pool "map", no pre-norm) and
    HF's SiglipVisionTransformer: pixels [N, 3, S, S] -> MAP output [N, width] (the image feature; the
    model has no image projection).

    The patch embedding is a convolution with bias, kernel = stride = patch_size, over the top-left
    grid x patch_size pixels (grid = S // patch_size: as timm's PatchEmbed, any remainder rows and
    columns are not read); positional_embedding has grid^2 rows (no class token); pre-norm blocks with
    LayerNorm eps (timm and HF: 1e-6); the final LayerNorm `ln_post` over every token; then MAPHead,
    whose MLP has the blocks' width and activation. Output float32.
    """

    def __init__(self, image_resolution: int, patch_size: int, width: int, layers: int, heads: int,
                 mlp_width: Optional[int] = None, activation: str = "gelu", eps: float = 1e-6):
        super().__init__()
        if patch_size <= 0 or image_resolution < patch_size:
            raise ValueError(f"image_resolution {image_resolution} is smaller than patch_size {patch_size}")
        mlp_width = 4 * width if mlp_width is None else mlp_width
        self.image_resolution = image_resolution
        self.patch_size = patch_size
        self.width = width
        self.grid = image_resolution // patch_size
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=True)
        self.positional_embedding = nn.Parameter(torch.zeros(self.grid * self.grid, width))
        self.transformer = Transformer(width, layers, heads, mlp_width, activation, eps)
        self.ln_post = LayerNorm(width, eps=eps)
        self.attn_pool = MAPHead(width, heads, mlp_width, activation, eps)
        # True once fold_for_inference chose the patch embedding as a GEMM over unfolded patches.
        self.patch_gemm = False

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        check_pixels(pixels, self.image_resolution)
        dtype = self.conv1.weight.dtype
        n, g, p = pixels.size(0), self.grid, self.patch_size
        if self.patch_gemm:
            # stride == kernel: a product of the weights with the non-overlapping patches of the covered area
            used = pixels.to(dtype)[:, :, : g * p, : g * p]
            patches = used.reshape(n, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n, g * g, 3 * p * p)
            bias = self.conv1.bias
            if bias is None:
                raise RuntimeError("zsclip image encoder: the patch embedding has no bias")
            x = torch.matmul(patches, self.conv1.weight.reshape(self.width, 3 * p * p).t()) + bias
        else:
            x = self.conv1(pixels.to(dtype)).flatten(2).permute(0, 2, 1)  # [N, grid*grid, width]
        x = x + self.positional_embedding.to(dtype)
        x = self.transformer(x)
        x = self.ln_post(x)
        return self.attn_pool(x).float()


class TextTower(nn.Module):
    """Text transformer without its projection: ids [N, L] -> ln_final output at the pooled position [N, width].

    pool "argmax": the first occurrence of the largest id in each row (<|endoftext|> for tokenizer
    output; OpenAI); "eos": the first occurrence of eos_id (position 0 when there is none; HF and
    open_clip); "first": position 0; "last": position context_length - 1. causal_mask=False attends
    over every position (open_clip `no_causal_mask`). L may be shorter than context_length: with a
    causal mask and pool argmax / eos / first the pooled token does not depend on later padding;
    otherwise (bidirectional, or "last") the ids are padded with pad_id (CLIP: 0; SigLIP's tokenizers:
    their pad token) to context_length first, as the tokenizer would, so the result never depends on L.
    The output is float32.
    """

    def __init__(self, context_length: int, vocab_size: int, width: int, layers: int, heads: int,
                 mlp_width: Optional[int] = None, activation: str = "quick_gelu", causal_mask: bool = True,
                 pool: str = "argmax", eos_id: int = -1, eps: float = 1e-5, pad_id: int = 0):
        super().__init__()
        if pool not in ("argmax", "eos", "first", "last"):
            raise ValueError(f"text pool {pool!r} is not one of argmax, eos, first, last")
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.width = width
        self.causal_mask = causal_mask
        self.pool = pool
        self.eos_id = vocab_size - 1 if eos_id < 0 else eos_id
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"text pad_id {pad_id} is outside the vocabulary (0..{vocab_size - 1})")
        self.pad_id = pad_id
        # Pad to context_length when the pooled output would otherwise depend on the input length.
        self.pad_to_context = (not causal_mask) or pool == "last"
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_width, activation, eps)
        self.ln_final = LayerNorm(width, eps=eps)
        mask = torch.full((context_length, context_length), float("-inf")).triu(1)
        self.register_buffer("attn_mask", mask, persistent=False)
        # True once fold_for_inference made the last block compute the pooled row only.
        self.rows_only = False

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise RuntimeError("zsclip text encoder: expected token ids of shape [N, L], got " + str(ids.shape))
        if ids.dtype != torch.int64 and ids.dtype != torch.int32:
            raise RuntimeError("zsclip text encoder: token ids must be int64 (or int32)")
        length = ids.size(1)
        if length < 1 or length > self.context_length:
            raise RuntimeError(
                "zsclip text encoder: sequence length " + str(length) + " is outside [1, "
                + str(self.context_length) + "]"
            )
        if ids.numel() > 0:
            lo = int(ids.min().item())
            hi = int(ids.max().item())
            if lo < 0 or hi >= self.vocab_size:
                raise RuntimeError(
                    "zsclip text encoder: token id out of range [0, " + str(self.vocab_size) + "): min "
                    + str(lo) + ", max " + str(hi)
                )
        ids = ids.long()
        if self.pad_to_context and length < self.context_length:
            pad = torch.full([ids.size(0), self.context_length - length], self.pad_id, dtype=ids.dtype,
                             device=ids.device)
            ids = torch.cat([ids, pad], dim=1)
            length = self.context_length
        dtype = self.token_embedding.weight.dtype
        x = self.token_embedding(ids) + self.positional_embedding[:length].to(dtype)
        mask: Optional[torch.Tensor] = None
        if self.causal_mask:
            mask = self.attn_mask[:length, :length].to(dtype)
        # The pooled position of each row.
        if self.pool == "first":
            index = torch.zeros(ids.size(0), dtype=torch.long, device=ids.device)
        elif self.pool == "last":
            index = torch.full([ids.size(0)], length - 1, dtype=torch.long, device=ids.device)
        elif self.pool == "eos":
            index = (ids == self.eos_id).int().argmax(dim=-1)
        else:
            index = ids.argmax(dim=-1)
        if self.rows_only:
            return self.ln_final(self.transformer.forward_rows(x, index, mask)).float()
        x = self.ln_final(self.transformer(x, mask))
        return x[torch.arange(x.size(0), device=x.device), index].float()


class Projection(nn.Module):
    """The two projections and the logit scale, exported on their own (projection.pt).

    Attributes: image_projection [vision_width, embed_dim], text_projection [text_width, embed_dim],
    logit_scale (a scalar, log), and always image_projection_bias / text_projection_bias ([embed_dim],
    or [0] when the model has no such bias) and logit_bias ([] for SigLIP-style models, else [0]).
    project_* compute x @ projection (+ bias) in float32 whatever the stored dtype, so they run on CPU
    for fp16 exports too.
    """

    def __init__(self, image_projection: torch.Tensor, text_projection: torch.Tensor, logit_scale: torch.Tensor,
                 image_projection_bias: Optional[torch.Tensor] = None,
                 text_projection_bias: Optional[torch.Tensor] = None, logit_bias: Optional[torch.Tensor] = None):
        super().__init__()

        def param(t: Optional[torch.Tensor], like: torch.Tensor) -> nn.Parameter:
            t = torch.zeros(0, dtype=like.dtype) if t is None else t.detach().clone()
            return nn.Parameter(t, requires_grad=False)

        self.image_projection = nn.Parameter(image_projection.detach().clone(), requires_grad=False)
        self.text_projection = nn.Parameter(text_projection.detach().clone(), requires_grad=False)
        self.logit_scale = nn.Parameter(logit_scale.detach().clone().reshape(()), requires_grad=False)
        self.image_projection_bias = param(image_projection_bias, image_projection)
        self.text_projection_bias = param(text_projection_bias, text_projection)
        self.logit_bias = param(None if logit_bias is None else logit_bias.reshape(()), logit_scale)

    @torch.jit.export
    def project_image(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(x.float(), self.image_projection.float())
        if self.image_projection_bias.numel() > 0:
            y = y + self.image_projection_bias.float()
        return y

    @torch.jit.export
    def project_text(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(x.float(), self.text_projection.float())
        if self.text_projection_bias.numel() > 0:
            y = y + self.text_projection_bias.float()
        return y

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pooled features -> (logits_per_image, logits_per_text), as CLIP.forward (+ logit_bias when present)."""
        a = self.project_image(image)
        b = self.project_text(text)
        a = a / a.norm(p=2.0, dim=1, keepdim=True)
        b = b / b.norm(p=2.0, dim=1, keepdim=True)
        logits = self.logit_scale.float().exp() * torch.matmul(a, b.t())
        if self.logit_bias.numel() > 0:
            logits = logits + self.logit_bias.float()
        return logits, logits.t()


class CLIP(nn.Module):
    """ViT CLIP with OpenAI's constructor arguments and state-dict key names.

    vision heads = vision_width // 64 unless `vision_heads` is given (OpenAI's code fixes it so);
    text heads = transformer_heads. The keyword options after the first ten (see the module docstring)
    default to OpenAI's architecture; `self.shape` records all of them.
    """

    def __init__(
        self,
        embed_dim: int,
        image_resolution: int,
        vision_layers: int,
        vision_width: int,
        vision_patch_size: int,
        context_length: int,
        vocab_size: int,
        transformer_width: int,
        transformer_heads: int,
        transformer_layers: int,
        *,
        vision_heads: Optional[int] = None,
        vision_mlp_width: Optional[int] = None,
        text_mlp_width: Optional[int] = None,
        activation: str = "quick_gelu",
        vision_ln_pre: bool = True,
        vision_pool: str = "tok",
        vision_final_ln_after_pool: bool = False,
        vision_layer_norm_eps: float = 1e-5,
        text_causal_mask: bool = True,
        text_pool: str = "argmax",
        text_eos_id: Optional[int] = None,
        text_layer_norm_eps: float = 1e-5,
        text_proj_bias: bool = False,
        logit_bias: bool = False,
        vision_type: str = "clip",
        vision_activation: Optional[str] = None,
        text_activation: Optional[str] = None,
        text_pad_id: int = 0,
        text_proj: bool = True,
    ):
        super().__init__()
        if vision_type not in ("clip", "siglip"):
            raise ValueError(f"vision_type {vision_type!r} is not one of clip, siglip")
        vision_activation = activation if vision_activation is None else vision_activation
        text_activation = activation if text_activation is None else text_activation
        if vision_type == "siglip" and embed_dim != vision_width:
            raise ValueError(f"a SigLIP image tower has no projection: embed_dim {embed_dim} must equal its width "
                             f"{vision_width}")
        if not text_proj and embed_dim != transformer_width:
            raise ValueError(f"a text tower without projection needs embed_dim {embed_dim} == its width "
                             f"{transformer_width}")
        if isinstance(vision_layers, (tuple, list)):
            raise CheckpointError("ResNet image towers (vision_layers given as a tuple) are not supported; use a ViT CLIP")
        vision_heads = max(vision_width // 64, 1) if vision_heads is None else vision_heads
        vision_mlp_width = 4 * vision_width if vision_mlp_width is None else vision_mlp_width
        text_mlp_width = 4 * transformer_width if text_mlp_width is None else text_mlp_width
        text_eos_id = vocab_size - 1 if text_eos_id is None else text_eos_id
        self.shape = dict(
            embed_dim=embed_dim, image_resolution=image_resolution, vision_layers=vision_layers,
            vision_width=vision_width, vision_patch_size=vision_patch_size, context_length=context_length,
            vocab_size=vocab_size, transformer_width=transformer_width, transformer_heads=transformer_heads,
            transformer_layers=transformer_layers,
            vision_heads=vision_heads, vision_mlp_width=vision_mlp_width, text_mlp_width=text_mlp_width,
            activation=activation, vision_ln_pre=vision_ln_pre, vision_pool=vision_pool,
            vision_final_ln_after_pool=vision_final_ln_after_pool, vision_layer_norm_eps=vision_layer_norm_eps,
            text_causal_mask=text_causal_mask, text_pool=text_pool, text_eos_id=text_eos_id,
            text_layer_norm_eps=text_layer_norm_eps, text_proj_bias=text_proj_bias, logit_bias=logit_bias,
            vision_type=vision_type, vision_activation=vision_activation, text_activation=text_activation,
            text_pad_id=text_pad_id, text_proj=text_proj,
        )
        self.vision_heads = vision_heads
        self.embed_dim = embed_dim
        self.context_length = context_length
        self.visual: nn.Module
        if vision_type == "siglip":
            self.visual = SiglipVisionTower(image_resolution, vision_patch_size, vision_width, vision_layers,
                                            vision_heads, vision_mlp_width, vision_activation, vision_layer_norm_eps)
        else:
            self.visual = VisionTower(image_resolution, vision_patch_size, vision_width, vision_layers, vision_heads,
                                      vision_mlp_width, vision_activation, vision_ln_pre, vision_pool,
                                      vision_final_ln_after_pool, vision_layer_norm_eps)
        self.text = TextTower(context_length, vocab_size, transformer_width, transformer_layers, transformer_heads,
                              text_mlp_width, text_activation, text_causal_mask, text_pool, text_eos_id,
                              text_layer_norm_eps, text_pad_id)
        # A tower without a projection (SigLIP's image tower, open_clip's text proj_type "none") gets the
        # identity, kept out of the state dict: x @ I is exact, and projection.pt keeps one format.
        if vision_type == "siglip":
            self.register_buffer("image_projection", torch.eye(vision_width), persistent=False)
        else:
            self.image_projection = nn.Parameter(torch.empty(vision_width, embed_dim))
        if text_proj:
            self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        else:
            self.register_buffer("text_projection", torch.eye(transformer_width), persistent=False)
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        # Registered only when the model has them, so OpenAI-architecture state dicts keep their keys.
        self.text_projection_bias: Optional[nn.Parameter] = (
            nn.Parameter(torch.zeros(embed_dim)) if text_proj_bias else None)
        self.logit_bias: Optional[nn.Parameter] = nn.Parameter(torch.zeros([])) if logit_bias else None
        self.initialize_parameters()
        self._register_load_state_dict_pre_hook(CLIP._load_hook)
        self._register_state_dict_hook(CLIP._save_hook)

    # -- OpenAI key names <-> ours -----------------------------------------------------------
    @staticmethod
    def _load_hook(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        for name in NON_PARAMETER_KEYS:
            state_dict.pop(prefix + name, None)
        pairs = [("visual.proj", "image_projection")] + [(n, "text." + n) for n in _TEXT_TOP_LEVEL]
        _rename_prefixes(state_dict, prefix, pairs)

    @staticmethod
    def _save_hook(module, state_dict, prefix, local_metadata):
        pairs = [("image_projection", "visual.proj")] + [("text." + n, n) for n in _TEXT_TOP_LEVEL]
        _rename_prefixes(state_dict, prefix, pairs)

    def initialize_parameters(self) -> None:
        """Random initialisation following the CLIP paper's recipe (used for training from scratch)."""
        nn.init.normal_(self.text.token_embedding.weight, std=0.02)
        nn.init.normal_(self.text.positional_embedding, std=0.01)
        for tower in (self.visual.transformer, self.text.transformer):
            width, layers = tower.width, tower.layers
            proj_std = (width ** -0.5) * ((2 * layers) ** -0.5)
            attn_std = width ** -0.5
            fc_std = (2 * width) ** -0.5
            for block in tower.resblocks:
                nn.init.normal_(block.attn.in_proj.weight, std=attn_std)
                nn.init.zeros_(block.attn.in_proj.bias)
                nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
                nn.init.zeros_(block.attn.out_proj.bias)
                nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
                nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        if isinstance(self.image_projection, nn.Parameter):
            nn.init.normal_(self.image_projection, std=self.visual.width ** -0.5)
        if isinstance(self.text_projection, nn.Parameter):
            nn.init.normal_(self.text_projection, std=self.text.width ** -0.5)

    # -- inference ----------------------------------------------------------------------------
    def project_image(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.matmul(pooled.to(self.image_projection.dtype), self.image_projection)

    def project_text(self, pooled: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(pooled.to(self.text_projection.dtype), self.text_projection)
        if self.text_projection_bias is not None:
            out = out + self.text_projection_bias
        return out

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.project_image(self.visual(pixels))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.project_text(self.text(ids))

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(logits_per_image, logits_per_text): logit_scale.exp() * cosine (+ logit_bias when the model has one)."""
        image_features = self.encode_image(pixels)
        text_features = self.encode_text(ids)
        image_features = image_features / image_features.norm(p=2.0, dim=1, keepdim=True)
        text_features = text_features / text_features.norm(p=2.0, dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * torch.matmul(image_features, text_features.t())
        if self.logit_bias is not None:
            logits_per_image = logits_per_image + self.logit_bias
        return logits_per_image, logits_per_image.t()

    def projection_module(self) -> Projection:
        """The projections, logit scale and biases as a standalone module (what export writes to projection.pt)."""
        return Projection(self.image_projection, self.text_projection, self.logit_scale.float(), None,
                          self.text_projection_bias,
                          None if self.logit_bias is None else self.logit_bias.float())


QUICK_GELU_ALPHA = 1.702


@torch.no_grad()
def fold_for_inference(tower: nn.Module) -> nn.Module:
    """Rewrites a VisionTower or TextTower (in place; float weights) into an equivalent with fewer
    non-GEMM passes, and returns it. Exact in real arithmetic, ~1e-7 relative in float32:

    - QuickGELU(h) = h * sigmoid(1.702 h) = silu(1.702 h) / 1.702: the 1.702 goes into c_fc's weights
      and bias, the 1 / 1.702 into c_proj's weights, and the activation becomes one SiLU (one pass over
      the [tokens, 4 * width] activations instead of three). Exact GELU (nn.GELU) MLPs stay as they are;
    - the attention's q scaling (head_dim ** -0.5) goes into the q rows of in_proj (one pass fewer);
    - the image tower's patch convolution (stride == kernel) runs as one GEMM over unfolded patches;
    - the last block computes the pooled row only (Transformer.forward_rows), where one row is pooled.

    The state dict keeps its names and shapes (values of the folded weights change), so exported
    archives still carry conv1.weight, token_embedding.weight, ... for the loader's checks.
    """
    for block in tower.modules():
        if isinstance(block, ResidualAttentionBlock):
            attn = block.attn
            if attn.q_prescaled:
                raise ValueError("fold_for_inference: the block was folded already")
            if isinstance(block.mlp.gelu, QuickGELU):
                block.mlp.c_fc.weight.mul_(QUICK_GELU_ALPHA)
                block.mlp.c_fc.bias.mul_(QUICK_GELU_ALPHA)
                block.mlp.c_proj.weight.div_(QUICK_GELU_ALPHA)
                block.mlp.gelu = nn.SiLU()
            elif not isinstance(block.mlp.gelu, nn.GELU):
                raise ValueError(f"fold_for_inference: unexpected activation {type(block.mlp.gelu).__name__}")
            attn.in_proj.weight[: attn.width].mul_(attn.scale)
            attn.in_proj.bias[: attn.width].mul_(attn.scale)
            attn.q_prescaled = True
    if isinstance(tower, (VisionTower, SiglipVisionTower)):
        tower.patch_gemm = True
    # Only the pooled row leaves the last block (not for average or attention pooling, which read
    # every row).
    if isinstance(tower, TextTower) or (isinstance(tower, VisionTower) and tower.pool == "tok"):
        tower.rows_only = True
    return tower


def clean_state_dict(sd) -> "OrderedDict[str, torch.Tensor]":
    """Drops OpenAI's non-parameter archive entries and unwraps {"state_dict": ...} containers."""
    if not isinstance(sd, dict):
        raise CheckpointError(f"expected a state dict (a mapping of names to tensors), got {type(sd).__name__}")
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    out = OrderedDict()
    for key, value in sd.items():
        if key in NON_PARAMETER_KEYS:
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        out[key] = value
    return out


def infer_shape(sd: Dict[str, torch.Tensor]) -> Dict[str, int]:
    """CLIP constructor arguments inferred from a (cleaned) OpenAI-style state dict: every dimension,
    with OpenAI's head counts (width // 64); the MLP widths come from the c_fc weights."""
    if any(k.startswith("visual.layer1.") for k in sd) or "visual.attnpool.positional_embedding" in sd:
        raise CheckpointError(
            "this is a ResNet CLIP checkpoint (keys visual.layer1.*); only ViT image towers (visual.conv1 + "
            "visual.transformer) are supported"
        )
    required = [
        "visual.conv1.weight", "visual.positional_embedding", "visual.proj", "text_projection",
        "positional_embedding", "token_embedding.weight", "ln_final.weight", "logit_scale",
    ]
    missing = [k for k in required if k not in sd]
    if missing:
        raise CheckpointError(f"not a ViT CLIP state dict: missing {', '.join(missing)} (found {len(sd)} keys)")
    conv = sd["visual.conv1.weight"]
    if conv.dim() != 4 or conv.shape[2] != conv.shape[3]:
        raise CheckpointError(f"visual.conv1.weight has unexpected shape {tuple(conv.shape)}")
    vision_width = conv.shape[0]
    vision_patch_size = conv.shape[-1]

    def count_blocks(prefix: str) -> int:
        ids = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
        if ids != set(range(len(ids))):
            raise CheckpointError(f"resblock indices under {prefix} are not contiguous: {sorted(ids)}")
        return len(ids)

    vision_layers = count_blocks("visual.transformer.resblocks.")
    tokens = sd["visual.positional_embedding"].shape[0] - 1
    grid = int(round(math.sqrt(tokens)))
    if grid * grid != tokens:
        raise CheckpointError(f"visual.positional_embedding has {tokens + 1} rows, not grid^2 + 1")
    transformer_width = sd["ln_final.weight"].shape[0]
    shape = dict(
        embed_dim=int(sd["text_projection"].shape[1]),
        image_resolution=int(vision_patch_size * grid),
        vision_layers=int(vision_layers),
        vision_width=int(vision_width),
        vision_patch_size=int(vision_patch_size),
        context_length=int(sd["positional_embedding"].shape[0]),
        vocab_size=int(sd["token_embedding.weight"].shape[0]),
        transformer_width=int(transformer_width),
        transformer_heads=int(max(transformer_width // 64, 1)),
        transformer_layers=int(count_blocks("transformer.resblocks.")),
    )
    if shape["vision_layers"] == 0 or shape["transformer_layers"] == 0:
        raise CheckpointError("state dict has no transformer resblocks")
    for tower, prefix in (("vision", "visual.transformer.resblocks.0."), ("text", "transformer.resblocks.0.")):
        fc = sd.get(prefix + "mlp.c_fc.weight")
        if fc is not None and fc.dim() == 2:
            shape[tower + "_mlp_width"] = int(fc.shape[0])
    return shape


def build_from_state_dict(sd, **options) -> CLIP:
    """A float32 CLIP in eval mode with every dimension inferred from the weights (strict load).

    `options` are CLIP keyword options that the weights cannot tell (activation, head counts, pooling,
    LayerNorm eps, ...); they override the inferred values. Without them the model is OpenAI's
    architecture (QuickGELU, heads = width // 64).
    """
    sd = clean_state_dict(sd)
    shape = infer_shape(sd)
    shape.update(options)
    model = CLIP(**shape)
    expected = set(model.state_dict().keys())  # OpenAI names (the save hook translates)
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"state dict does not match a ViT CLIP of inferred shape {shape}: missing {missing[:8]}"
            f"{'...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    sd = OrderedDict((k, v.float()) for k, v in sd.items())
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"state dict does not match the inferred CLIP shape {shape}: {e}") from e
    return model.eval()
