"""SigLIP / SigLIP2 checkpoint layouts for the exporter:

- open_clip's SigLIP configs (`ViT-*-SigLIP*`): `vision_cfg.timm_model_name` a timm SigLIP entry with
  `timm_pool` "map" and `timm_proj` "none" (keys `visual.trunk.*`), the native text tower (`text.*`, no
  causal mask, pooled at the last position, projection with bias), SentencePiece tokenizer files in the
  folder (`spiece.model` T5-style, `tokenizer.model` Gemma-style, or `tokenizer.json`).
- HuggingFace's SiglipModel folders (`config.json` model_type "siglip"; the fixed-resolution SigLIP2
  checkpoints share it): q/k/v projections, the MAP head as an nn.MultiheadAttention, HF's own activations.

The architecture of a timm entry is not in open_clip's config: it comes from timm's registered entry
(timm/models/vision_transformer.py; the values are facts read from it and tabulated below), overridden by
`timm_model_kwargs` as timm.create_model does. NaFlex variants and unknown entries are refused by name.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from clip_model import CheckpointError
from reference_forward import _hf_blocks, _openai_blocks

from .common import LoadedCheckpoint, _fail, _int, _read_json, load_sharded, load_tensor_file
from .hf_clip import (_HF_LAYER, _HF_POSITION_IDS, HF_GENERIC_KEYS, _hf_files, hf_checkpoint, hf_to_openai,
                      hf_tower_shapes, parse_hf_preprocessor)

Tensor = torch.Tensor

# timm's registered SigLIP / SigLIP2 VisionTransformer entries with attention pooling (global_pool 'map',
# class_token False; LayerNorm eps 1e-6, qkv bias, no pre-norm, final norm): patch size, width, depth, heads,
# MLP ratio, activation (act_layer: nn.GELU, exact, unless the entry sets 'gelu_tanh'), and the input size of
# the entry's default pretrained tag (img_size when timm_model_kwargs does not give one).
_B, _L, _SO, _G = (768, 12, 12, 4.0), (1024, 24, 16, 4.0), (1152, 27, 16, 3.7362), (1536, 40, 16, 4.0)
TIMM_SIGLIP: Dict[str, Tuple[int, Tuple[int, int, int, float], str, int]] = {
    "vit_base_patch32_siglip_256": (32, _B, "gelu_tanh", 256),
    "vit_base_patch16_siglip_224": (16, _B, "gelu", 224),
    "vit_base_patch16_siglip_256": (16, _B, "gelu", 256),
    "vit_base_patch16_siglip_384": (16, _B, "gelu", 384),
    "vit_base_patch16_siglip_512": (16, _B, "gelu", 512),
    "vit_large_patch16_siglip_256": (16, _L, "gelu", 256),
    "vit_large_patch16_siglip_384": (16, _L, "gelu", 384),
    "vit_large_patch16_siglip_512": (16, _L, "gelu_tanh", 512),
    "vit_so400m_patch14_siglip_224": (14, _SO, "gelu", 224),
    "vit_so400m_patch14_siglip_378": (14, _SO, "gelu", 378),
    "vit_so400m_patch14_siglip_384": (14, _SO, "gelu", 384),
    "vit_so400m_patch16_siglip_256": (16, _SO, "gelu_tanh", 256),
    "vit_so400m_patch16_siglip_384": (16, _SO, "gelu_tanh", 384),
    "vit_so400m_patch16_siglip_512": (16, _SO, "gelu_tanh", 512),
    "vit_giantopt_patch16_siglip_256": (16, _G, "gelu_tanh", 256),
    "vit_giantopt_patch16_siglip_384": (16, _G, "gelu_tanh", 384),
}
TIMM_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_tanh", "quick_gelu": "quick_gelu"}
# timm_model_kwargs: implemented overrides, training-only ones, and ones accepted only at the entry's value.
_TIMM_IMPL = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "act_layer")
_TIMM_TRAINING = ("drop_rate", "pos_drop_rate", "patch_drop_rate", "proj_drop_rate", "attn_drop_rate",
                  "drop_path_rate", "weight_init", "fix_init")
_TIMM_FIXED = {"class_token": False, "global_pool": "map", "qkv_bias": True, "qk_norm": False, "proj_bias": True,
               "init_values": None, "pre_norm": False, "final_norm": True, "fc_norm": None, "no_embed_class": False,
               "reg_tokens": 0, "dynamic_img_size": False, "dynamic_img_pad": False, "pos_embed": "learn",
               "in_chans": 3}


def _square(where: str, key: str, value: Any) -> int:
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            _fail(where, f"{key} {value}: only square sizes are supported")
        value = value[0]
    return _int(where, key, value)


def refuse_naflex_or_unknown(where: str, name: Any) -> None:
    if not isinstance(name, str):
        _fail(where, f"vision_cfg.timm_model_name {name!r} is not a string")
    if name.startswith("naflexvit") or "naflex" in name:
        _fail(where, f"vision_cfg.timm_model_name {name!r}: NaFlex (ViT-*-SigLIP2-naflex, variable resolution and "
                     "aspect ratio with a patch-count budget) is not supported; use a fixed-resolution SigLIP2 "
                     "checkpoint")
    if name not in TIMM_SIGLIP:
        kind = " (a GAP variant: average pooling, not SigLIP's MAP head)" if "_siglip_gap_" in name else ""
        _fail(where, f"vision_cfg.timm_model_name {name!r}{kind} is not a timm SigLIP/SigLIP2 entry this exporter "
                     f"implements (timm image towers supported: {', '.join(TIMM_SIGLIP)})")


# open_clip vision_cfg keys in timm mode: (kind, why). open_clip builds the tower from timm alone, so the
# native-tower keys cannot change it.
_OC_TIMM_VISION = {
    "timm_model_pretrained": "only whether timm downloads weights at construction; the checkpoint's are loaded",
    "timm_proj_bias": "used only with timm_proj linear/mlp; this config has none",
    "timm_drop": "training only (dropout before a projection this config does not have)",
    "timm_drop_path": "training only (stochastic depth)",
    "patch_dropout": "training only: PatchDropout is the identity in eval mode",
    "output_tokens": "API only: forward() also returns the patch tokens",
    "layers": "not read by open_clip for timm towers", "width": "not read by open_clip for timm towers",
    "head_width": "not read by open_clip for timm towers", "patch_size": "not read by open_clip for timm towers",
    "mlp_ratio": "not read by open_clip for timm towers (the timm entry's is used)",
}


def timm_vision_options(where: str, model_cfg: Dict[str, Any], vc: Dict[str, Any], notes: List[str]) -> Dict[str, Any]:
    """CLIP options of an open_clip timm SigLIP image tower (vision_type "siglip")."""
    name = vc.get("timm_model_name")
    refuse_naflex_or_unknown(where, name)
    if vc.get("image_seq_len") is not None:
        _fail(where, "vision_cfg.image_seq_len: a NaFlex sequence-length budget is not supported")
    for key, value in vc.items():
        if key in ("timm_model_name", "image_size", "timm_pool", "timm_proj", "timm_model_kwargs", "image_seq_len"):
            continue
        if key not in _OC_TIMM_VISION:
            _fail(where, f"vision_cfg.{key} is not a key this exporter knows for open_clip's timm image towers; "
                         "refused rather than ignored")
        notes.append(f"vision_cfg.{key} = {json.dumps(value)} accepted: {_OC_TIMM_VISION[key]}")
    if vc.get("timm_pool") != "map":
        _fail(where, f"vision_cfg.timm_pool {vc.get('timm_pool')!r} is not supported for {name} (only \"map\", "
                     "SigLIP's attention pooling)")
    if vc.get("timm_proj") != "none":
        _fail(where, f"vision_cfg.timm_proj {vc.get('timm_proj')!r} is not supported (only \"none\": the MAP "
                     "output is the image feature)")
    patch, (width, depth, heads, mlp_ratio), act, img_size = TIMM_SIGLIP[name]
    kwargs = vc.get("timm_model_kwargs") or {}
    if not isinstance(kwargs, dict):
        _fail(where, f"vision_cfg.timm_model_kwargs is {kwargs!r}, not an object")
    for key, value in kwargs.items():
        if key in _TIMM_IMPL:
            continue
        if key in _TIMM_TRAINING:
            notes.append(f"vision_cfg.timm_model_kwargs.{key} = {json.dumps(value)} accepted: training only")
        elif key in _TIMM_FIXED:
            if value != _TIMM_FIXED[key] and not (key == "fc_norm" and value is False):
                _fail(where, f"vision_cfg.timm_model_kwargs.{key} = {json.dumps(value)} is not supported (only "
                             f"{json.dumps(_TIMM_FIXED[key])}, as the SigLIP entries have it)")
        else:
            _fail(where, f"vision_cfg.timm_model_kwargs.{key} is not a timm VisionTransformer argument this "
                         "exporter implements; refused rather than ignored")
    if "act_layer" in kwargs:
        if kwargs["act_layer"] not in TIMM_ACTIVATIONS:
            _fail(where, f"vision_cfg.timm_model_kwargs.act_layer {kwargs['act_layer']!r} is not supported "
                         f"({', '.join(TIMM_ACTIVATIONS)})")
        act = TIMM_ACTIVATIONS[kwargs["act_layer"]]
    img_size = _square(where, "vision_cfg.timm_model_kwargs.img_size", kwargs.get("img_size", img_size))
    patch = _square(where, "vision_cfg.timm_model_kwargs.patch_size", kwargs.get("patch_size", patch))
    width = _int(where, "vision_cfg.timm_model_kwargs.embed_dim", kwargs.get("embed_dim", width))
    depth = _int(where, "vision_cfg.timm_model_kwargs.depth", kwargs.get("depth", depth))
    heads = _int(where, "vision_cfg.timm_model_kwargs.num_heads", kwargs.get("num_heads", heads))
    mlp_ratio = kwargs.get("mlp_ratio", mlp_ratio)
    if type(mlp_ratio) not in (int, float) or not mlp_ratio > 0:
        _fail(where, f"vision_cfg.timm_model_kwargs.mlp_ratio {mlp_ratio!r} is not a positive number")
    if width % heads:
        _fail(where, f"{name}: embed_dim {width} is not a multiple of num_heads {heads}")
    if img_size < patch:
        _fail(where, f"{name}: img_size {img_size} is smaller than the patch size {patch}")
    image_size = _square(where, "vision_cfg.image_size", vc.get("image_size", 224))
    if image_size != img_size:
        _fail(where, f"vision_cfg.image_size {image_size} differs from the timm tower's img_size {img_size} ("
                     f"{'timm_model_kwargs' if 'img_size' in kwargs else 'the default of ' + name}): open_clip would "
                     "feed it images the tower refuses")
    if img_size % patch:
        notes.append(f"{name}: img_size {img_size} is not a multiple of patch {patch}; as timm's PatchEmbed, the "
                     f"last {img_size % patch} pixel rows and columns are not read")
    embed_dim = model_cfg.get("embed_dim")
    if embed_dim != width:
        _fail(where, f"model_cfg.embed_dim {embed_dim!r} differs from the timm tower's width {width}: with timm_proj "
                     "\"none\" the image feature is the tower's width")
    notes.append(f"image tower: timm {name} (patch {patch}, width {width}, depth {depth}, heads {heads}, mlp_ratio "
                 f"{mlp_ratio}, {act}, img_size {img_size}), MAP head")
    return {"vision_type": "siglip", "image_resolution": img_size, "vision_patch_size": patch,
            "vision_width": width, "vision_layers": depth, "vision_heads": heads,
            "vision_mlp_width": int(width * mlp_ratio), "vision_activation": act, "vision_ln_pre": False,
            "vision_pool": "map", "vision_final_ln_after_pool": False, "vision_layer_norm_eps": 1e-6}


# ---- tensors -------------------------------------------------------------------------------------

_TIMM_BLOCK = {"norm1": "ln_1", "norm2": "ln_2", "attn.qkv.weight": "attn.in_proj_weight",
               "attn.qkv.bias": "attn.in_proj_bias", "attn.proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc",
               "mlp.fc2": "mlp.c_proj"}
_TIMM_POOL = {"latent": "latent", "q": "q", "kv": "kv", "proj": "out_proj", "norm": "ln", "mlp.fc1": "mlp.c_fc",
              "mlp.fc2": "mlp.c_proj"}


def _map_prefix(rest: str, table: Dict[str, str]) -> Optional[str]:
    for src, dst in table.items():
        if rest == src or rest.startswith(src + "."):
            return dst + rest[len(src):]
    return None


def timm_vision_tensors(where: str, raw: Dict[str, Tensor]) -> "OrderedDict[str, Tensor]":
    """open_clip `visual.trunk.*` (timm) keys -> clip_model's SiglipVisionTower keys; other keys unchanged."""
    sd: "OrderedDict[str, Tensor]" = OrderedDict()
    for key, t in raw.items():
        if not key.startswith("visual."):
            sd[key] = t
            continue
        rest = key[len("visual.trunk."):] if key.startswith("visual.trunk.") else None
        new = None
        if rest in ("patch_embed.proj.weight", "patch_embed.proj.bias"):
            new = "visual.conv1." + rest.split(".")[-1]
        elif rest == "pos_embed":
            if t.dim() != 3 or t.shape[0] != 1:
                _fail(where, f"tensor {key} has shape {tuple(t.shape)}, not [1, tokens, width]")
            new, t = "visual.positional_embedding", t[0]
        elif rest is not None and rest.startswith("blocks."):
            index, _, sub = rest[len("blocks."):].partition(".")
            mapped = _map_prefix(sub, _TIMM_BLOCK) if index.isdigit() else None
            new = None if mapped is None else f"visual.transformer.resblocks.{index}.{mapped}"
        elif rest in ("norm.weight", "norm.bias"):
            new = "visual.ln_post." + rest.split(".")[-1]
        elif rest is not None and rest.startswith("attn_pool."):
            mapped = _map_prefix(rest[len("attn_pool."):], _TIMM_POOL)
            new = None if mapped is None else "visual.attn_pool." + mapped
            if mapped == "latent" and (t.dim() != 3 or t.shape[0] != 1 or t.shape[1] != 1):
                _fail(where, f"tensor {key} has shape {tuple(t.shape)}: only one latent query ([1, 1, width]) is "
                             "supported")
        if new is None:
            _fail(where, f"tensor {key} is not part of timm's SigLIP VisionTransformer (MAP head, no class token, "
                         "no classifier) as this exporter maps it (refused rather than ignored)")
        sd[new] = t
    return sd


