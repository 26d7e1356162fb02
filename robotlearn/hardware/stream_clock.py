"""Control ticks locked to a vehicle's state stream (`MavlinkOptions.tick_on_telemetry`).

A MAVLink vehicle streams its state on its own clock (PX4: ATTITUDE_QUATERNION, LOCAL_POSITION_NED and
ODOMETRY every 20 ms), and its flight controller takes setpoints on its own cycle. A control loop on a
free-running host clock meets both at whatever phase the session started with: the state a step reads is
0 to one stream period old, and a setpoint waits 0 to one controller cycle, both fixed per session and
different in every session. Replaying gap-free emulator sessions in the sim, a fitted latency came out
0, 9.5 and 19.6 ms for one and the same vehicle. A sim's step reads the state at the tick and applies the
command at once, so the real loop should do the same: tick just after a sample arrives. Then each step
reads a fresh sample and a setpoint lands at the same point of the controller's cycle in every session.

Kept apart from the MAVLink driver because it is about time, not protocol: the receive thread calls
`part_arrived` (under the driver's state lock) and `advance()` calls `tick`.
"""

from __future__ import annotations

import threading
import time

#: a part arriving this soon (fraction of a control period) after a complete sample belongs to that sample
SAME_SAMPLE = 0.2
#: a tick fires on its sample's arrival from this long before its due time (fraction of a period) ...
FRESH = 0.25
#: ... to this long after it (then it fires without one)
MAX_WAIT = 0.75


class StreamClock:
    """Arrival times of a state stream made of `parts` (messages that together give one sample)."""

    def __init__(self, dt: float, parts: tuple[str, ...], lock: threading.Lock):
        self.dt = dt
        self._arrival = threading.Condition(lock)
        self._part_rx = dict.fromkeys(parts, 0.0)
        #: smoothed interval between complete samples (s); inf until two have arrived
        self.period = float("inf")
        #: when the newest complete sample arrived (monotonic s)
        self.sample_rx = 0.0
        self._used = 0.0  # arrival time of the sample the latest tick fired on

    def part_arrived(self, part: str, now: float) -> None:
        """A message carrying `part` arrived at `now` (caller holds the lock). Once every part is newer than
        the last complete sample, a new sample is complete: update the period and wake a waiting tick."""
        self._part_rx[part] = now
        if min(self._part_rx.values()) <= self.sample_rx:
            return
        if now - self.sample_rx < SAME_SAMPLE * self.dt:  # the same sample in another message (PX4's ODOMETRY)
            if self._used == self.sample_rx:
                self._used = now  # ... which a tick has already used
            self.sample_rx = now
            return
        if self.sample_rx:
            interval = now - self.sample_rx
            self.period = interval if self.period == float("inf") else 0.9 * self.period + 0.1 * interval
        self.sample_rx = now
        self._arrival.notify_all()

    def tick(self, due: float) -> tuple[float, float] | None:
        """Wait for the sample of the tick due at `due`; returns (when the tick fires, the time its successor
        is due from), or None when the stream is slower than the control rate (the caller keeps its clock).

        The tick fires as the first sample not used by an earlier tick arrives, no sooner than a quarter
        period before `due` and no later than 0.75 period after it (then late, without one). Its successor
        is due one period after that arrival, so ticks stay on the stream's phase. Firing on arrival rather
        than at `due` leaves the setpoint the most time to reach the flight controller before its next
        cycle: under two CPU hogs, ticks held to `due` read samples up to 5 ms old (p90)."""
        with self._arrival:
            if self.period > 1.1 * self.dt:
                return None
            earliest, deadline = due - FRESH * self.dt, due + MAX_WAIT * self.dt
            while True:
                now = time.monotonic()
                if self.sample_rx > self._used and now >= earliest:
                    self._used = self.sample_rx
                    return now, self.sample_rx
                if now >= deadline:
                    return now, due
                wake = earliest if self.sample_rx > self._used else deadline
                self._arrival.wait(timeout=wake - now)

    def age(self, now: float) -> float:
        """Age of the newest complete sample at `now` (s)."""
        with self._arrival:
            return now - self.sample_rx if self.sample_rx else float("inf")
