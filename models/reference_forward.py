"""Independent eager forward passes computed straight from a checkpoint's own tensors and config.

The exporter converts every checkpoint layout into clip_model's modules; these functions do not use
them (nor the conversion), so comparing the exported files against them checks the key mapping, the
transposes, the q/k/v fusion and every knob as well as the TorchScript code:

    openai_layout_features(sd, arch, pixels, ids)  # OpenAI / open_clip keys; attention by torch's own
                                                   # F.multi_head_attention_forward on in_proj_weight
    hf_clip_features(sd, arch, pixels, ids)        # HF CLIPModel keys; q/k/v as separate projections

`arch` is the CLIP option dict the exporter derived from the config (clip_model.CLIP.shape); `ids`
are full-length ([N, context_length]) token ids. Both return (image_features, text_features), projected
and not normalised, in float32.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["openai_layout_features", "hf_clip_features"]

Tensor = torch.Tensor


def _act(name: str) -> Callable[[Tensor], Tensor]:
    if name == "quick_gelu":
        return lambda h: h * torch.sigmoid(1.702 * h)
    if name == "gelu":
        return lambda h: F.gelu(h)  # exact (erf)
    raise ValueError(f"unknown activation {name!r}")


def _causal(length: int) -> Tensor:
    return torch.full((length, length), float("-inf")).triu(1)


def _embed_patches(pixels: Tensor, conv: Tensor, cls: Tensor, pos: Tensor) -> Tensor:
    """[class token; patch embeddings] + positions: [N, 1 + grid^2, width] (no bias, stride = kernel)."""
    x = F.conv2d(pixels.float(), conv, stride=conv.shape[-1]).flatten(2).transpose(1, 2)
    return torch.cat([cls.expand(x.shape[0], 1, conv.shape[0]), x], dim=1) + pos


def _pool_text(x: Tensor, ids: Tensor, pool: str, eos_id: int) -> Tensor:
    rows = torch.arange(x.shape[0])
    if pool == "argmax":
        return x[rows, ids.argmax(dim=-1)]
    if pool == "eos":
        return x[rows, (ids == eos_id).int().argmax(dim=-1)]
    if pool == "first":
        return x[:, 0]
    if pool == "last":
        return x[:, -1]
    raise ValueError(f"unknown text pool {pool!r}")


def _pool_image(x: Tensor, ln: Callable[[Tensor], Tensor], pool: str, final_ln_after_pool: bool) -> Tensor:
    if pool == "tok":
        return ln(x)[:, 0] if not final_ln_after_pool else ln(x[:, 0])
    if pool == "avg":
        return ln(x[:, 1:].mean(dim=1)) if final_ln_after_pool else ln(x)[:, 1:].mean(dim=1)
    raise ValueError(f"unknown vision pool {pool!r}")


# ---- OpenAI / open_clip key layout ---------------------------------------------------------------

def _openai_blocks(sd: Dict[str, Tensor], prefix: str, x: Tensor, heads: int, eps: float, act, mask: Optional[Tensor]):
    i = 0
    width = x.shape[-1]
    while prefix + f"{i}.ln_1.weight" in sd:
        p = prefix + f"{i}."
        h = F.layer_norm(x, (width,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps)
        hs = h.transpose(0, 1)  # multi_head_attention_forward takes [L, N, E]
        a, _ = F.multi_head_attention_forward(
            hs, hs, hs, width, heads, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"], None, None, False,
            0.0, sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"], training=False, need_weights=False,
            attn_mask=mask)
        x = x + a.transpose(0, 1)
        h = F.layer_norm(x, (width,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps)
        h = F.linear(act(F.linear(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])),
                     sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        x = x + h
        i += 1
    return x


@torch.no_grad()
def openai_layout_features(sd: Dict[str, Tensor], arch: Dict, pixels: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
    sd = {k: v.float() for k, v in sd.items()}
    act = _act(arch["activation"])
    # image
    eps = arch["vision_layer_norm_eps"]
    x = _embed_patches(pixels, sd["visual.conv1.weight"], sd["visual.class_embedding"], sd["visual.positional_embedding"])
    width = x.shape[-1]
    if "visual.ln_pre.weight" in sd:
        x = F.layer_norm(x, (width,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"], eps)
    x = _openai_blocks(sd, "visual.transformer.resblocks.", x, arch["vision_heads"], eps, act, None)
    ln_post = lambda t: F.layer_norm(t, (width,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"], eps)  # noqa: E731
    image = _pool_image(x, ln_post, arch["vision_pool"], arch["vision_final_ln_after_pool"]) @ sd["visual.proj"]
    # text
    eps = arch["text_layer_norm_eps"]
    x = F.embedding(ids, sd["token_embedding.weight"]) + sd["positional_embedding"][: ids.shape[1]]
    width = x.shape[-1]
    mask = _causal(ids.shape[1]) if arch["text_causal_mask"] else None
    x = _openai_blocks(sd, "transformer.resblocks.", x, arch["transformer_heads"], eps, act, mask)
    x = F.layer_norm(x, (width,), sd["ln_final.weight"], sd["ln_final.bias"], eps)
    x = _pool_text(x, ids, arch["text_pool"], arch["text_eos_id"])
    if "text_projection.weight" in sd:  # open_clip proj_bias: an nn.Linear
        text = F.linear(x, sd["text_projection.weight"], sd.get("text_projection.bias"))
    else:
        text = x @ sd["text_projection"]
    return image, text


# ---- HuggingFace CLIPModel key layout ------------------------------------------------------------

def _hf_blocks(sd: Dict[str, Tensor], prefix: str, x: Tensor, heads: int, eps: float, act, mask: Optional[Tensor]):
    n, length, width = x.shape
    head_dim = width // heads
    i = 0
    while prefix + f"{i}.layer_norm1.weight" in sd:
        p = prefix + f"{i}."
        h = F.layer_norm(x, (width,), sd[p + "layer_norm1.weight"], sd[p + "layer_norm1.bias"], eps)

        def proj(name: str) -> Tensor:
            t = F.linear(h, sd[p + f"self_attn.{name}.weight"], sd[p + f"self_attn.{name}.bias"])
            return t.reshape(n, length, heads, head_dim).transpose(1, 2)  # [N, heads, L, head_dim]

        q, k, v = proj("q_proj") * head_dim ** -0.5, proj("k_proj"), proj("v_proj")
        scores = q @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores + mask
        a = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, length, width)
        x = x + F.linear(a, sd[p + "self_attn.out_proj.weight"], sd[p + "self_attn.out_proj.bias"])
        h = F.layer_norm(x, (width,), sd[p + "layer_norm2.weight"], sd[p + "layer_norm2.bias"], eps)
        x = x + F.linear(act(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                         sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        i += 1
    return x


@torch.no_grad()
def hf_clip_features(sd: Dict[str, Tensor], arch: Dict, pixels: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
    sd = {k: v.float() for k, v in sd.items()}
    act = _act(arch["activation"])
    # image: embeddings, pre_layrnorm, encoder, post_layernorm(class token), visual_projection
    eps = arch["vision_layer_norm_eps"]
    v = "vision_model."
    x = _embed_patches(pixels, sd[v + "embeddings.patch_embedding.weight"], sd[v + "embeddings.class_embedding"],
                       sd[v + "embeddings.position_embedding.weight"])
    width = x.shape[-1]
    x = F.layer_norm(x, (width,), sd[v + "pre_layrnorm.weight"], sd[v + "pre_layrnorm.bias"], eps)
    x = _hf_blocks(sd, v + "encoder.layers.", x, arch["vision_heads"], eps, act, None)
    pooled = F.layer_norm(x[:, 0], (width,), sd[v + "post_layernorm.weight"], sd[v + "post_layernorm.bias"], eps)
    image = F.linear(pooled, sd["visual_projection.weight"])
    # text: causal encoder, final_layer_norm, pooled at the first eos (or the argmax for the legacy config)
    eps = arch["text_layer_norm_eps"]
    t = "text_model."
    x = F.embedding(ids, sd[t + "embeddings.token_embedding.weight"])
    x = x + sd[t + "embeddings.position_embedding.weight"][: ids.shape[1]]
    width = x.shape[-1]
    x = _hf_blocks(sd, t + "encoder.layers.", x, arch["transformer_heads"], eps, act, _causal(ids.shape[1]))
    x = F.layer_norm(x, (width,), sd[t + "final_layer_norm.weight"], sd[t + "final_layer_norm.bias"], eps)
    x = _pool_text(x, ids, arch["text_pool"], arch["text_eos_id"])
    text = F.linear(x, sd["text_projection.weight"])
    return image, text
