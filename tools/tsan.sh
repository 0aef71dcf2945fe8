#!/usr/bin/env bash
# Builds the LibTorch-free parts (zsclip::core: tokenizer, preprocessing, head, the classifier
# pipeline with fake encoders, the runtime's worker pool) with ThreadSanitizer (clang) and runs
# their tests, the eight-threads-one-classifier test among them. Used by tools/test.sh.
#   tools/tsan.sh [CTEST_REGEX]    # default: every test of zsclip::core
#   tools/tsan.sh --build          # build only (tools/test.sh builds it while ctest runs)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ZSCLIP_TSAN_DIR:-build-tsan}
cc=$(command -v clang-14 || command -v clang)
cxx=$(command -v clang++-14 || command -v clang++)
# -gline-tables-only: reports name file and line; full debug information would only slow the build.
flags="-fsanitize=thread -fno-omit-frame-pointer -O1 -gline-tables-only"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DZSCLIP_WITH_TORCH=OFF -DZSCLIP_BUILD_EXAMPLES=OFF \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
cmake --build "$dir" -j "${ZSCLIP_BUILD_JOBS:-${ZSCLIP_JOBS:-$(nproc)}}"
if [ "${1:-}" = --build ]; then exit 0; fi
# halt_on_error: a race fails the test that found it. OpenCV and its codecs are not instrumented
# (their own memory accesses are invisible to TSan); tools/tsan.supp names the one third-party
# report suppressed. OMP_NUM_THREADS=1: the approximate-index tests (index_format_test's Ann.*)
# call FAISS, which builds HNSW graphs in OpenMP regions, and LLVM's libomp (not instrumented) takes
# its own locks from its worker threads in ways TSan reports as races and double locks inside
# libomp (its ignore_noninstrumented_modules option hangs there instead). Nothing else of
# zsclip::core uses OpenMP: zsclip's own threads are the runtime's workers, which TSan watches.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tools/tsan.supp ${TSAN_OPTIONS:-}"
OMP_NUM_THREADS=1 exec ctest --test-dir "$dir" --output-on-failure -j "${ZSCLIP_JOBS:-$(nproc)}" ${1:+-R "$1"}