# ---- SentencePiece / tokenizer.json --------------------------------------------------------------

def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message (varint, 64-bit, length-delimited, 32-bit)."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated field")
        yield field, wire, value


SPM_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}


def read_spm_model(path: str) -> Dict[str, Any]:
    """{"pieces": [piece strings in id order], "model_type": "unigram" | "bpe" | ...} of a SentencePiece
    .model file (a ModelProto: field 1 the pieces, field 2 the trainer spec with model_type in field 3)."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
        pieces, types, model_type = [], [], 1
        for field, wire, value in _fields(buf):
            if field == 1 and wire == 2:
                piece, kind = None, 1  # SentencePiece.Type: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, ...
                for f2, w2, v2 in _fields(value):
                    if f2 == 1 and w2 == 2:
                        piece = v2.decode("utf-8")
                    elif f2 == 3 and w2 == 0:
                        kind = v2
                if piece is None:
                    raise ValueError("a piece without text")
                pieces.append(piece)
                types.append(kind)
            elif field == 2 and wire == 2:
                for f2, w2, v2 in _fields(value):
                    if f2 == 3 and w2 == 0:
                        model_type = v2
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not a SentencePiece model ({e})") from e
    if not pieces:
        _fail(path, "not a SentencePiece model (no pieces)")
    return {"pieces": pieces, "types": types, "model_type": SPM_TYPES.get(model_type, str(model_type))}


def read_tokenizer_json(path: str) -> Dict[str, Any]:
    """{"pieces": {piece: id} (model vocab + added tokens), "model_type"} of an HF tokenizer.json."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            tj = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable tokenizer.json ({e})") from e
    model = tj.get("model") if isinstance(tj, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("vocab"), dict):
        _fail(path, "model.vocab is not an object of piece -> id (only BPE tokenizer.json files are read)")
    ids = dict(model["vocab"])
    for tok in tj.get("added_tokens") or []:
        if isinstance(tok, dict) and isinstance(tok.get("content"), str) and type(tok.get("id")) is int:
            ids[tok["content"]] = tok["id"]
    return {"ids": ids, "model_type": str(model.get("type", "")).lower(), "byte_fallback": model.get("byte_fallback")}


