"""The CPU latency request is the kernel's: held, the system-wide bound reads back as asked; released, as before."""

from __future__ import annotations

import os
import struct

import pytest

from robotlearn.core.cpu_latency import DEVICE, CpuLatencyRequest


def effective_bound_us() -> int:
    """What the kernel enforces now: the smallest open request (reading the device gives it)."""
    with open(DEVICE, "rb") as f:
        return struct.unpack("=i", f.read(4))[0]


def test_a_held_request_bounds_the_whole_machine_until_released():
    if os.geteuid() != 0:  # the device is 0600 root: the request is refused, and says why
        request = CpuLatencyRequest(0).acquire()
        assert not request.held and "Permission denied" in request.describe()
        return
    before = effective_bound_us()
    with CpuLatencyRequest(20) as loose:
        assert loose.held and effective_bound_us() == min(before, 20)
        with CpuLatencyRequest(0) as tight:
            assert tight.held and effective_bound_us() == 0  # the smallest open request wins
            assert tight.describe() == "CPU wake-up latency held at 0 us"
        assert effective_bound_us() == min(before, 20)
    assert not loose.held and effective_bound_us() == before
    assert loose.describe() == "CPU wake-up latency was held at 20 us"


def test_a_config_without_a_bound_asks_for_nothing():
    request = CpuLatencyRequest(None).acquire()
    assert not request.held and request.describe() == "no CPU latency request (not asked for)"


def test_a_negative_bound_is_an_error():
    with pytest.raises(ValueError, match=">= 0 us"):
        CpuLatencyRequest(-1)
