"""HuggingFace's CLIPModel layout: a folder with config.json (model_type "clip"), model.safetensors or
pytorch_model.bin (or a sharded checkpoint's *.index.json), preprocessor_config.json and vocab.json +
merges.txt (+ tokenizer_config.json, special_tokens_map.json). Its config readers and the mapping of
its encoder layers serve siglip.py's SiglipModel too."""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from reference_forward import hf_clip_features

from .common import (OPENAI_MEAN, OPENAI_SPECIALS, OPENAI_STD, LoadedCheckpoint, _bool, _fail, _float,
                     _infer_openai_dims, _int, _read_json, _triple, load_sharded, load_tensor_file, tensors_sha256)

# transformers' CLIPTextConfig / CLIPVisionConfig / CLIPConfig defaults, used for keys a config.json
# leaves out (transformers writes only the values that differ from them).
HF_TEXT_DEFAULTS = {"vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048, "projection_dim": 512,
                    "num_hidden_layers": 12, "num_attention_heads": 8, "max_position_embeddings": 77,
                    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0,
                    "initializer_range": 0.02, "initializer_factor": 1.0, "pad_token_id": 1, "bos_token_id": 49406,
                    "eos_token_id": 49407}
HF_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "projection_dim": 512, "num_hidden_layers": 12,
                      "num_attention_heads": 12, "num_channels": 3, "image_size": 224, "patch_size": 32,
                      "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0,
                      "initializer_range": 0.02, "initializer_factor": 1.0}
# Keys of transformers' PretrainedConfig that CLIPModel's forward does not read (generation settings,
# classification-head labels, output switches, provenance, init values, dropout which is off in eval).
HF_GENERIC_KEYS = {
    "transformers_version", "_name_or_path", "_commit_hash", "architectures", "torch_dtype", "dtype",
    "initializer_range", "initializer_factor", "logit_scale_init_value", "dropout", "attention_dropout",
    "return_dict", "output_hidden_states", "output_attentions", "torchscript", "use_bfloat16", "tie_word_embeddings",
    "is_encoder_decoder", "is_decoder", "add_cross_attention", "tie_encoder_decoder", "cross_attention_hidden_size",
    "chunk_size_feed_forward", "problem_type", "finetuning_task", "id2label", "label2id", "tokenizer_class", "prefix",
    "bos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id", "task_specific_params", "max_length",
    "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty", "temperature",
    "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "gradient_checkpointing",
    "_attn_implementation", "attn_implementation", "_attn_implementation_autoset", "use_cache",
    "tf_legacy_loss", "forced_decoder_ids", "output_past", "layerdrop", "pruned_heads",  # pruned_heads: must be empty
}
HF_TEXT_KEYS = set(HF_TEXT_DEFAULTS) | {"model_type", "eos_token_id"}
HF_VISION_KEYS = set(HF_VISION_DEFAULTS) | {"model_type"}
HF_TOP_KEYS = {"model_type", "text_config", "vision_config", "text_config_dict", "vision_config_dict", "projection_dim"}
HF_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}


def _hf_section(where: str, cfg: Dict[str, Any], name: str, defaults: Dict[str, Any], keys: set,
                notes: List[str]) -> Dict[str, Any]:
    sub = cfg.get(name)
    legacy = cfg.get(name + "_dict")
    if sub is None and legacy is None:
        notes.append(f"{name}: absent, transformers' defaults used")
    merged = dict(defaults)
    for label, part in ((name, sub), (name + "_dict", legacy)):
        if part is None:
            continue
        if not isinstance(part, dict):
            _fail(where, f"{label} is not an object")
        for key, value in part.items():
            if key not in keys and key not in HF_GENERIC_KEYS:
                _fail(where, f"{label}.{key} is not a key this exporter knows for HuggingFace's CLIP; refused "
                             "rather than ignored")
            if key == "pruned_heads" and value:
                _fail(where, f"{label}.pruned_heads is not supported")
    if sub is not None and legacy is not None:
        for key in set(sub) & set(legacy):
            if sub[key] != legacy[key] and key != "transformers_version":
                _fail(where, f"{name}.{key} = {sub[key]!r} and {name}_dict.{key} = {legacy[key]!r} disagree")
    merged.update(sub or {})
    merged.update(legacy or {})
    absent = sorted(k for k in ("num_attention_heads", "hidden_act", "layer_norm_eps")
                    if k not in (sub or {}) and k not in (legacy or {}))
    if absent:
        notes.append(f"{name}: {', '.join(absent)} absent, transformers' defaults used: "
                     + ", ".join(f"{k} {merged[k]}" for k in absent))
    return merged