def _token_content(v: Any) -> Optional[str]:
    return v.get("content") if isinstance(v, dict) else v


# tokenizer_config.json keys: read, or accepted because they cannot change the ids of a cleaned text.
_TOK_READ = {"tokenizer_class", "eos_token", "pad_token", "unk_token", "bos_token", "add_bos_token", "add_eos_token",
             "model_max_length", "do_lower_case", "extra_ids", "legacy", "additional_special_tokens"}
_TOK_ANY = {"clean_up_tokenization_spaces", "sp_model_kwargs", "padding_side", "truncation_side", "name_or_path",
            "special_tokens_map_file", "added_tokens_decoder", "processor_class", "model_input_names",
            "spaces_between_special_tokens", "use_default_system_prompt", "add_prefix_space", "chat_template",
            "mask_token", "boi_token", "eoi_token", "image_token", "extra_special_tokens"}
_SPM_CLASSES = {"T5Tokenizer": "t5", "T5TokenizerFast": "t5", "SiglipTokenizer": "siglip",
                "GemmaTokenizer": "gemma", "GemmaTokenizerFast": "gemma"}


def sentencepiece_tokenizer(folder: str, vocab_size: int, context_length: int, layout: str,
                            oc_clean: Optional[str], notes: List[str]) -> Dict[str, Any]:
    """The tokenizer of a SigLIP folder: {"format": "sentencepiece", "vocab_path", "vocab_file", "clean",
    "pad_id", "eos_id", "bos_id", "add_eos", "class"}; refuses what it cannot reproduce."""
    cfg: Dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            c = _read_json(path)
            if not isinstance(c, dict):
                _fail(path, "not a JSON object")
            for key in c:
                if name == "tokenizer_config.json" and key not in _TOK_READ and key not in _TOK_ANY:
                    _fail(path, f"{key} is not a key this exporter knows for a SentencePiece tokenizer; refused "
                                "rather than ignored")
            cfg.update(c)
    where = os.path.join(folder, "tokenizer_config.json")
    cls = cfg.get("tokenizer_class")
    if cls not in _SPM_CLASSES:
        _fail(where, f"tokenizer_class {cls!r} is not supported for SigLIP ({', '.join(_SPM_CLASSES)})")
    kind = _SPM_CLASSES[cls]
    extra_specials = cfg.get("additional_special_tokens") or []
    if kind == "t5" and cfg.get("extra_ids", 0) not in (0, None):
        _fail(where, f"extra_ids {cfg['extra_ids']} (T5 sentinel tokens) are not supported")
    mml = cfg.get("model_max_length")
    if isinstance(mml, int) and mml < 10 ** 6 and mml != context_length:
        _fail(where, f"model_max_length {mml} differs from the text context length {context_length}")
    files = [n for n in ("spiece.model", "tokenizer.model", "tokenizer.json") if os.path.isfile(os.path.join(folder, n))]
    spm = [n for n in files if n.endswith(".model")]
    if not files:
        _fail(folder, "no tokenizer model: a SigLIP folder needs spiece.model, tokenizer.model or tokenizer.json")
    vocab_file = spm[0] if spm else "tokenizer.json"
    vocab_path = os.path.join(folder, vocab_file)
    if spm:
        info = read_spm_model(vocab_path)
        ids = {p: i for i, p in reversed(list(enumerate(info["pieces"])))}
        count = len(info["pieces"])
        if info["model_type"] not in ("unigram", "bpe"):
            _fail(vocab_path, f"SentencePiece model_type {info['model_type']} is not supported (unigram, bpe)")
    else:
        info = read_tokenizer_json(vocab_path)
        ids = info["ids"]
        count = max(ids.values()) + 1 if ids else 0
        if info["model_type"] != "bpe" or not info["byte_fallback"]:
            _fail(vocab_path, f"a tokenizer.json of type {info['model_type']!r} (byte_fallback "
                              f"{info['byte_fallback']}) is not supported: only the Gemma kind (BPE with byte "
                              "fallback) is read when no SentencePiece .model is present")
    for tok in extra_specials:
        content = _token_content(tok)
        if content not in ids:
            _fail(where, f"additional special token {content!r} is not a piece of {vocab_file}")
        # HF matches these strings in the text; SentencePiece does so itself only for user-defined pieces.
        if spm and info["types"][ids[content]] != 4:
            _fail(where, f"additional special token {content!r} is not a user-defined piece of {vocab_file}: HF "
                         "would match it in the text and SentencePiece would not")
    if count > vocab_size:
        _fail(vocab_path, f"{count} pieces, more than the model's token embedding has rows ({vocab_size})")
    if count < vocab_size:
        notes.append(f"{vocab_file}: {count} pieces for {vocab_size} embedding rows (the rest are never produced)")

    def special(key: str, default: Optional[str]) -> Optional[int]:
        content = _token_content(cfg.get(key, default))
        if content is None:
            return None
        if content not in ids:
            _fail(where, f"{key} {content!r} is not a piece of {vocab_file}")
        return ids[content]

    defaults = {"t5": ("</s>", "<pad>", None), "siglip": ("</s>", "</s>", None), "gemma": ("<eos>", "<pad>", "<bos>")}
    eos_d, pad_d, bos_d = defaults[kind]
    eos_id, pad_id = special("eos_token", eos_d), special("pad_token", pad_d)
    if eos_id is None or pad_id is None:
        _fail(where, "eos_token and pad_token are needed (every text ends with eos and is padded to the context)")
    if kind == "gemma":
        add_bos = cfg.get("add_bos_token", True)
        add_eos = cfg.get("add_eos_token", False)
    else:
        add_bos, add_eos = False, True
        if cfg.get("add_eos_token", True) is not True or cfg.get("add_bos_token", False):
            _fail(where, f"{cls} with add_eos_token false / add_bos_token true is not supported")
    if add_bos:
        _fail(where, "add_bos_token true is not supported (SigLIP's tokenizers add no bos)")
    if not add_eos:
        _fail(where, "add_eos_token false is not supported (SigLIP pools at the last position; its texts end with "
                     "eos)")
    if layout == "open_clip":
        clean = oc_clean or "whitespace"
        if clean not in ("canonicalize", "none"):
            _fail(where, f"open_clip tokenizer_kwargs.clean {clean!r} is not supported (canonicalize, as the SigLIP "
                         "configs set it)")
    else:
        clean = "siglip_hf" if kind == "siglip" else "none"
        if kind == "t5":
            _fail(where, "a T5Tokenizer in an HF SigLIP folder: HF's SiglipModel folders use SiglipTokenizer "
                         "(its own cleaning) or GemmaTokenizer")
        if kind == "siglip" and cfg.get("do_lower_case", True) is not True:
            _fail(where, "SiglipTokenizer with do_lower_case false is not supported")
    return {"format": "sentencepiece", "vocab_path": vocab_path, "vocab_file": vocab_file, "clean": clean,
            "pad_id": pad_id, "eos_id": eos_id, "bos_id": -1, "add_eos": True, "class": cls,
            "model_type": info["model_type"]}


