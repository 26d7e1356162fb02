"""Reads a verbose pip/scikit-build log on stdin and shows the C++ build as a progress bar with an ETA.

Ninja prints "[k/n] Building CXX object ..." per step; everything else is kept in the log file only.
"""

import re
import sys
import time

STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]\s+(.*)")
start, shown = time.monotonic(), False
for line in sys.stdin:
    match = STEP.match(line)
    if not match:
        continue
    done, total, what = int(match[1]), int(match[2]), match[3]
    elapsed = time.monotonic() - start
    eta = elapsed / done * (total - done) if done else 0.0
    bar = "#" * (30 * done // total)
    name = what.rsplit("/", 1)[-1][:40]
    end = "\n" if not sys.stderr.isatty() else "\r"
    sys.stderr.write(f"robotlearn setup: C++ core [{bar:<30}] {done}/{total}  {elapsed:4.0f} s, ETA {eta:4.0f} s  {name:<40}{end}")
    sys.stderr.flush()
    shown = True
if shown:
    sys.stderr.write("\n")
