#!/usr/bin/env bash
# clang-format (Debian's clang-format-14, style in .clang-format) over every C++ file git tracks.
#   tools/format.sh           reformat in place
#   tools/format.sh --check   list the files that are not formatted and exit 1 (tools/test.sh runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
cf=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$cf" ]; then
  echo "tools/format.sh: clang-format-14 is not installed (tools/setup.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.hpp')
if [ "${1:-}" = "--check" ]; then
  bad=()
  for f in "${files[@]}"; do
    if ! "$cf" --style=file "$f" | cmp -s - "$f"; then bad+=("$f"); fi
  done
  if ((${#bad[@]})); then
    echo "tools/format.sh: ${#bad[@]} file(s) are not clang-formatted (run tools/format.sh):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "tools/format.sh: ${#files[@]} C++ files are clang-formatted"
else
  "$cf" --style=file -i "${files[@]}"
fi