# ---- independent forwards ------------------------------------------------------------------------

def _act(name: str) -> Callable[[Tensor], Tensor]:
    if name == "gelu_tanh":
        return lambda h: F.gelu(h, approximate="tanh")
    if name == "gelu":
        return lambda h: F.gelu(h)
    if name == "quick_gelu":
        return lambda h: h * torch.sigmoid(1.702 * h)
    raise ValueError(name)


def _patches(pixels: Tensor, w: Tensor, b: Tensor, pos: Tensor) -> Tensor:
    return F.conv2d(pixels.float(), w, b, stride=w.shape[-1]).flatten(2).transpose(1, 2) + pos


def _mlp_residual(sd: Dict[str, Tensor], prefix: str, norm: str, y: Tensor, act, eps: float) -> Tensor:
    """The MAP head's end: y + mlp(norm(y)) (mlp.fc1, act, mlp.fc2)."""
    h = F.layer_norm(y, (y.shape[-1],), sd[prefix + norm + ".weight"], sd[prefix + norm + ".bias"], eps)
    return y + F.linear(act(F.linear(h, sd[prefix + "mlp.fc1.weight"], sd[prefix + "mlp.fc1.bias"])),
                        sd[prefix + "mlp.fc2.weight"], sd[prefix + "mlp.fc2.bias"])


