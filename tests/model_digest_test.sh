#!/bin/bash
# tools/model_digest.py: its folder digest is the coreutils pipeline the README gives, --expect
# accepts the right digest and refuses (exit 1) a folder with one changed byte, an extra or a missing
# file; a symbolic link is refused (exit 2).
#   bash tests/model_digest_test.sh PYTHON SOURCE_DIR WORK_DIR
set -u
PY=$1 SRC=$2 WORK=$3
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL: $1"; fail=1; fi; }
rm -rf "$WORK" && mkdir -p "$WORK" && cp -r "$SRC/models/shapes" "$WORK/m" || exit 1
TOOL="$PY $SRC/tools/model_digest.py"
want=$( (cd "$WORK/m" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' sha256sum) \
        | sha256sum | cut -d' ' -f1)
got=$($TOOL "$WORK/m" --quiet)
check "digest equals the coreutils pipeline ($got)" '[ "$got" = "$want" ] && [ ${#got} = 64 ]'
check "--expect the right digest: exit 0" "$TOOL '$WORK/m' --expect $want >/dev/null 2>&1"
printf '\x01' | dd of="$WORK/m/projection.pt" bs=1 seek=100 conv=notrunc status=none
$TOOL "$WORK/m" --expect "$want" >/dev/null 2>"$WORK/err"; rc=$?
check "one changed byte: exit 1 naming MISMATCH (rc $rc)" '[ $rc = 1 ] && grep -q MISMATCH "$WORK/err"'
rm -rf "$WORK/m" && cp -r "$SRC/models/shapes" "$WORK/m"
echo extra > "$WORK/m/extra.txt"
$TOOL "$WORK/m" --expect "$want" >/dev/null 2>&1; rc=$?
check "an extra file: exit 1 (rc $rc)" '[ $rc = 1 ]'
rm "$WORK/m/extra.txt" "$WORK/m/README.md"
$TOOL "$WORK/m" --expect "$want" >/dev/null 2>&1; rc=$?
check "a missing file: exit 1 (rc $rc)" '[ $rc = 1 ]'
ln -s "$SRC/models/shapes/README.md" "$WORK/m/README.md"
$TOOL "$WORK/m" >/dev/null 2>"$WORK/err"; rc=$?
check "a symbolic link: exit 2 naming it (rc $rc)" '[ $rc = 2 ] && grep -q "symbolic link" "$WORK/err"'
exit $fail
