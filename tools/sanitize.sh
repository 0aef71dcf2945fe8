#!/usr/bin/env bash
# Builds zsclip::core (tokenizer, config, preprocessing, head, pipeline, runtime: no LibTorch) with
# clang's AddressSanitizer and UndefinedBehaviorSanitizer and runs its tests. The same build holds the
# libFuzzer targets (coverage instrumentation on, tools/fuzz.sh runs them), so the sanitizer stage and
# the fuzz stage of tools/test.sh compile these sources once.
#   tools/sanitize.sh            # build (tests and fuzzers) and run the tests
#   tools/sanitize.sh --build    # build only (tools/fuzz.sh calls this)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ZSCLIP_ASAN_DIR:-build-asan}
cc=$(command -v clang-14 || command -v clang)
cxx=$(command -v clang++-14 || command -v clang++)
# -gline-tables-only: reports name file and line; full debug information would only slow the build.
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -gline-tables-only"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DZSCLIP_WITH_TORCH=OFF -DZSCLIP_BUILD_EXAMPLES=OFF -DZSCLIP_BUILD_FUZZERS=ON \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$dir" -j "${ZSCLIP_BUILD_JOBS:-${ZSCLIP_JOBS:-$(nproc)}}"
if [ "${1:-}" = --build ]; then exit 0; fi
# OpenCV's own allocations are not instrumented; leaks are checked on our code.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$dir" --output-on-failure -j "${ZSCLIP_JOBS:-$(nproc)}"
