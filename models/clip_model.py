"""CLIP (ViT image tower) reference architecture for zsclip.

Written from the published architecture description of OpenAI's CLIP (ViT variant). The parameters
load from, and `state_dict()` writes, OpenAI's key names (`visual.conv1.weight`,
`visual.transformer.resblocks.0.attn.in_proj_weight`, `token_embedding.weight`, `text_projection`,
`logit_scale`, ...), so an OpenAI state dict loads with strict=True.

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
    "Attention",
    "ResidualAttentionBlock",
    "Transformer",
    "VisionTower",
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


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))])
        )

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), attn_mask)
        x = x + self.mlp(self.ln_2(x))
        return x


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class VisionTower(nn.Module):
    """ViT image encoder without its projection: pixels [N, 3, S, S] -> ln_post(class token) [N, width].

    Pixels of any floating dtype are accepted and cast to the weights' dtype; the output is float32.
    """

    def __init__(self, image_resolution: int, patch_size: int, width: int, layers: int, heads: int):
        super().__init__()
        if image_resolution % patch_size != 0:
            raise ValueError(f"image_resolution {image_resolution} is not a multiple of patch_size {patch_size}")
        self.image_resolution = image_resolution
        self.patch_size = patch_size
        self.width = width
        self.grid = image_resolution // patch_size
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid * self.grid + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        # True once fold_for_inference chose the patch embedding as a GEMM over unfolded patches.
        self.patch_gemm = False

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dim() != 4 or pixels.size(1) != 3 or pixels.size(2) != self.image_resolution or pixels.size(3) != self.image_resolution:
            raise RuntimeError(
                "zsclip image encoder: expected pixels of shape [N, 3, " + str(self.image_resolution) + ", "
                + str(self.image_resolution) + "], got " + str(pixels.shape)
            )
        if not pixels.is_floating_point():
            raise RuntimeError("zsclip image encoder: pixels must be a floating-point tensor")
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
        x = self.transformer(x)
        x = self.ln_post(x[:, 0, :])
        return x.float()


class TextTower(nn.Module):
    """Causal text transformer without its projection: ids [N, L] -> ln_final output at argmax(ids) [N, width].

    L may be shorter than context_length (the causal mask makes the pooled token independent of
    later padding). The pooled position is the first occurrence of the largest id in each row,
    which is <|endoftext|> for tokenizer output. The output is float32.
    """

    def __init__(self, context_length: int, vocab_size: int, width: int, layers: int, heads: int):
        super().__init__()
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.width = width
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_final = LayerNorm(width)
        mask = torch.full((context_length, context_length), float("-inf")).triu(1)
        self.register_buffer("attn_mask", mask, persistent=False)

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
        dtype = self.token_embedding.weight.dtype
        x = self.token_embedding(ids) + self.positional_embedding[:length].to(dtype)
        x = self.transformer(x, self.attn_mask[:length, :length].to(dtype))
        x = self.ln_final(x)
        rows = torch.arange(x.size(0), device=x.device)
        x = x[rows, ids.argmax(dim=-1)]
        return x.float()


class Projection(nn.Module):
    """The two projections and the logit scale, exported on their own (projection.pt).

    project_* compute in float32 whatever the stored dtype, so they run on CPU for fp16 exports too.
    """

    def __init__(self, image_projection: torch.Tensor, text_projection: torch.Tensor, logit_scale: torch.Tensor):
        super().__init__()
        self.image_projection = nn.Parameter(image_projection.detach().clone(), requires_grad=False)
        self.text_projection = nn.Parameter(text_projection.detach().clone(), requires_grad=False)
        self.logit_scale = nn.Parameter(logit_scale.detach().clone().reshape(()), requires_grad=False)

    @torch.jit.export
    def project_image(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x.float(), self.image_projection.float())

    @torch.jit.export
    def project_text(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x.float(), self.text_projection.float())

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Pooled features -> (logits_per_image, logits_per_text), as CLIP.forward."""
        a = self.project_image(image)
        b = self.project_text(text)
        a = a / a.norm(p=2.0, dim=1, keepdim=True)
        b = b / b.norm(p=2.0, dim=1, keepdim=True)
        logits = self.logit_scale.float().exp() * torch.matmul(a, b.t())
        return logits, logits.t()


