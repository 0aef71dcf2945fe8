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
# compiling in the background at the lowest priorities, so they get only the CPU time ctest leaves
# (its timing-sensitive tests, server and streaming, keep both cores): the ASan build (which the
# fuzzers need) at nice 19, the ThreadSanitizer build at SCHED_IDLE below it. Then the asan stage
# (its build finished, its tests), the fuzzers (one core each; the TSan build takes a core left
# free), and the tsan stage last.
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

# The sanitizer builds (compiles only) in the background: ASan at nice 19 (a nice-19 job gets about
# 1.5 % of a core that a normal-priority process wants), ThreadSanitizer at SCHED_IDLE (only what
# nothing else wants, so it yields to the ASan build, the tests and the fuzzers), a job a core each.
# Each holds its build folder's lock, which its stage takes before building again (a no-op then)
# and testing. A failure here is not a result: the stage builds again and reports it.
prebuild() {
  local idle=()
  if command -v chrt >/dev/null && chrt --idle 0 true 2>/dev/null; then idle=(chrt --idle 0); fi
  if [ "${ZSCLIP_SKIP_SANITIZERS:-0}" != 1 ]; then
    flock "$logdir/asan.lock" nice -n 19 env ZSCLIP_BUILD_JOBS=$JOBS tools/sanitize.sh --build \
      >"$logdir/prebuild-asan.log" 2>&1 &
  fi
  if [ "${ZSCLIP_SKIP_TSAN:-0}" != 1 ]; then
    flock "$logdir/tsan.lock" "${idle[@]}" nice -n 19 env ZSCLIP_BUILD_JOBS=$JOBS tools/tsan.sh --build \
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

# The sanitizer stages take their build's lock (the background build's end), build (a no-op) and
# run their tests on every core; the fuzzers run between them, on the ASan build.
if [ "${ZSCLIP_SKIP_SANITIZERS:-0}" != 1 ]; then
  stage asan flock "$logdir/asan.lock" env ZSCLIP_BUILD_JOBS=$JOBS tools/sanitize.sh
else
  skip asan ZSCLIP_SKIP_SANITIZERS=1
fi
if [ "${ZSCLIP_SKIP_FUZZ:-0}" != 1 ]; then stage fuzz tools/fuzz.sh 60; else skip fuzz ZSCLIP_SKIP_FUZZ=1; fi
if [ "${ZSCLIP_SKIP_TSAN:-0}" != 1 ]; then
  stage tsan flock "$logdir/tsan.lock" env ZSCLIP_BUILD_JOBS=$JOBS tools/tsan.sh
else
  skip tsan ZSCLIP_SKIP_TSAN=1
fi

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
