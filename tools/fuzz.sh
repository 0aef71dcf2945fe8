#!/usr/bin/env bash
# Runs each libFuzzer target (clang, ASan+UBSan, zsclip::core only; built by tools/sanitize.sh in the
# sanitizer build, which it builds if needed) for N seconds (default 60) from its seed corpus in
# tests/fuzz/corpus/<name>/, up to $ZSCLIP_JOBS (default: the core count) targets at once. New inputs
# go to a scratch directory, never into the repo; a crash leaves its input in the build folder and
# fails the script.
#   tools/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
root=$PWD
tools/sanitize.sh --build >/dev/null
dir=$(realpath -m "${ZSCLIP_ASAN_DIR:-build-asan}")
export ZSCLIP_VOCAB=${ZSCLIP_VOCAB:-$PWD/../shared/clip/bpe_simple_vocab_16e6.txt.gz}
jobs=${ZSCLIP_JOBS:-$(nproc)}
logs=$(mktemp -d)
fuzz_one() {  # name: runs one target, its last lines and verdict into $logs/name.log
  local name=$1 scratch
  scratch=$(mktemp -d)
  if (cd "$dir" && ASAN_OPTIONS=detect_leaks=1 "$dir/bin/${name}_fuzz" -max_total_time="$secs" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 "$scratch" "$root/tests/fuzz/corpus/$name" >"$logs/$name.out" 2>&1); then
    echo passed >"$logs/$name.status"
  else
    echo FAILED >"$logs/$name.status"
  fi
  rm -rf "$scratch"
}
names=()
for fuzzer in "$dir"/bin/*_fuzz; do names+=("$(basename "$fuzzer" _fuzz)"); done
if ((${#names[@]} == 0)); then echo "tools/fuzz.sh: no fuzz targets in $dir/bin"; exit 1; fi
echo "== fuzzing ${names[*]} for ${secs}s each, $jobs at once"
running=0
for name in "${names[@]}"; do
  fuzz_one "$name" &
  running=$((running + 1))
  if ((running >= jobs)); then wait -n || true; running=$((running - 1)); fi
done
wait
status=0
for name in "${names[@]}"; do
  echo "== $name: $(cat "$logs/$name.status" 2>/dev/null || echo 'FAILED (no status)')"
  tail -n 15 "$logs/$name.out"
  if [ "$(cat "$logs/$name.status" 2>/dev/null)" != passed ]; then status=1; fi
done
rm -rf "$logs"
exit $status
