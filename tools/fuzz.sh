#!/usr/bin/env bash
# Runs each libFuzzer target (clang, ASan+UBSan, zsclip::core only; built by tools/sanitize.sh in the
# sanitizer build, which it builds if needed) for N seconds (default 60) from its seed corpus in
# tests/fuzz/corpus/<name>/, in two halves, up to $ZSCLIP_JOBS (default: the core count) at once. New inputs
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
# Each target runs as two halves of SECONDS/2 on the same scratch corpus (the second half starts from
# what the first found), queued A1 B1 C1 A2 B2 C2 over $jobs slots: three targets on two cores take
# 1.5 x SECONDS instead of 2 x, each target still fuzzed SECONDS in all, and no target's halves
# overlap (with two slots a half starts only after its other half's slot has been taken twice).
half=$(( (secs + 1) / 2 ))
fuzz_one() {  # name part: runs one half of a target, its last lines into $logs/name.partN.out
  local name=$1 part=$2
  if (cd "$dir" && ASAN_OPTIONS=detect_leaks=1 "$dir/bin/${name}_fuzz" -max_total_time="$half" -rss_limit_mb=2048 \
      -timeout=10 -print_final_stats=1 "$logs/$name.corpus" "$root/tests/fuzz/corpus/$name" >"$logs/$name.part$part.out" 2>&1); then
    echo passed >"$logs/$name.part$part.status"
  else
    echo FAILED >"$logs/$name.part$part.status"
  fi
}
names=()
for fuzzer in "$dir"/bin/*_fuzz; do names+=("$(basename "$fuzzer" _fuzz)"); done
if ((${#names[@]} == 0)); then echo "tools/fuzz.sh: no fuzz targets in $dir/bin"; exit 1; fi
echo "== fuzzing ${names[*]} for ${secs}s each (two halves of ${half}s), $jobs at once"
declare -A running_part=()  # pid -> "name part"
for name in "${names[@]}"; do mkdir -p "$logs/$name.corpus"; done
queue=()
for part in 1 2; do for name in "${names[@]}"; do queue+=("$name $part"); done; done
busy() {  # whether a half of $1 is running
  local pid
  for pid in "${!running_part[@]}"; do [ "${running_part[$pid]%% *}" = "$1" ] && return 0; done
  return 1
}
reap() {  # waits for one half to end and forgets it
  local pid
  wait -n || true
  for pid in "${!running_part[@]}"; do kill -0 "$pid" 2>/dev/null || unset "running_part[$pid]"; done
}
while ((${#queue[@]} > 0)); do
  next=-1
  for i in "${!queue[@]}"; do busy "${queue[$i]%% *}" || { next=$i; break; }; done
  if ((next < 0 || ${#running_part[@]} >= jobs)); then reap; continue; fi
  set -- ${queue[$next]}
  fuzz_one "$1" "$2" &
  running_part[$!]="$1 $2"
  queue=("${queue[@]:0:$next}" "${queue[@]:$((next + 1))}")
done
wait
status=0
for name in "${names[@]}"; do
  verdict=passed
  for part in 1 2; do
    [ "$(cat "$logs/$name.part$part.status" 2>/dev/null)" = passed ] || verdict="FAILED (half $part)"
  done
  echo "== $name: $verdict"
  tail -n 15 "$logs/$name.part2.out" 2>/dev/null || tail -n 15 "$logs/$name.part1.out"
  if [ "$verdict" != passed ]; then
    status=1
    for part in 1 2; do echo "-- $name, half $part:"; tail -n 40 "$logs/$name.part$part.out" 2>/dev/null; done
  fi
done
rm -rf "$logs"
exit $status
