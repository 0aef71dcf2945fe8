#!/usr/bin/env bash
# Exports ../shared/clip/openai-tiny (both the TorchScript archive and the plain state dict) with
# models/export_clip.py (and the state dict again with --quantize int8), for the model tests. Exit 77 (skipped) when ../shared is absent.
set -euo pipefail
python=$1 src=$2 shared=$3 out=$4
tiny=$shared/clip/openai-tiny
if [ ! -f "$tiny/jit_archive.pt" ] || [ ! -f "$shared/clip/bpe_simple_vocab_16e6.txt.gz" ]; then
  echo "reference material $tiny is absent: model parity tests are skipped"
  exit 77
fi
mkdir -p "$out"
for kind in jit_archive state_dict int8; do
  dir=$out/openai-tiny-$kind
  ckpt=$kind extra=()
  if [ "$kind" = int8 ]; then ckpt=state_dict extra=(--quantize int8); fi
  stamp=$dir/.exported
  if [ -f "$stamp" ] && [ "$stamp" -nt "$src/models/export_clip.py" ] && [ "$stamp" -nt "$src/models/clip_model.py" ]; then
    continue
  fi
  rm -rf "$dir"
  "$python" "$src/models/export_clip.py" --checkpoint "$tiny/$ckpt.pt" \
    --vocab "$shared/clip/bpe_simple_vocab_16e6.txt.gz" --out "$dir" --name "openai-tiny-$kind" "${extra[@]}"
  touch "$stamp"
done
