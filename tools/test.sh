#!/usr/bin/env bash
# The test command: installs what is missing, builds (tools/setup.sh), runs every test with ctest,
# then the ASan/UBSan and ThreadSanitizer builds and the fuzzers of the LibTorch-free parts when
# their scripts exist (ZSCLIP_SKIP_SANITIZERS=1, ZSCLIP_SKIP_TSAN=1, ZSCLIP_SKIP_FUZZ=1 skip them).
# First, every C++ file must be clang-formatted (tools/format.sh --check; ZSCLIP_SKIP_FORMAT=1 skips).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
if [ "${ZSCLIP_SKIP_FORMAT:-0}" != 1 ]; then tools/format.sh --check; fi
ctest --test-dir "${ZSCLIP_BUILD_DIR:-build}" --output-on-failure -j "${ZSCLIP_JOBS:-$(nproc)}"
if [ -x tools/sanitize.sh ] && [ "${ZSCLIP_SKIP_SANITIZERS:-0}" != 1 ]; then tools/sanitize.sh; fi
if [ -x tools/tsan.sh ] && [ "${ZSCLIP_SKIP_TSAN:-0}" != 1 ]; then tools/tsan.sh; fi
if [ -x tools/fuzz.sh ] && [ "${ZSCLIP_SKIP_FUZZ:-0}" != 1 ]; then tools/fuzz.sh 60; fi
