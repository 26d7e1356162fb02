"""Real-time bounds on a virtual machine that sometimes is not there.

What stalls a real-time thread here (measured with robotlearn/core/stall_probe.py: one top-priority
SCHED_FIFO thread per CPU that does nothing but wake every 2-10 ms, 15 s windows on this 2-core VM, the
same load giving different figures minutes apart):
- idle: wake-ups 0.3-7 ms late (a halted virtual CPU waits for the host to run it again);
- two user-space busy loops: in one stretch 8-12 holds of ~19 ms per 15 s on *both* CPUs at once (the host
  held the whole VM; steal 0.6 %), in the next one none over 3 ms;
- the C++ build or a page-fault-heavy load: holds of 3-28 ms with steal as low as 0.1-0.3 %.
Nothing of ours can delay that probe, so its holds are the machine's. In them a SCHED_FIFO thread cannot run
at all: CI saw the emulator's physics lag p99 2.5 ms (max 42 ms) and its reply lateness p99 370 us in such
windows, with 0.9-1.7 % steal. Steal alone did not tell them apart from quiet ones (1.2 % passed).

So a timing check is split in two. `measure()` runs the work and asserts what the code owns (its counts,
its own work per cycle, its medians), on any machine. `bounds(result)` asserts the real-time bounds, and
they are never relaxed: a window that misses them on a quiet machine fails the test at once. One that
misses them while the probes saw the machine hold a CPU for `HOLD_S` or more (or steal `MAX_STEAL`) is
measured again after a pause; if every attempt was disturbed, the test says so in a warning with the
probe's evidence instead of blaming the code for the host.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import TypeVar

from robotlearn.core.machine import MachineSample
from robotlearn.core.stall_probe import StallProbes

T = TypeVar("T")
HOLD_S = 0.005  # 2.5 periods of the 500 Hz loop; CI's failed windows held the CPUs 30-42 ms
MAX_STEAL = 0.01
PAUSE_S = 5.0  # disturbed stretches came and went within about a minute


def on_a_quiet_machine(measure: Callable[[], T], bounds: Callable[[T], None], tries: int = 3) -> T:
    """`measure()`, then `bounds(result)`, with the attempts and verdicts described above."""
    for i in range(1, tries + 1):
        machine = MachineSample()
        with StallProbes() as probes:
            result = measure()
        machine.finish()
        evidence = f"{probes.report.describe()}; the hypervisor stole {100 * machine.steal_fraction:.1f} %"
        try:
            bounds(result)
            return result
        except AssertionError as e:
            where = f"attempt {i}/{tries}: {evidence}"
            if probes.report.max_late_s < HOLD_S and machine.steal_fraction < MAX_STEAL:
                raise AssertionError(f"{e}\n(on a quiet machine, {where})") from e
            print(f"real-time bound missed on a disturbed machine ({where}): {e}")
            if i < tries:
                time.sleep(PAUSE_S)
    warnings.warn(f"real-time bounds not judged: the machine held its CPUs in all {tries} attempts "
                  f"(last: {evidence})", stacklevel=2)
    return result