def hf_tower_shapes(where: str, vc: Dict[str, Any], tc: Dict[str, Any]) -> Dict[str, Any]:
    """The CLIP options that HF's CLIP and SigLIP configs give alike: the towers' sizes, from the merged
    vision_config and text_config; each width a multiple of its heads."""
    width, heads = _int(where, "vision_config.hidden_size", vc["hidden_size"]), \
        _int(where, "vision_config.num_attention_heads", vc["num_attention_heads"])
    twidth, theads = _int(where, "text_config.hidden_size", tc["hidden_size"]), \
        _int(where, "text_config.num_attention_heads", tc["num_attention_heads"])
    if width % heads or twidth % theads:
        _fail(where, "hidden_size is not a multiple of num_attention_heads")
    return {
        "image_resolution": _int(where, "vision_config.image_size", vc["image_size"]),
        "vision_patch_size": _int(where, "vision_config.patch_size", vc["patch_size"]),
        "vision_width": width, "vision_heads": heads,
        "vision_layers": _int(where, "vision_config.num_hidden_layers", vc["num_hidden_layers"]),
        "vision_mlp_width": _int(where, "vision_config.intermediate_size", vc["intermediate_size"]),
        "vision_layer_norm_eps": _float(where, "vision_config.layer_norm_eps", vc["layer_norm_eps"]),
        "context_length": _int(where, "text_config.max_position_embeddings", tc["max_position_embeddings"]),
        "vocab_size": _int(where, "text_config.vocab_size", tc["vocab_size"]),
        "transformer_width": twidth, "transformer_heads": theads,
        "transformer_layers": _int(where, "text_config.num_hidden_layers", tc["num_hidden_layers"]),
        "text_mlp_width": _int(where, "text_config.intermediate_size", tc["intermediate_size"]),
        "text_layer_norm_eps": _float(where, "text_config.layer_norm_eps", tc["layer_norm_eps"]),
    }


def parse_hf_config(where: str, cfg: Dict[str, Any], notes: List[str]) -> Dict[str, Any]:
    if not isinstance(cfg, dict):
        _fail(where, "not a JSON object")
    model_type = cfg.get("model_type")
    if model_type != "clip":
        _fail(where, f"model_type {model_type!r} is not supported (only HuggingFace CLIPModel, model_type \"clip\")")
    archs = cfg.get("architectures")
    if archs is not None and archs != ["CLIPModel"]:
        _fail(where, f"architectures {archs} is not supported (only [\"CLIPModel\"])")
    for key, value in cfg.items():
        if key not in HF_TOP_KEYS and key not in HF_GENERIC_KEYS:
            _fail(where, f"{key} is not a key this exporter knows for HuggingFace's CLIPConfig; refused rather than "
                         "ignored")
        if key == "pruned_heads" and value:
            _fail(where, "pruned_heads is not supported")
    tc = _hf_section(where, cfg, "text_config", HF_TEXT_DEFAULTS, HF_TEXT_KEYS, notes)
    vc = _hf_section(where, cfg, "vision_config", HF_VISION_DEFAULTS, HF_VISION_KEYS, notes)
    for sec, c, mt in (("text_config", tc, "clip_text_model"), ("vision_config", vc, "clip_vision_model")):
        if c.get("model_type", mt) != mt:
            _fail(where, f"{sec}.model_type {c['model_type']!r} is not {mt!r}")
        if c["hidden_act"] not in HF_ACTIVATIONS:
            _fail(where, f"{sec}.hidden_act {c['hidden_act']!r} is not supported (quick_gelu, gelu)")
    if tc["hidden_act"] != vc["hidden_act"]:
        _fail(where, f"text_config.hidden_act {tc['hidden_act']!r} and vision_config.hidden_act {vc['hidden_act']!r} "
                     "differ; one activation for both towers is implemented")
    if vc["num_channels"] != 3:
        _fail(where, f"vision_config.num_channels {vc['num_channels']} is not supported (3)")
    eos = tc["eos_token_id"]
    _int(where, "text_config.eos_token_id", eos, minimum=0)
    if eos == 2:
        pool = "argmax"
        notes.append("text pooling: argmax of the ids (text_config.eos_token_id is the legacy value 2, for which "
                     "transformers pools at the largest id)")
    else:
        pool = "eos"
    shapes = hf_tower_shapes(where, vc, tc)
    return {
        "embed_dim": _int(where, "projection_dim", cfg.get("projection_dim", 512)), **shapes,
        "activation": HF_ACTIVATIONS[tc["hidden_act"]],
        "vision_ln_pre": True, "vision_pool": "tok", "vision_final_ln_after_pool": False,
        # eos_id is used by eos pooling only; with the legacy value the end-of-text id (the largest) is recorded.
        "text_causal_mask": True, "text_pool": pool, "text_eos_id": eos if pool == "eos" else shapes["vocab_size"] - 1,
        "text_proj_bias": False, "logit_bias": False,
    }