class CLIP(nn.Module):
    """ViT CLIP with OpenAI's constructor arguments and state-dict key names.

    vision heads = vision_width // 64 (fixed by the architecture, as in OpenAI's code);
    text heads = transformer_heads.
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
    ):
        super().__init__()
        if isinstance(vision_layers, (tuple, list)):
            raise CheckpointError("ResNet image towers (vision_layers given as a tuple) are not supported; use a ViT CLIP")
        vision_heads = max(vision_width // 64, 1)
        self.shape = dict(
            embed_dim=embed_dim, image_resolution=image_resolution, vision_layers=vision_layers,
            vision_width=vision_width, vision_patch_size=vision_patch_size, context_length=context_length,
            vocab_size=vocab_size, transformer_width=transformer_width, transformer_heads=transformer_heads,
            transformer_layers=transformer_layers,
        )
        self.vision_heads = vision_heads
        self.embed_dim = embed_dim
        self.context_length = context_length
        self.visual = VisionTower(image_resolution, vision_patch_size, vision_width, vision_layers, vision_heads)
        self.text = TextTower(context_length, vocab_size, transformer_width, transformer_layers, transformer_heads)
        self.image_projection = nn.Parameter(torch.empty(vision_width, embed_dim))
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
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
        nn.init.normal_(self.image_projection, std=self.visual.width ** -0.5)
        nn.init.normal_(self.text_projection, std=self.text.width ** -0.5)

    # -- inference ----------------------------------------------------------------------------
    @torch.jit.export
    def project_image(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.matmul(pooled.to(self.image_projection.dtype), self.image_projection)

    @torch.jit.export
    def project_text(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.matmul(pooled.to(self.text_projection.dtype), self.text_projection)

    @torch.jit.export
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.project_image(self.visual(pixels))

    @torch.jit.export
    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return self.project_text(self.text(ids))

    def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        image_features = self.encode_image(pixels)
        text_features = self.encode_text(ids)
        image_features = image_features / image_features.norm(p=2.0, dim=1, keepdim=True)
        text_features = text_features / text_features.norm(p=2.0, dim=1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * torch.matmul(image_features, text_features.t())
        return logits_per_image, logits_per_image.t()

    def projection_module(self) -> Projection:
        """The projections + logit scale as a standalone module (what export writes to projection.pt)."""
        return Projection(self.image_projection, self.text_projection, self.logit_scale)


QUICK_GELU_ALPHA = 1.702


@torch.no_grad()
def fold_for_inference(tower: nn.Module) -> nn.Module:
    """Rewrites a VisionTower or TextTower (in place; float weights) into an equivalent with fewer
    non-GEMM passes, and returns it. Exact in real arithmetic, ~1e-7 relative in float32:

    - QuickGELU(h) = h * sigmoid(1.702 h) = silu(1.702 h) / 1.702: the 1.702 goes into c_fc's weights
      and bias, the 1 / 1.702 into c_proj's weights, and the activation becomes one SiLU (one pass over
      the [tokens, 4 * width] activations instead of three);
    - the attention's q scaling (head_dim ** -0.5) goes into the q rows of in_proj (one pass fewer);
    - the image tower's patch convolution (stride == kernel) runs as one GEMM over unfolded patches.

    The state dict keeps its names and shapes (values of the folded weights change), so exported
    archives still carry conv1.weight, token_embedding.weight, ... for the loader's checks.
    """
    for block in tower.modules():
        if isinstance(block, ResidualAttentionBlock):
            if not isinstance(block.mlp.gelu, QuickGELU):
                raise ValueError("fold_for_inference: the block was folded already")
            block.mlp.c_fc.weight.mul_(QUICK_GELU_ALPHA)
            block.mlp.c_fc.bias.mul_(QUICK_GELU_ALPHA)
            block.mlp.c_proj.weight.div_(QUICK_GELU_ALPHA)
            block.mlp.gelu = nn.SiLU()
            attn = block.attn
            attn.in_proj.weight[: attn.width].mul_(attn.scale)
            attn.in_proj.bias[: attn.width].mul_(attn.scale)
            attn.q_prescaled = True
    if isinstance(tower, VisionTower):
        tower.patch_gemm = True
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
    """CLIP constructor arguments inferred from a (cleaned) OpenAI-style state dict."""
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
    return shape


def build_from_state_dict(sd) -> CLIP:
    """A float32 CLIP in eval mode with every dimension inferred from the weights (strict load)."""
    sd = clean_state_dict(sd)
    shape = infer_shape(sd)
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
