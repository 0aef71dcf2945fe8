#!/usr/bin/env bash
# Packaging test: `cmake --install` into a prefix, then an outside project finds zsclip with
# find_package(zsclip REQUIRED), builds every example and runs classify and classify_memory with
# the installed model and tool, and links a zsclip::core-only program (core_demo); then an outside
# project builds zsclip::core with add_subdirectory and the same core-only program.
#   run.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
test -f "$prefix/lib/cmake/zsclip/zsclipConfig.cmake"
test -f "$prefix/lib/cmake/zsclip/zsclipConfigVersion.cmake"
test -f "$prefix/include/zsclip/classifier.h" && test -f "$prefix/include/zsclip/version.h"
test -x "$prefix/bin/zsclip"
model=$prefix/share/zsclip/models/shapes
test -f "$model/config.json"

cmake -S "$src/tests/packaging" -B "$work/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DZSCLIP_EXAMPLES_DIR="$src/examples" >/dev/null
cmake --build "$work/consumer" -j 2 >/dev/null
out=$("$work/consumer/classify" "$model" "$src/examples/images/red_circle.png" "red circle" "blue star" "green triangle")
echo "$out"
[ "$(echo "$out" | wc -l)" -eq 3 ]
# The in-memory example: a BGR frame with a red disc is a red circle.
out=$("$work/consumer/classify_memory" "$model")
echo "$out"
grep -q "^red frame: red circle " <<<"$out"
# zsclip::core alone links and runs (installed package).
out=$("$work/consumer/core_demo" "$src/examples/images/red_circle.png") && grep -q "^red " <<<"$out"
# The installed tool finds the installed model by default (no --model).
(cd / && "$prefix/bin/zsclip" classify --json --labels "red circle,blue star" "$src/examples/images/red_circle.png" >/dev/null)

# add_subdirectory(zsclip) in another project.
# zsclip's own build folder of this consumer lies beside the main build folder ($build-subdir): at
# the same depth, its compile commands are the main build's, and ccache serves its objects.
rm -rf "$build-subdir"
cmake -S "$src/tests/packaging" -B "$work/subdir" -DCMAKE_BUILD_TYPE=Release -DZSCLIP_SOURCE_DIR="$src" \
  -DZSCLIP_BINARY_DIR="$build-subdir" >/dev/null
cmake --build "$work/subdir" -j 2 --target tokenize_demo core_demo >/dev/null
out=$("$work/subdir/core_demo" "$src/examples/images/red_circle.png") && grep -q "^red " <<<"$out"
"$work/subdir/tokenize_demo" "$src/models/shapes/$(sed -n 's/.*"vocab_file": "\(.*\)".*/\1/p' "$model/config.json")" "a photo of a red circle."
rm -rf "$build-subdir"
echo "packaging: OK"
