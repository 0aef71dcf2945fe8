#!/usr/bin/env bash
# Smoke test of models/train_shapes.py: a tiny data-parallel run (2 processes averaging gradients through
# shared memory) twice from the same seed; the script itself fails if the processes' weights diverge, and
# the two runs must give bit-identical weights (training is reproducible).
# Usage: train_shapes_smoke.sh PYTHON SOURCE_DIR WORK_DIR
set -euo pipefail
py=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
if ! "$py" -c "import torch, torchvision, PIL" 2>/dev/null; then
  echo "SKIP: $py has no torch/torchvision/PIL (Debian: python3-torch python3-torchvision python3-pil)"
  exit 77
fi
for run in a b; do
  "$py" "$src/models/train_shapes.py" --steps 12 --train-images 128 --batch-size 16 --procs 2 --warmup 4 \
    --eval-every 0 --eval-per-class 1 --log-every 4 --no-export --out "$work/$run" > "$work/$run.log" 2>&1 \
    || { cat "$work/$run.log"; exit 1; }
  grep -q "trained 12 steps" "$work/$run.log" || { cat "$work/$run.log"; exit 1; }
done
"$py" - "$work/a/.work/state_dict.pt" "$work/b/.work/state_dict.pt" <<'PY'
import sys, torch
a, b = (torch.load(p) for p in sys.argv[1:3])
assert a.keys() == b.keys(), "different state-dict keys"
diff = [k for k in a if not torch.equal(a[k], b[k])]
assert not diff, f"two runs from the same seed differ in {diff[:5]}"
print(f"two runs bit-identical over {len(a)} tensors")
PY
