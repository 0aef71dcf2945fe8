#!/usr/bin/env python3
"""Lists the tests that were skipped, each with the reason it gave. ctest itself only says
"Skipped", and a gtest binary runs as one ctest test (tests/CMakeLists.txt), so two sources are read:
ctest's JUnit report (`ctest --output-junit FILE`: the scripts that exit 77) and the gtest XML
reports the binaries write into gtest-reports/ next to it (GTEST_SKIP() << reason). A test that
skips on one CPU (no AVX512_BF16, no VNNI) or without ../shared must say why in the test command's
output.

    ctest --test-dir build --output-junit ctest-junit.xml && tools/ctest_skips.py build/ctest-junit.xml
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET


def reason_of(output):
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:  # scripts that exit 77 print "skipped: why" (or "skip ...")
        if line.lower().startswith("skip"):
            return line
    return lines[-1] if lines else "(no output)"


def ctest_skips(junit):
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.get("status") == "notrun" or case.find("skipped") is not None:
            yield case.get("name"), reason_of(case.findtext("system-out") or "")


def gtest_skips(report):
    try:
        root = ET.parse(report).getroot()
    except ET.ParseError as e:  # a binary that crashed mid-run leaves no or half a report
        yield os.path.basename(report), f"(unreadable gtest report: {e})"
        return
    for case in root.iter("testcase"):
        skipped = case.find("skipped")
        if case.get("result") == "skipped" or skipped is not None:
            message = skipped.get("message", "") if skipped is not None else ""
            # gtest puts "file:line\n" before the streamed reason
            reason = message.split("\n", 1)[-1].strip() or "(no reason given)"
            test = os.path.splitext(os.path.basename(report))[0]  # the ctest test (binary or shard)
            yield f"{test}: {case.get('classname')}.{case.get('name')}", reason


def main():
    junit = sys.argv[1]
    found = list(ctest_skips(junit))
    reports = os.path.join(os.path.dirname(os.path.abspath(junit)), "gtest-reports")
    for report in sorted(glob.glob(os.path.join(reports, "*.xml"))):
        found.extend(gtest_skips(report))
    if found:
        print(f"==== ctest: {len(found)} test(s) skipped, with the reason each gave:")
        for name, why in found:
            print(f"  {name}: {why}")


if __name__ == "__main__":
    main()
