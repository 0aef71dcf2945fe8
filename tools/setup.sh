#!/usr/bin/env bash
# Installs what zsclip needs on Debian 12 (only the packages that are missing), then configures
# build/ (Release) and builds the library and the command-line tool (build/bin/zsclip). The tests
# and examples are configured too, and built by tools/test.sh (or `cmake --build build`).
# Run as root, or as a user with sudo.
#   tools/setup.sh                 # deps + library + CLI
#   ZSCLIP_BUILD_TARGET=all tools/setup.sh                             # everything, tests included
#   ZSCLIP_BUILD_DIR=out tools/setup.sh -DZSCLIP_BUILD_BENCHMARKS=ON   # extra CMake arguments
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${ZSCLIP_BUILD_DIR:-build}

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  ccache                                     # rebuilds and the sanitizer builds reuse objects
  libtorch-dev libopenblas0-pthread          # LibTorch; OpenBLAS or matrix products run ~40x slower
  libdnnl-dev                                # oneDNN's GEMMs for zsclip's linear kernels (the oneDNN LibTorch uses)
  libopencv-dev nlohmann-json3-dev libutf8proc-dev zlib1g-dev libxxhash-dev
  libcpp-httplib-dev                         # zsclip serve (HTTP/1.1 server and the tests' client)
  libsentencepiece-dev                       # SigLIP / SigLIP2 tokenizers: .model files run by SentencePiece itself
  libsimdjson-dev                            # fast parse of Gemma's 30 MB tokenizer.json
  liblzma-dev                                # tests: reading the shared Gemma 3 tokenizer.json.xz
  libgtest-dev libgmock-dev libbenchmark-dev
  libfaiss-dev python3-distributed           # approximate index search (FAISS); Dask scale-out (examples/dask_index.py)
  python3-torch python3-torchvision python3-pil python3-numpy python3-regex python3-xxhash   # export scripts and the Python reference
  clang-14 libclang-rt-14-dev                # fuzzers and sanitizer builds in tools/test.sh
  clang-format-14                            # tools/format.sh --check in tools/test.sh
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "zsclip setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's LibTorch must resolve BLAS to OpenBLAS (pthread build), not the reference BLAS.
if command -v update-alternatives >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ]; then
  current=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 || true)
  case "$current" in
    *openblas*) ;;
    *) echo "zsclip setup: warning: libblas.so.3 resolves to $current, not OpenBLAS (slow matrix products)";;
  esac
fi

JOBS=${ZSCLIP_JOBS:-$(nproc)}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@"
TARGET=${ZSCLIP_BUILD_TARGET:-zsclip_cli}
if [ "$TARGET" = all ]; then
  cmake --build "$BUILD_DIR" -j "$JOBS"
else
  cmake --build "$BUILD_DIR" -j "$JOBS" --target "$TARGET"
fi
