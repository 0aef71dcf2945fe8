#!/usr/bin/env bash
# The test command: installs what is missing, builds (tools/setup.sh), runs every test with ctest,
# then the sanitizer build and the fuzzers of the LibTorch-free parts when their scripts exist.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
ctest --test-dir "${ZSCLIP_BUILD_DIR:-build}" --output-on-failure -j "${ZSCLIP_JOBS:-$(nproc)}"
if [ -x tools/sanitize.sh ] && [ "${ZSCLIP_SKIP_SANITIZERS:-0}" != 1 ]; then tools/sanitize.sh; fi
if [ -x tools/fuzz.sh ] && [ "${ZSCLIP_SKIP_FUZZ:-0}" != 1 ]; then tools/fuzz.sh 60; fi