HF_PREPROCESS_DEFAULTS = {"do_resize": True, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
                          "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
                          "do_normalize": True, "image_mean": OPENAI_MEAN, "image_std": OPENAI_STD,
                          "do_convert_rgb": True}
HF_PREPROCESS_OTHER = {"image_processor_type", "feature_extractor_type", "processor_class"}
HF_PROCESSORS = ("CLIPImageProcessor", "CLIPImageProcessorFast", "CLIPFeatureExtractor")
HF_RESAMPLE = {3: "bicubic", 2: "bilinear"}


def parse_hf_preprocessor(where: str, cfg: Dict[str, Any], image_size: int) -> Dict[str, Any]:
    if not isinstance(cfg, dict):
        _fail(where, "not a JSON object")
    for key in cfg:
        if key not in HF_PREPROCESS_DEFAULTS and key not in HF_PREPROCESS_OTHER:
            _fail(where, f"{key} is not a key this exporter knows for CLIPImageProcessor; refused rather than ignored")
    for key in ("image_processor_type", "feature_extractor_type"):
        if key in cfg and cfg[key] not in HF_PROCESSORS:
            _fail(where, f"{key} {cfg[key]!r} is not supported ({', '.join(HF_PROCESSORS)})")
    c = dict(HF_PREPROCESS_DEFAULTS)
    c.update(cfg)
    for key in ("do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb"):
        _bool(where, key, c[key])
    if not c["do_convert_rgb"]:
        _fail(where, "do_convert_rgb false is not supported (images are always converted to RGB)")
    if not c["do_rescale"] or abs(_float(where, "rescale_factor", c["rescale_factor"]) * 255 - 1) > 1e-6:
        _fail(where, f"do_rescale {c['do_rescale']} / rescale_factor {c['rescale_factor']}: only do_rescale with "
                     "1/255 is supported")
    if not c["do_resize"]:
        _fail(where, "do_resize false is not supported (images are resized to the model's input size)")

    def edge(value, what):
        if isinstance(value, int):
            return {"shortest_edge": value}
        if not isinstance(value, dict):
            _fail(where, f"{what} {value!r} is not an integer or an object")
        return value

    size, crop = edge(c["size"], "size"), edge(c["crop_size"], "crop_size")
    if "shortest_edge" in crop:  # an int crop_size means a square crop
        crop = {"height": crop["shortest_edge"], "width": crop["shortest_edge"]}
    if set(size) == {"shortest_edge"}:
        if not c["do_center_crop"] or crop != {"height": image_size, "width": image_size} \
                or size["shortest_edge"] != image_size:
            _fail(where, f"size {c['size']} with do_center_crop {c['do_center_crop']} and crop_size {c['crop_size']}: "
                         f"only resizing the shorter side to {image_size} and centre-cropping {image_size}x"
                         f"{image_size} is supported for this model")
        resize, crop_rule = "shorter_side", "center"
    elif set(size) == {"height", "width"}:
        if size != {"height": image_size, "width": image_size}:
            _fail(where, f"size {c['size']} is not the model's {image_size}x{image_size}")
        if c["do_center_crop"] and crop != {"height": image_size, "width": image_size}:
            _fail(where, f"crop_size {c['crop_size']} after resizing to {image_size}x{image_size} is not supported")
        resize, crop_rule = "stretch", "none"
    else:
        _fail(where, f"size {c['size']} is not supported ({{\"shortest_edge\": n}} or {{\"height\", \"width\"}})")
    resample = c["resample"]
    if resample not in HF_RESAMPLE:
        _fail(where, f"resample {resample!r} is not supported (3 bicubic, 2 bilinear)")
    mean = _triple(where, "image_mean", c["image_mean"]) if c["do_normalize"] else [0.0, 0.0, 0.0]
    std = _triple(where, "image_std", c["image_std"]) if c["do_normalize"] else [1.0, 1.0, 1.0]
    if any(s <= 0 for s in std):
        _fail(where, f"image_std {std} has a value <= 0")
    return {"resize": resize, "interpolation": HF_RESAMPLE[resample], "crop": crop_rule, "fill": 0,
            "mean": mean, "std": std}


