#!/usr/bin/env bash
# tools/cpu_mask/as-avx2 hides AVX-512, VNNI and BF16 from a process: zsclip must then pick its AVX2
# kernels (cpu_isa avx2, the 1x1-convolution linear primitive with the avx2-rows kernel for few
# rows, the avx2-u8s7x2 int8 kernel) and give
# the answers it gives natively: the shipped model's probabilities for the example images within
# 1e-5, float32 and int8. Exit 77 (skipped, with the reason) where the CPU or kernel has no CPUID
# faulting, or the CPU itself has no AVX-512 (then there is nothing to hide).
#   tests/cpu/as_avx2_test.sh ZSCLIP_BINARY REPO
set -euo pipefail
bin=$1
repo=$2
mask="$repo/tools/cpu_mask/as-avx2"
if ! grep -qw cpuid_fault /proc/cpuinfo; then
  echo "SKIP: this CPU/kernel has no CPUID faulting (no cpuid_fault in /proc/cpuinfo): as-avx2 cannot run"
  exit 77
fi
if ! grep -qw avx512f /proc/cpuinfo; then
  echo "SKIP: this CPU has no AVX-512: the native run is already the AVX2 one"
  exit 77
fi
export CPUID_MASK_LIB=${TMPDIR:-/tmp}/zsclip-cpuid-mask-test-$$.so
trap 'rm -f "$CPUID_MASK_LIB"' EXIT
# The flag can be listed where the kernel still refuses the switch (some hypervisors): the library
# then stops the process with 125 and says so.
if probe=$("$mask" true 2>&1); then :; else
  rc=$?
  if [ "$rc" = 125 ]; then echo "SKIP: $probe"; exit 77; fi
  echo "FAIL: as-avx2 true exited $rc: $probe"; exit 1
fi
info=$("$mask" "$bin" info --model "$repo/models/shapes")
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$info" "$1"; }
[ "$(field cpu_isa)" = avx2 ] || { echo "FAIL: cpu_isa $(field cpu_isa) under as-avx2, expected avx2"; exit 1; }
# float32: the 1x1 convolution, and zsclip's AVX2 kernel for calls of few rows.
case "$(field linear_primitive)" in
  "conv1x1, rows <= "*": avx2-rows") ;;
  *) echo "FAIL: linear_primitive $(field linear_primitive) under as-avx2"; exit 1 ;;
esac
labels="red circle,blue star,green triangle,yellow square,purple hexagon,orange cross"
images=("$repo"/examples/images/*.png)
for precision in float32 int8; do
  native=$("$bin" classify --precision "$precision" --json --labels "$labels" "${images[@]}")
  masked=$("$mask" "$bin" classify --precision "$precision" --json --labels "$labels" "${images[@]}")
  /usr/bin/python3 - "$native" "$masked" "$precision" <<'PY'
import json, sys
native, masked, precision = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
assert len(native) == len(masked) > 0, (len(native), len(masked))
worst = 0.0
for a, b in zip(native, masked):
    assert a["file"] == b["file"], (a["file"], b["file"])
    assert a["labels"] == b["labels"], a["file"]
    worst = max(worst, max(abs(x - y) for x, y in zip(a["probs"], b["probs"])))
print(f"{precision}: {len(native)} images, largest probability difference native vs as-avx2 {worst:.2e}")
if worst > 1e-5:
    sys.exit(f"FAIL: {precision} probabilities differ by {worst} > 1e-5 under as-avx2")
PY
done
int8=$("$mask" "$bin" bench --model "$repo/models/shapes" --precision int8 --batch-size 1 --iterations 1 \
  --text-classes 0 --images "${images[0]}" --json)
echo "$int8" | grep -q '"int8_kernel": *"avx2-u8s7x2"' || { echo "FAIL: int8 kernel under as-avx2: $int8"; exit 1; }
echo "as-avx2: cpu_isa avx2, conv1x1 + avx2-rows, avx2-u8s7x2; answers as natively"
