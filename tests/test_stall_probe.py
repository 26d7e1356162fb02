"""The stall probes (robotlearn/core/stall_probe.py) see a stretch in which their CPU was not theirs.

Stopping one probe process with SIGSTOP for 150 ms is, to that probe, exactly a hold of its CPU: it cannot
run, then wakes late. The report must show it on that CPU and not on the others, and count the wake-ups
the probe period implies.
"""

from __future__ import annotations

import os
import signal
import time

from robotlearn.core.stall_probe import PERIOD_S, StallProbes


def test_a_stopped_probe_reports_the_hold_on_its_own_cpu() -> None:
    probes = StallProbes().start()
    t0 = time.monotonic()
    try:
        time.sleep(0.3)
        os.kill(probes.pids[0], signal.SIGSTOP)
        time.sleep(0.15)
        os.kill(probes.pids[0], signal.SIGCONT)
        time.sleep(0.3)
    finally:
        report = probes.stop()
    seconds = time.monotonic() - t0
    cpus = sorted(os.sched_getaffinity(0))
    assert [c["cpu"] for c in report.cpus] == cpus
    held, *others = report.cpus
    assert 0.14 < held["max_late_s"] < 0.5 and held["stalls"] >= 1
    assert report.max_late_s == held["max_late_s"] and f"CPU {held['cpu']}" in report.describe()
    for c in [held, *others]:
        assert 0.5 * seconds / PERIOD_S < c["wakes"] <= seconds / PERIOD_S + 2
    assert all(c["max_late_s"] < 0.14 for c in others)
