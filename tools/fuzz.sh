#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, zsclip::core only) and runs each for N seconds
# (default 60) from its seed corpus in tests/fuzz/corpus/<name>/. New inputs go to a scratch
# directory, never into the repo; a crash leaves its input in build-fuzz/ and fails the script.
#   tools/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
root=$PWD
dir=$(realpath -m "${ZSCLIP_FUZZ_DIR:-build-fuzz}")
cc=$(command -v clang-14 || command -v clang)
cxx=$(command -v clang++-14 || command -v clang++)
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -g -O1"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  -DZSCLIP_WITH_TORCH=OFF -DZSCLIP_BUILD_TESTS=OFF -DZSCLIP_BUILD_EXAMPLES=OFF -DZSCLIP_BUILD_FUZZERS=ON \
  -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$dir" -j "${ZSCLIP_JOBS:-$(nproc)}"
export ZSCLIP_VOCAB=${ZSCLIP_VOCAB:-$PWD/../shared/clip/bpe_simple_vocab_16e6.txt.gz}
status=0
for fuzzer in "$dir"/bin/*_fuzz; do
  name=$(basename "$fuzzer" _fuzz)
  scratch=$(mktemp -d)
  seeds=tests/fuzz/corpus/$name
  echo "== fuzzing $name for ${secs}s"
  if ! (cd "$dir" && ASAN_OPTIONS=detect_leaks=1 "$fuzzer" -max_total_time="$secs" -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 "$scratch" "$root/$seeds" 2>&1 | tail -n 15); then
    echo "fuzzer $name FAILED"; status=1
  fi
  rm -rf "$scratch"
done
exit $status
