#!/usr/bin/env bash
# `zsclip index build` against `zsclip classify` on the same images with the same model, in
# alternating rounds (benchmarks/README.md). Images: N copies of the shipped examples/images under
# distinct paths (the shapes model's own kind of picture).
#   benchmarks/index_build_vs_classify.sh [BUILD_DIR] [N_IMAGES] [ROUNDS] [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
zsclip=${1:-build}/bin/zsclip
n=${2:-2000}
rounds=${3:-3}
model=${4:-models/shapes}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/images"
src=(examples/images/*.png)
for ((i = 0; i < n; i++)); do
  cp "${src[i % ${#src[@]}]}" "$work/images/$(printf %05d "$i").png"
done
ls "$work"/images/*.png > "$work/list.txt"
labels="red circle,blue star,green triangle,yellow square,orange circle,black star"
now() { date +%s.%N; }
for ((r = 1; r <= rounds; r++)); do
  t0=$(now)
  xargs -a "$work/list.txt" "$zsclip" classify --model "$model" --labels "$labels" --top-k 1 > /dev/null
  t1=$(now)
  rm -rf "$work/idx"
  "$zsclip" index build --model "$model" --out "$work/idx" --images-from "$work/list.txt" 2> /dev/null
  t2=$(now)
  echo "round $r: classify $(echo "$n / ($t1 - $t0)" | bc -l | xargs printf %.1f) img/s," \
       "index build $(echo "$n / ($t2 - $t1)" | bc -l | xargs printf %.1f) img/s" \
       "(build/classify $(echo "($t1 - $t0) / ($t2 - $t1)" | bc -l | xargs printf %.3f))"
done
