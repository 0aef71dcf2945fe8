#!/usr/bin/env python3
"""Lists the tests that ctest skipped, each with the reason it gave, from ctest's JUnit report
(`ctest --output-junit FILE`). ctest itself only says "Skipped": a test that skips on one CPU (no
AVX512_BF16, no VNNI) or without ../shared must say why in the test command's output.

    ctest --test-dir build --output-junit ctest-junit.xml && tools/ctest_skips.py build/ctest-junit.xml
"""
import sys
import xml.etree.ElementTree as ET


def reason_of(output):
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.endswith(": Skipped") and i + 1 < len(lines):  # GTEST_SKIP() << reason
            return lines[i + 1]
    for line in lines:  # scripts that exit 77 print "skipped: why" (or "skip ...")
        if line.lower().startswith("skip"):
            return line
    return lines[-1] if lines else "(no output)"


def main():
    found = []
    for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
        if case.get("status") == "notrun" or case.find("skipped") is not None:
            found.append((case.get("name"), reason_of(case.findtext("system-out") or "")))
    if found:
        print(f"==== ctest: {len(found)} test(s) skipped, with the reason each gave:")
        for name, why in found:
            print(f"  {name}: {why}")


if __name__ == "__main__":
    main()