@torch.no_grad()
def open_clip_siglip_features(raw: Dict[str, Tensor], arch: Dict, pixels: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
    """timm VisionTransformer (MAP) + open_clip text tower, from open_clip's own keys, written from timm's
    and open_clip's forward (attention by hand for the trunk and the MAP head)."""
    sd = {k: v.float() for k, v in raw.items()}
    act, eps, heads = _act(arch["vision_activation"]), 1e-6, arch["vision_heads"]
    v = "visual.trunk."
    x = _patches(pixels, sd[v + "patch_embed.proj.weight"], sd[v + "patch_embed.proj.bias"], sd[v + "pos_embed"])
    n, length, width = x.shape
    hd = width // heads
    i = 0
    while f"{v}blocks.{i}.norm1.weight" in sd:
        p = f"{v}blocks.{i}."
        h = F.layer_norm(x, (width,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps)
        qkv = F.linear(h, sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]).reshape(n, length, 3, heads, hd)
        q, k, val = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ val
        x = x + F.linear(a.transpose(1, 2).reshape(n, length, width), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        h = F.layer_norm(x, (width,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps)
        x = x + F.linear(act(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                         sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
        i += 1
    x = F.layer_norm(x, (width,), sd[v + "norm.weight"], sd[v + "norm.bias"], eps)
    ap = v + "attn_pool."
    q = F.linear(sd[ap + "latent"].expand(n, -1, -1), sd[ap + "q.weight"], sd[ap + "q.bias"])
    q = q.reshape(n, 1, heads, hd).transpose(1, 2)
    k, val = F.linear(x, sd[ap + "kv.weight"], sd[ap + "kv.bias"]).reshape(n, length, 2, heads, hd).permute(
        2, 0, 3, 1, 4).unbind(0)
    a = (((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ val).transpose(1, 2).reshape(n, 1, width)
    y = F.linear(a, sd[ap + "proj.weight"], sd[ap + "proj.bias"])
    image = _mlp_residual(sd, ap, "norm", y, act, eps)[:, 0]
    # text (CustomTextCLIP: text.*), bidirectional, pooled at the last position
    t = "text."
    teps = arch["text_layer_norm_eps"]
    x = F.embedding(ids, sd[t + "token_embedding.weight"]) + sd[t + "positional_embedding"][: ids.shape[1]]
    x = _openai_blocks(sd, t + "transformer.resblocks.", x, arch["transformer_heads"], teps,
                       _act(arch["text_activation"]), None if not arch["text_causal_mask"] else
                       torch.full((ids.shape[1],) * 2, float("-inf")).triu(1))
    x = F.layer_norm(x, (x.shape[-1],), sd[t + "ln_final.weight"], sd[t + "ln_final.bias"], teps)[:, -1]
    if t + "text_projection.weight" in sd:
        text = F.linear(x, sd[t + "text_projection.weight"], sd.get(t + "text_projection.bias"))
    elif t + "text_projection" in sd:
        text = x @ sd[t + "text_projection"]
    else:
        text = x
    return image, text


@torch.no_grad()
def hf_siglip_features(raw: Dict[str, Tensor], arch: Dict, pixels: Tensor, ids: Tensor) -> Tuple[Tensor, Tensor]:
    """HF SiglipModel from its own keys, written from modeling_siglip's forward: separate q/k/v, the head's
    nn.MultiheadAttention by torch's F.multi_head_attention_forward, text pooled at the last position."""
    sd = {k: v.float() for k, v in raw.items()}
    v = "vision_model."
    eps = arch["vision_layer_norm_eps"]
    x = _patches(pixels, sd[v + "embeddings.patch_embedding.weight"], sd[v + "embeddings.patch_embedding.bias"],
                 sd[v + "embeddings.position_embedding.weight"])
    width = x.shape[-1]
    act = _act(arch["vision_activation"])
    x = _hf_blocks(sd, v + "encoder.layers.", x, arch["vision_heads"], eps, act, None)
    x = F.layer_norm(x, (width,), sd[v + "post_layernorm.weight"], sd[v + "post_layernorm.bias"], eps)
    h = v + "head."
    probe = sd[h + "probe"].expand(x.shape[0], -1, -1)
    a, _ = F.multi_head_attention_forward(
        probe.transpose(0, 1), x.transpose(0, 1), x.transpose(0, 1), width, arch["vision_heads"],
        sd[h + "attention.in_proj_weight"], sd[h + "attention.in_proj_bias"], None, None, False, 0.0,
        sd[h + "attention.out_proj.weight"], sd[h + "attention.out_proj.bias"], training=False, need_weights=False)
    image = _mlp_residual(sd, h, "layernorm", a.transpose(0, 1), act, eps)[:, 0]
    t = "text_model."
    teps = arch["text_layer_norm_eps"]
    x = F.embedding(ids, sd[t + "embeddings.token_embedding.weight"])
    x = x + sd[t + "embeddings.position_embedding.weight"][: ids.shape[1]]
    x = _hf_blocks(sd, t + "encoder.layers.", x, arch["transformer_heads"], teps, _act(arch["text_activation"]), None)
    x = F.layer_norm(x, (x.shape[-1],), sd[t + "final_layer_norm.weight"], sd[t + "final_layer_norm.bias"], teps)
    text = F.linear(x[:, -1], sd[t + "head.weight"], sd[t + "head.bias"])
    return image, text


# ---- HuggingFace SiglipModel ---------------------------------------------------------------------
# transformers' SiglipTextConfig / SiglipVisionConfig defaults (for keys a config.json leaves out).
HF_SIGLIP_TEXT = {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                  "num_attention_heads": 12, "max_position_embeddings": 64, "hidden_act": "gelu_pytorch_tanh",
                  "layer_norm_eps": 1e-6, "attention_dropout": 0.0, "pad_token_id": 1, "bos_token_id": 49406,
                  "eos_token_id": 49407, "projection_size": None}
HF_SIGLIP_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "num_channels": 3, "image_size": 224, "patch_size": 16, "hidden_act": "gelu_pytorch_tanh",
                    "layer_norm_eps": 1e-6, "attention_dropout": 0.0, "vision_use_head": True}
HF_SIGLIP_ACT = {"gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def parse_hf_siglip_config(where: str, cfg: Dict[str, Any], notes: List[str]) -> Dict[str, Any]:
    if not isinstance(cfg, dict):
        _fail(where, "not a JSON object")
    if cfg.get("model_type") == "siglip2":
        _fail(where, "model_type 'siglip2' (Siglip2Model) is SigLIP2's NaFlex variant (variable resolution, "
                     "patch-count budget): not supported; the fixed-resolution SigLIP2 checkpoints are "
                     "model_type 'siglip'")
    if cfg.get("model_type") != "siglip":
        _fail(where, f"model_type {cfg.get('model_type')!r} is not 'siglip'")
    archs = cfg.get("architectures")
    if archs is not None and archs != ["SiglipModel"]:
        _fail(where, f"architectures {archs} is not supported (only [\"SiglipModel\"])")
    for key in cfg:
        if key not in ("model_type", "text_config", "vision_config") and key not in HF_GENERIC_KEYS:
            _fail(where, f"{key} is not a key this exporter knows for HuggingFace's SiglipConfig; refused rather "
                         "than ignored")
    secs = {}
    for name, defaults, mt in (("text_config", HF_SIGLIP_TEXT, "siglip_text_model"),
                               ("vision_config", HF_SIGLIP_VISION, "siglip_vision_model")):
        sub = cfg.get(name) or {}
        if not isinstance(sub, dict):
            _fail(where, f"{name} is not an object")
        for key, value in sub.items():
            if key not in defaults and key != "model_type" and key not in HF_GENERIC_KEYS:
                _fail(where, f"{name}.{key} is not a key this exporter knows for HuggingFace's SigLIP; refused "
                             "rather than ignored")
            if key == "pruned_heads" and value:
                _fail(where, f"{name}.pruned_heads is not supported")
        if sub.get("model_type", mt) != mt:
            _fail(where, f"{name}.model_type {sub['model_type']!r} is not {mt!r}")
        merged = dict(defaults)
        merged.update(sub)
        if merged["hidden_act"] not in HF_SIGLIP_ACT:
            _fail(where, f"{name}.hidden_act {merged['hidden_act']!r} is not supported ({', '.join(HF_SIGLIP_ACT)})")
        absent = [k for k in ("hidden_act", "layer_norm_eps", "num_attention_heads") if k not in sub]
        if absent:
            notes.append(f"{name}: {', '.join(absent)} absent, transformers' defaults used")
        secs[name] = merged
    tc, vc = secs["text_config"], secs["vision_config"]
    if vc["vision_use_head"] is not True:
        _fail(where, "vision_config.vision_use_head false (no attention-pooling head) is not supported")
    if vc["num_channels"] != 3:
        _fail(where, f"vision_config.num_channels {vc['num_channels']} is not supported (3)")
    shapes = hf_tower_shapes(where, vc, tc)
    width, twidth = shapes["vision_width"], shapes["transformer_width"]
    proj = tc["projection_size"] if tc["projection_size"] is not None else twidth
    if proj != width:
        _fail(where, f"text_config.projection_size {proj} differs from vision_config.hidden_size {width}: SigLIP "
                     "compares the text head's output with the image feature")
    if shapes["image_resolution"] < shapes["vision_patch_size"]:
        _fail(where, f"vision_config.image_size {shapes['image_resolution']} is smaller than patch_size "
                     f"{shapes['vision_patch_size']}")
    notes.append(f"activations as HF's config says: vision {vc['hidden_act']}, text {tc['hidden_act']} (HF's "
                 "semantics; open_clip/timm may use exact GELU for the same weights)")
    return {
        "vision_type": "siglip", "embed_dim": width, **shapes,
        "vision_activation": HF_SIGLIP_ACT[vc["hidden_act"]], "vision_ln_pre": False, "vision_pool": "map",
        "vision_final_ln_after_pool": False,
        "text_activation": HF_SIGLIP_ACT[tc["hidden_act"]], "activation": HF_SIGLIP_ACT[tc["hidden_act"]],
        "text_causal_mask": False, "text_pool": "last", "text_eos_id": None, "text_proj_bias": True,
        "logit_bias": True,
    }


_HF_SIGLIP_PLAIN = {
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.patch_embedding.bias": "visual.conv1.bias",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "vision_model.head.probe": "visual.attn_pool.latent",
    "vision_model.head.attention.out_proj.weight": "visual.attn_pool.out_proj.weight",
    "vision_model.head.attention.out_proj.bias": "visual.attn_pool.out_proj.bias",
    "vision_model.head.layernorm.weight": "visual.attn_pool.ln.weight",
    "vision_model.head.layernorm.bias": "visual.attn_pool.ln.bias",
    "vision_model.head.mlp.fc1.weight": "visual.attn_pool.mlp.c_fc.weight",
    "vision_model.head.mlp.fc1.bias": "visual.attn_pool.mlp.c_fc.bias",
    "vision_model.head.mlp.fc2.weight": "visual.attn_pool.mlp.c_proj.weight",
    "vision_model.head.mlp.fc2.bias": "visual.attn_pool.mlp.c_proj.bias",
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight", "text_model.final_layer_norm.bias": "ln_final.bias",
    "text_model.head.bias": "text_projection_bias",
}


def hf_siglip_tensors(where: str, raw: Dict[str, Tensor], notes: List[str]) -> "OrderedDict[str, Tensor]":
    """HF SiglipModel keys -> clip_model's: encoder layers as for CLIP (q/k/v fused), the head's packed
    in_proj split into q (rows [0, W)) and kv (rows [W, 3W): k then v), the text head transposed."""
    layers, sd = OrderedDict(), OrderedDict()
    for key, t in raw.items():
        if _HF_LAYER.match(key):
            layers[key] = t
        elif key in _HF_POSITION_IDS:
            layers[key] = t  # hf_to_openai checks and drops them
        elif key in _HF_SIGLIP_PLAIN:
            sd[_HF_SIGLIP_PLAIN[key]] = t
        elif key == "text_model.head.weight":
            sd["text_projection"] = t.t().contiguous()
        elif key in ("logit_scale", "logit_bias"):
            if t.numel() != 1:
                _fail(where, f"tensor {key} has shape {tuple(t.shape)}, not a scalar")
            sd[key] = t.reshape(())
        elif key in ("vision_model.head.attention.in_proj_weight", "vision_model.head.attention.in_proj_bias"):
            if t.shape[0] % 3:
                _fail(where, f"tensor {key} has {t.shape[0]} rows, not 3 x width")
            w = t.shape[0] // 3
            kind = "weight" if key.endswith("weight") else "bias"
            sd[f"visual.attn_pool.q.{kind}"] = t[:w]
            sd[f"visual.attn_pool.kv.{kind}"] = t[w:]
        else:
            _fail(where, f"tensor {key} is not part of HuggingFace's SiglipModel as this exporter maps it (refused "
                         "rather than ignored)")
    sd.update(hf_to_openai(where, layers, notes))
    lat = sd.get("visual.attn_pool.latent")
    if lat is not None and (lat.dim() != 3 or tuple(lat.shape[:2]) != (1, 1)):
        _fail(where, f"vision_model.head.probe has shape {tuple(lat.shape)}, not [1, 1, width]")
    pos = sd.get("visual.positional_embedding")
    if pos is not None and pos.dim() == 3 and pos.shape[0] == 1:
        sd["visual.positional_embedding"] = pos[0]
    return sd


def _load_hf_siglip(folder: str, cfg: Dict[str, Any], activation: Optional[str], notes: List[str]) -> LoadedCheckpoint:
    """A HuggingFace SiglipModel folder: HF's semantics, activations as its config says."""
    cfg_path = os.path.join(folder, "config.json")
    opts = parse_hf_siglip_config(cfg_path, cfg, notes)
    if activation is not None:
        _fail(cfg_path, "--activation does not apply: config.json's hidden_act gives each tower's activation")
    weights, pp_path = _hf_files(folder, "SigLIP")
    pp = _read_json(pp_path)
    if not isinstance(pp, dict):
        _fail(pp_path, "not a JSON object")
    for key in ("image_processor_type", "feature_extractor_type"):
        if key in pp and pp[key] not in ("SiglipImageProcessor", "SiglipImageProcessorFast"):
            _fail(pp_path, f"{key} {pp[key]!r} is not supported (SiglipImageProcessor)")
    pp = dict(pp)
    pp.setdefault("do_center_crop", False)  # SiglipImageProcessor resizes to size, it never crops
    pp.setdefault("size", {"height": opts["image_resolution"], "width": opts["image_resolution"]})
    pp.setdefault("image_mean", [0.5, 0.5, 0.5])
    pp.setdefault("image_std", [0.5, 0.5, 0.5])
    pp.setdefault("resample", 3)
    for key in ("image_processor_type", "feature_extractor_type"):
        pp.pop(key, None)
    preprocess = parse_hf_preprocessor(pp_path, pp, opts["image_resolution"])
    raw, container = load_sharded(weights) if weights.endswith(".index.json") else load_tensor_file(weights)
    sd = hf_siglip_tensors(weights, raw, notes)
    tokenizer = sentencepiece_tokenizer(folder, opts["vocab_size"], opts["context_length"], "hf_siglip", None, notes)
    opts["text_pad_id"] = tokenizer["pad_id"]
    opts["text_eos_id"] = opts["vocab_size"] - 1
    return hf_checkpoint("hf_siglip", "SiglipModel", folder, weights, raw, sd, opts, preprocess, tokenizer,
                         hf_siglip_features, "functional HF SiglipModel forward (separate q/k/v, torch MHA head)",
                         notes)