_HF_LAYER = re.compile(r"^(text|vision)_model\.encoder\.layers\.(\d+)\.(.+)$")
_HF_LAYER_MAP = {"self_attn.out_proj.weight": "attn.out_proj.weight", "self_attn.out_proj.bias": "attn.out_proj.bias",
                 "layer_norm1.weight": "ln_1.weight", "layer_norm1.bias": "ln_1.bias",
                 "layer_norm2.weight": "ln_2.weight", "layer_norm2.bias": "ln_2.bias",
                 "mlp.fc1.weight": "mlp.c_fc.weight", "mlp.fc1.bias": "mlp.c_fc.bias",
                 "mlp.fc2.weight": "mlp.c_proj.weight", "mlp.fc2.bias": "mlp.c_proj.bias"}
_HF_PLAIN = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight", "text_model.final_layer_norm.bias": "ln_final.bias",
    "vision_model.embeddings.class_embedding": "visual.class_embedding",
    "vision_model.embeddings.patch_embedding.weight": "visual.conv1.weight",
    "vision_model.embeddings.position_embedding.weight": "visual.positional_embedding",
    "vision_model.pre_layrnorm.weight": "visual.ln_pre.weight", "vision_model.pre_layrnorm.bias": "visual.ln_pre.bias",
    "vision_model.post_layernorm.weight": "visual.ln_post.weight",
    "vision_model.post_layernorm.bias": "visual.ln_post.bias",
    "logit_scale": "logit_scale",
}
_HF_TRANSPOSED = {"visual_projection.weight": "visual.proj", "text_projection.weight": "text_projection"}
_HF_POSITION_IDS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")


def hf_to_openai(where: str, raw: Dict[str, torch.Tensor], notes: List[str]) -> "OrderedDict[str, torch.Tensor]":
    """HF CLIPModel keys -> OpenAI's: q/k/v fused into in_proj, the projections transposed to [width, embed]."""
    sd: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    qkv: Dict[Tuple[str, str], Dict[str, torch.Tensor]] = {}
    for key, t in raw.items():
        if key in _HF_POSITION_IDS:
            n = t.shape[-1]
            if t.dim() not in (1, 2) or not torch.equal(t.reshape(-1).long(), torch.arange(n)):
                _fail(where, f"{key} is not 0..{n - 1}; old transformers used such a buffer as the positions and new "
                             "ones ignore it, so the model's meaning is ambiguous")
            notes.append(f"{key}: an old transformers buffer (0..{n - 1}), dropped")
            continue
        if key in _HF_PLAIN:
            sd[_HF_PLAIN[key]] = t
            continue
        if key in _HF_TRANSPOSED:
            sd[_HF_TRANSPOSED[key]] = t.t().contiguous()  # nn.Linear weight [embed, width] -> [width, embed]
            continue
        m = _HF_LAYER.match(key)
        if m:
            tower, index, rest = m.groups()
            prefix = ("visual." if tower == "vision" else "") + f"transformer.resblocks.{index}."
            if rest in _HF_LAYER_MAP:
                sd[prefix + _HF_LAYER_MAP[rest]] = t
                continue
            mq = re.match(r"^self_attn\.([qkv])_proj\.(weight|bias)$", rest)
            if mq:
                qkv.setdefault((prefix, mq.group(2)), {})[mq.group(1)] = t
                continue
        _fail(where, f"tensor {key} is not part of HuggingFace's CLIPModel as this exporter maps it (refused "
                     "rather than ignored)")
    for (prefix, kind), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            _fail(where, f"{prefix}: self_attn has {sorted(parts)} {kind} projections, not q, k and v")
        # nn.MultiheadAttention's packed layout: rows [0, W) q, [W, 2W) k, [2W, 3W) v.
        sd[prefix + ("attn.in_proj_weight" if kind == "weight" else "attn.in_proj_bias")] = \
            torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return sd


