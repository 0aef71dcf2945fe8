#!/usr/bin/env bash
# Exports the reference models in ../shared/clip with models/export_clip.py for the model tests:
#   $out/openai-tiny-{jit_archive,state_dict,int8}  openai-tiny (the TorchScript archive; the state dict with
#                                                   --activation quick_gelu, and again with --quantize int8)
#   $out/openclip-gelu, openclip-knobs, openclip-longest   open_clip hub folders (with --vocab)
#   $out/hf-tiny                                    a HuggingFace CLIPModel folder (carries its tokenizer)
#   $out/siglip-tiny, siglip2-tiny, hf-siglip-tiny  SigLIP / SigLIP2 (open_clip + timm, HF SiglipModel): their
#                                                   SentencePiece files travel with them
# An export is redone when the exporter's Python files are newer than it. Exit 77 (skipped) when ../shared
# is absent.
set -euo pipefail
python=$1 src=$2 shared=$3 out=$4
clip=$shared/clip
tiny=$clip/openai-tiny
vocab=$clip/bpe_simple_vocab_16e6.txt.gz
if [ ! -f "$tiny/jit_archive.pt" ] || [ ! -f "$vocab" ]; then
  echo "reference material $tiny is absent: model parity tests are skipped"
  exit 77
fi
mkdir -p "$out"
exporter_files=("$src"/models/{export_clip,clip_model,safetensors_io,reference_forward}.py
                "$src"/models/layouts/*.py)

export_one() {  # NAME ARGS...: export into $out/NAME unless an up-to-date export is there
  local name=$1
  shift
  local dir=$out/$name stamp=$out/$name/.exported fresh=1 f
  if [ -f "$stamp" ]; then
    for f in "${exporter_files[@]}"; do
      [ "$stamp" -nt "$f" ] || fresh=0
    done
    [ "$fresh" = 1 ] && return 0
  fi
  rm -rf "$dir"
  "$python" "$src/models/export_clip.py" --out "$dir" --name "$name" "$@"
  touch "$stamp"
}

export_one openai-tiny-jit_archive --checkpoint "$tiny/jit_archive.pt" --vocab "$vocab"
export_one openai-tiny-state_dict --checkpoint "$tiny/state_dict.pt" --vocab "$vocab" --activation quick_gelu
export_one openai-tiny-int8 --checkpoint "$tiny/state_dict.pt" --vocab "$vocab" --activation quick_gelu \
  --quantize int8
for name in openclip-gelu openclip-knobs openclip-longest; do
  if [ -f "$clip/$name/open_clip_config.json" ]; then
    export_one "$name" --checkpoint "$clip/$name" --vocab "$vocab"
  else
    echo "$clip/$name is absent: not exported"
  fi
done
if [ -f "$clip/hf-tiny/config.json" ]; then
  export_one hf-tiny --checkpoint "$clip/hf-tiny"
else
  echo "$clip/hf-tiny is absent: not exported"
fi
for name in siglip-tiny siglip2-tiny hf-siglip-tiny; do
  if [ -f "$clip/$name/reference.json" ]; then
    export_one "$name" --checkpoint "$clip/$name"
  else
    echo "$clip/$name is absent: not exported"
  fi
done
