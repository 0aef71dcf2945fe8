#!/usr/bin/env bash
# zsclip against ONNX Runtime on the same random ViT-B/32 (or SigLIP, --model): the one command of the peer benchmark
# (benchmarks/README.md, "ONNX Runtime (peer benchmark)"). Not part of the test command.
#
#   benchmarks/peers/run.sh                      # 3 interleaved rounds (about 3-5 minutes on 2 cores)
#   benchmarks/peers/run.sh --rounds 1 --iters 2 # a smoke run
#   benchmarks/peers/run.sh --model siglip-b16   # a random SigLIP B/16-224 (also siglip-so400m14), in WORK/MODEL
#   ZSCLIP_PEERS_WORK=/tmp/elsewhere benchmarks/peers/run.sh   # work folder (default /tmp/zsclip-peers)
#
# Steps: 1. Debian's python3-onnx (apt, when missing); 2. onnxruntime-node 1.30.0 from npm into
# benchmarks/peers/node_modules, with --ignore-scripts (its install script would download a CUDA
# provider; the package ships the linux x64 CPU library itself), checked by loading it; 3. builds
# peer_bench and the zsclip CLI into build-perf/ (Release); 4. benchmarks/peers/peers.py with the
# arguments given (peers.py --help): random checkpoint, zsclip and ONNX exports, inputs, accuracy
# check, timed rounds; results in the work folder (peers_results.json, peers_results.md).
#   benchmarks/peers/run.sh --as-avx2 ...      # both runners as on an AVX2-only CPU (tools/cpu_mask/as-avx2)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# --as-avx2 (first argument): the whole run, both runners and the exports, with AVX-512, VNNI and
# BF16 hidden from every process (CPUID faulting; figures say "AVX2 emulated").
if [ "${1:-}" = --as-avx2 ]; then
  shift
  exec "$REPO/tools/cpu_mask/as-avx2" "$0" "$@"
fi
BUILD_DIR=${ZSCLIP_PEERS_BUILD:-$REPO/build-perf}
ORT_VERSION=1.30.0

step() { echo "peers: $*"; }
fail() { echo "peers: error: $*" >&2; exit 1; }

# 1. python3-onnx (the ONNX int8 rewrite); torch for the exports
[ -x /usr/bin/python3 ] || fail "/usr/bin/python3 (Debian's python3 with python3-torch) not found; run tools/setup.sh"
/usr/bin/python3 -c "import torch" 2>/dev/null || fail "/usr/bin/python3 lacks torch (python3-torch); run tools/setup.sh"
if ! /usr/bin/python3 -c "import onnx" 2>/dev/null; then
  step "installing python3-onnx (apt)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-onnx; then
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-onnx \
      || fail "apt-get install python3-onnx failed"
  fi
  /usr/bin/python3 -c "import onnx" || fail "python3-onnx installed but 'import onnx' fails"
fi

# 2. onnxruntime-node, exactly as package-lock.json pins it
command -v node >/dev/null || fail "node not found (apt-get install nodejs npm)"
command -v npm >/dev/null || fail "npm not found (apt-get install npm)"
have=$(cd "$HERE" && node -p "require('onnxruntime-node/package.json').version" 2>/dev/null || true)
if [ "$have" != "$ORT_VERSION" ]; then
  step "npm ci --ignore-scripts (onnxruntime-node $ORT_VERSION) in $HERE"
  (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund) || fail "npm ci in $HERE failed"
fi
lib=$(ls "$HERE"/node_modules/onnxruntime-node/bin/napi-v*/linux/x64/libonnxruntime.so* 2>/dev/null | head -1 || true)
[ -n "$lib" ] || fail "onnxruntime-node $ORT_VERSION in $HERE/node_modules ships no linux/x64 libonnxruntime.so"
(cd "$HERE" && node -e "require('onnxruntime-node')") || fail "require('onnxruntime-node') fails (see above)"

# 3. zsclip's side
step "building peer_bench and zsclip in $BUILD_DIR"
log=$(mktemp /tmp/zsclip-peers-build.XXXXXX.log)
if ! { cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DZSCLIP_BUILD_BENCHMARKS=ON &&
       cmake --build "$BUILD_DIR" --target peer_bench zsclip_cli -j "${ZSCLIP_JOBS:-2}"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  fail "building peer_bench / zsclip_cli in $BUILD_DIR failed (full log: $log)"
fi
rm -f "$log"

# 4. the benchmark
exec /usr/bin/python3 "$HERE/peers.py" --build "$BUILD_DIR" "$@"