def _hf_tokenizer(folder: str, vocab_size: int, context_length: int, pool: str, eos_id: int,
                  notes: List[str]) -> Dict[str, Any]:
    vocab_path, merges_path = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    sot, eot = OPENAI_SPECIALS
    allowed = {"tokenizer_class", "bos_token", "eos_token", "unk_token", "pad_token", "do_lower_case",
               "model_max_length", "errors", "add_prefix_space", "clean_up_tokenization_spaces", "name_or_path",
               "special_tokens_map_file", "added_tokens_decoder", "processor_class", "model_input_names",
               "padding_side", "truncation_side", "split_special_tokens", "extra_special_tokens", "additional_special_tokens"}

    def content(v):
        return v.get("content") if isinstance(v, dict) else v

    specials = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        c = _read_json(path)
        if not isinstance(c, dict):
            _fail(path, "not a JSON object")
        for key, value in c.items():
            if key not in allowed:
                _fail(path, f"{key} is not a key this exporter knows for CLIPTokenizer; refused rather than ignored")
        if c.get("tokenizer_class", "CLIPTokenizer") not in ("CLIPTokenizer", "CLIPTokenizerFast"):
            _fail(path, f"tokenizer_class {c['tokenizer_class']!r} is not CLIPTokenizer")
        if c.get("do_lower_case", True) is not True:
            _fail(path, "do_lower_case false is not supported (CLIP's tokenizer lower-cases)")
        if c.get("add_prefix_space", False) or c.get("split_special_tokens", False):
            _fail(path, "add_prefix_space / split_special_tokens true are not supported")
        if c.get("additional_special_tokens") or c.get("extra_special_tokens"):
            _fail(path, "additional special tokens are not supported")
        for tid, entry in (c.get("added_tokens_decoder") or {}).items():
            if content(entry) not in OPENAI_SPECIALS:
                _fail(path, f"added token {tid} {content(entry)!r} is not supported (only {', '.join(OPENAI_SPECIALS)})")
        mml = c.get("model_max_length")
        if isinstance(mml, int) and mml < 10 ** 6 and mml != context_length:
            _fail(path, f"model_max_length {mml} differs from the text tower's max_position_embeddings {context_length}")
        for key in ("bos_token", "eos_token"):
            if key in c:
                specials[key] = content(c[key])
    sot, eot = specials.get("bos_token", sot), specials.get("eos_token", eot)
    for path in (vocab_path, merges_path):
        if not os.path.isfile(path):
            return {"format": None, "missing": path, "sot_token": sot, "eot_token": eot}
    vocab = _read_json(vocab_path)
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and type(v) is int for k, v in vocab.items()):
        _fail(vocab_path, "not a JSON object of token -> integer id")
    if sorted(vocab.values()) != list(range(len(vocab))):
        _fail(vocab_path, "ids are not 0..N-1, each once")
    if len(vocab) != vocab_size:
        _fail(vocab_path, f"{len(vocab)} tokens, but the model's token embedding has {vocab_size} rows")
    for token in (sot, eot):
        if token not in vocab:
            _fail(vocab_path, f"special token {token!r} is not in the vocabulary")
    if pool == "eos" and vocab[eot] != eos_id:
        _fail(vocab_path, f"{eot!r} has id {vocab[eot]}, but the text is pooled at eos_token_id {eos_id}")
    if pool == "argmax" and vocab[eot] != vocab_size - 1:
        _fail(vocab_path, f"{eot!r} has id {vocab[eot]}, not the largest id, which argmax pooling needs")
    with open(merges_path, "r", encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    merges = lines[1:]  # CLIPTokenizer skips the first line ("#version: 0.2") whatever it holds
    if not lines or not lines[0].startswith("#version"):
        notes.append(f"{merges_path}: the first line is not a '#version' header; it is skipped as CLIPTokenizer does")
    for i, line in enumerate(merges[:1000]):
        if len(line.split(" ")) != 2:
            _fail(merges_path, f"line {i + 2} is not a BPE merge ('a b'): {line[:60]!r}")
    return {"format": "hf", "sot_token": sot, "eot_token": eot, "vocab_path": vocab_path, "merges_path": merges_path,
            "merges_available": len(merges)}


def _hf_files(folder: str, what: str) -> Tuple[str, str]:
    """(weights file, preprocessor_config.json) of an HF folder; a missing one is refused by name."""
    weights = None
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"):
        if os.path.isfile(os.path.join(folder, name)):
            weights = os.path.join(folder, name)
            break
    if weights is None:
        _fail(folder, f"a HuggingFace {what} folder needs model.safetensors or pytorch_model.bin (or a sharded "
                      "checkpoint's *.index.json)")
    pp_path = os.path.join(folder, "preprocessor_config.json")
    if not os.path.isfile(pp_path):
        _fail(folder, "preprocessor_config.json is missing (the image processor settings are read from it)")
    return weights, pp_path


def _load_hf(folder: str, activation: Optional[str], notes: List[str]) -> LoadedCheckpoint:
    cfg_path = os.path.join(folder, "config.json")
    opts = parse_hf_config(cfg_path, _read_json(cfg_path), notes)
    if activation is not None and activation != opts["activation"]:
        _fail(cfg_path, f"--activation {activation} contradicts hidden_act {opts['activation']!r}")
    weights, pp_path = _hf_files(folder, "CLIP")
    preprocess = parse_hf_preprocessor(pp_path, _read_json(pp_path), opts["image_resolution"])
    raw, container = load_sharded(weights) if weights.endswith(".index.json") else load_tensor_file(weights)
    sd = hf_to_openai(weights, raw, notes)
    dims = _infer_openai_dims(weights, sd)
    for key, value in dims.items():
        if key in ("transformer_heads",):
            continue
        if opts[key] != value:
            _fail(weights, f"config.json gives {key} {opts[key]}, but the tensors have {value}")
    tokenizer = _hf_tokenizer(folder, opts["vocab_size"], opts["context_length"], opts["text_pool"],
                              opts["text_eos_id"], notes)
    return hf_checkpoint("hf_clip", "CLIPModel", folder, weights, raw, sd, opts, preprocess, tokenizer,
                         hf_clip_features, "functional HF-layout forward (separate q/k/v)", notes)


def hf_checkpoint(layout: str, model_class: str, folder: str, weights: str, raw: Dict[str, torch.Tensor],
                  sd: Dict[str, torch.Tensor], opts: Dict[str, Any], preprocess: Dict[str, Any],
                  tokenizer: Dict[str, Any], features: Callable, reference_name: str,
                  notes: List[str]) -> LoadedCheckpoint:
    """The LoadedCheckpoint of an HF `model_class` folder, its reference `features` run on the folder's
    own tensors (less the old position_ids buffers)."""
    source = {k: v for k, v in raw.items() if k not in _HF_POSITION_IDS}
    return LoadedCheckpoint(
        layout=layout, description=f"HuggingFace {model_class} folder (config.json + {os.path.basename(weights)})",
        state_dict=OrderedDict((k, v.float()) for k, v in sd.items()), options=opts, preprocess=preprocess,
        tokenizer=tokenizer, reference=lambda arch, pixels, ids: features(source, arch, pixels, ids),
        reference_name=reference_name, source_sha256=tensors_sha256(raw),
        default_name=os.path.basename(os.path.abspath(folder)), notes=notes,
        weights_path=weights, what=f"HuggingFace's {model_class}")
