#!/usr/bin/env bash
# Builds zsclip::core (tokenizer, config, preprocessing, head: no LibTorch) with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs its tests. Used by tools/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ZSCLIP_ASAN_DIR:-build-asan}
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZSCLIP_WITH_TORCH=OFF -DZSCLIP_BUILD_EXAMPLES=OFF \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$dir" -j "${ZSCLIP_JOBS:-$(nproc)}"
# OpenCV's own allocations are not instrumented; leaks are checked on our code.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$dir" --output-on-failure -j "${ZSCLIP_JOBS:-$(nproc)}"
