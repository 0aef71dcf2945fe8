#!/usr/bin/env bash
# The test command (README's command 2, and CI's .ci/run): installs what is missing and builds
# everything (tools/setup.sh), then runs every stage and reports each one's result at the end; it
# exits 1 when any stage failed, but a failed stage never stops the others (a build failure skips
# only what needs that build). Stages:
#   build      deps, library, CLI, tests and examples (tools/setup.sh)
#   format     every C++ file clang-formatted (tools/format.sh --check)    ZSCLIP_SKIP_FORMAT=1 skips
#   ctest      every test of build/, LibTorch ones included (skips are listed with their reason)
#   asan       ASan+UBSan build of the LibTorch-free parts and its tests  ZSCLIP_SKIP_SANITIZERS=1
#   tsan       ThreadSanitizer build and tests (tools/tsan.sh)            ZSCLIP_SKIP_TSAN=1
#   fuzz       each libFuzzer target for 60 s, on the asan build          ZSCLIP_SKIP_FUZZ=1
# ctest runs after the build with the format check beside it, and the two sanitizer builds
# compiling at idle priority (SCHED_IDLE: they get only the CPU time ctest leaves, so its
# timing-sensitive tests, server and streaming, keep both cores). Then the sanitizer stages finish
# their builds and run their tests side by side, and the fuzzers (one core each) run after them.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${ZSCLIP_BUILD_DIR:-build}
JOBS=${ZSCLIP_JOBS:-$(nproc)}
export ZSCLIP_JOBS=$JOBS
logdir=$(mktemp -d "${TMPDIR:-/tmp}/zsclip-test.XXXXXX")
declare -A result seconds
order=()

stage() {  # name command...: runs a stage in the foreground, output to the terminal
  local name=$1 start=$SECONDS rc
  shift
  order+=("$name")
  echo "==== $name: $*"
  "$@"
  rc=$?
  seconds[$name]=$((SECONDS - start))
  if ((rc == 0)); then result[$name]=passed; else result[$name]="FAILED (exit $rc)"; fi
  echo "==== $name: ${result[$name]} in ${seconds[$name]} s"
  return $rc
}

skip() {  # name reason
  order+=("$1")
  result[$1]="not run: $2"
  seconds[$1]=0
}

background() {  # name command...: runs a stage in the background, its output to $logdir/name.log
  local name=$1
  shift
  (stage "$name" "$@" >"$logdir/$name.log" 2>&1
   echo "${result[$name]}|${seconds[$name]}" >"$logdir/$name.result") &
}

collect() {  # name...: prints what background stages gave (all of it when one failed)
  local name
  for name in "$@"; do
    if [ -f "$logdir/$name.result" ]; then
      order+=("$name")
      IFS='|' read -r result[$name] seconds[$name] <"$logdir/$name.result"
      echo "==== $name output (${result[$name]}, ${seconds[$name]} s):"
      if [ "${result[$name]}" = passed ]; then tail -n 5 "$logdir/$name.log"; else cat "$logdir/$name.log"; fi
    fi
  done
}

# The sanitizer builds (compiles only) at idle priority, in the background. Each holds its build
# folder's lock, which its stage takes before building again (a no-op then) and testing. A failure
# here is not a result: the stage builds again and reports it.
prebuild() {
  local idle=()
  if command -v chrt >/dev/null && chrt --idle 0 true 2>/dev/null; then idle=(chrt --idle 0); fi
  if [ "${ZSCLIP_SKIP_SANITIZERS:-0}" != 1 ]; then
    flock "$logdir/asan.lock" "${idle[@]}" nice -n 19 env ZSCLIP_BUILD_JOBS=1 tools/sanitize.sh --build \
      >"$logdir/prebuild-asan.log" 2>&1 &
  fi
  if [ "${ZSCLIP_SKIP_TSAN:-0}" != 1 ]; then
    flock "$logdir/tsan.lock" "${idle[@]}" nice -n 19 env ZSCLIP_BUILD_JOBS=1 tools/tsan.sh --build \
      >"$logdir/prebuild-tsan.log" 2>&1 &
  fi
}

format_pid=
if stage build env ZSCLIP_BUILD_TARGET=all tools/setup.sh; then
  # The format check (clang-format-14, installed by the build stage; one core for seconds) runs
  # beside ctest.
  if [ "${ZSCLIP_SKIP_FORMAT:-0}" != 1 ]; then background format tools/format.sh --check; format_pid=$!; fi
  prebuild
  rm -rf "$BUILD_DIR/gtest-reports"  # tools/ctest_skips.py reads this run's reports only
  stage ctest ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" --output-junit ctest-junit.xml
  # gtest's GTEST_SKIP and the scripts' exit 77 show as "Skipped": say why, from the tests' own output.
  if [ -f "$BUILD_DIR/ctest-junit.xml" ]; then /usr/bin/python3 tools/ctest_skips.py "$BUILD_DIR/ctest-junit.xml" || true; fi
else
  skip ctest "the build failed"
fi
if [ -n "$format_pid" ]; then
  wait "$format_pid"
  collect format
elif [ "${ZSCLIP_SKIP_FORMAT:-0}" = 1 ]; then
  skip format ZSCLIP_SKIP_FORMAT=1
else
  skip format "the build stage (which installs clang-format-14) failed"
fi

# The two sanitizer builds compile the same LibTorch-free sources with different runtimes: side by
# side, each with a job a core (twice the cores while both compile, so that whichever finishes first
# leaves no core idle to the other; compiles are memory-light), each running its tests on every core.
pids=()
if [ "${ZSCLIP_SKIP_SANITIZERS:-0}" != 1 ]; then
  background asan flock "$logdir/asan.lock" env ZSCLIP_BUILD_JOBS=$JOBS tools/sanitize.sh
  pids+=($!)
fi
if [ "${ZSCLIP_SKIP_TSAN:-0}" != 1 ]; then
  background tsan flock "$logdir/tsan.lock" env ZSCLIP_BUILD_JOBS=$JOBS tools/tsan.sh
  pids+=($!)
fi
for pid in "${pids[@]}"; do wait "$pid"; done
collect asan tsan
[ "${ZSCLIP_SKIP_SANITIZERS:-0}" = 1 ] && skip asan ZSCLIP_SKIP_SANITIZERS=1
[ "${ZSCLIP_SKIP_TSAN:-0}" = 1 ] && skip tsan ZSCLIP_SKIP_TSAN=1

if [ "${ZSCLIP_SKIP_FUZZ:-0}" != 1 ]; then stage fuzz tools/fuzz.sh 60; else skip fuzz ZSCLIP_SKIP_FUZZ=1; fi

rm -rf "$logdir"
echo
echo "==== tools/test.sh summary"
failed=0
passed=0
for name in "${order[@]}"; do
  printf '  %-7s %-28s %5s s\n' "$name" "${result[$name]}" "${seconds[$name]}"
  case "${result[$name]}" in
    passed) passed=$((passed + 1)) ;;
    FAILED*) failed=$((failed + 1)) ;;
  esac
done
echo "stages: $passed passed, $failed failed"
((failed == 0))
