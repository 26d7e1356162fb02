"""Serial port discovery for servo buses (pyserial's list_ports), with USB-adapter hints.

Picking "/dev/ttyUSB0" by hand breaks as soon as a second adapter is plugged in; matching on the
adapter's USB vendor/product id finds the servo bus wherever the kernel enumerated it. FTDI adapters
(the U2D2 among them) also hold bytes for `latency_timer` ms (16 by default), which alone caps a
servo loop near 30 Hz, so it is reported here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

#: where Linux's usb-serial driver exposes each FTDI port's settings (ttyUSB0/latency_timer, ...)
USB_SERIAL_SYSFS = Path("/sys/bus/usb-serial/devices")

# (vid, pid) -> adapter, for the USB-serial chips servo interfaces use.
KNOWN_ADAPTERS: dict[tuple[int, int], str] = {
    (0x0403, 0x6014): "ROBOTIS U2D2 (FTDI FT232H)",
    (0x0403, 0x6001): "FTDI FT232R (USB2Dynamixel and clones)",
    (0x0403, 0x6015): "FTDI FT231X",
    (0x1A86, 0x7523): "CH340 (Feetech/Waveshare bus adapters)",
    (0x1A86, 0x55D3): "CH343 (Feetech/Waveshare bus adapters)",
    (0x10C4, 0xEA60): "Silicon Labs CP210x",
    (0x16D0, 0x06A7): "ROBOTIS OpenRB-150",
}


@dataclass(frozen=True)
class PortInfo:
    device: str
    description: str
    hwid: str
    vid: int | None
    pid: int | None
    serial_number: str | None
    adapter: str | None          # a KNOWN_ADAPTERS match, else None
    latency_timer_ms: int | None  # FTDI only


def latency_timer_ms(device: str, sysfs: Path = USB_SERIAL_SYSFS) -> int | None:
    """FTDI latency timer (ms) from sysfs, or None when the port has none (not FTDI, pty, other OS)."""
    node = Path(sysfs) / Path(device).name / "latency_timer"
    try:
        return int(node.read_text().strip())
    except (OSError, ValueError):
        return None


def list_serial_ports(comports: Iterable[ListPortInfo] | None = None, sysfs: Path = USB_SERIAL_SYSFS
                      ) -> list[PortInfo]:
    """Every serial port the OS reports (pyserial's comports(), unless given), known servo adapters first."""
    out = []
    for p in list_ports.comports() if comports is None else comports:
        adapter = KNOWN_ADAPTERS.get((p.vid, p.pid)) if p.vid is not None else None
        out.append(PortInfo(p.device, p.description or "", p.hwid or "", p.vid, p.pid, p.serial_number, adapter,
                            latency_timer_ms(p.device, sysfs)))
    return sorted(out, key=lambda i: (i.adapter is None, i.device))


def find_servo_port(serial_number: str | None = None, comports: Iterable[ListPortInfo] | None = None,
                    sysfs: Path = USB_SERIAL_SYSFS) -> str:
    """The one servo adapter present (optionally by USB serial number); a clear error otherwise."""
    every = list_serial_ports(comports, sysfs)
    ports = [p for p in every if p.adapter is not None]
    if serial_number is not None:
        ports = [p for p in ports if p.serial_number == serial_number]
    if not ports:
        seen = ", ".join(p.device for p in every) or "none"
        raise RuntimeError(f"no servo bus adapter found (serial ports seen: {seen}); pass port=... explicitly")
    if len(ports) > 1:
        names = ", ".join(f"{p.device} ({p.adapter}, serial {p.serial_number})" for p in ports)
        raise RuntimeError(f"several servo adapters found: {names}; pass port=... or serial_number=...")
    return ports[0].device


class PortError(ValueError):
    """A serial port that cannot be a servo bus or telemetry link, said in one line."""


def check_port(port: str) -> None:
    """Fail early and clearly on a port that does not exist, is a regular file, or is not a terminal.

    The C++ transport would fail too, but with errno text; this names the likely mistake and the fix.
    """
    path = Path(port)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        seen = ", ".join(p.device for p in list_serial_ports()) or "none"
        raise PortError(f"port {port} does not exist (serial ports seen: {seen}; an emulator's link appears only "
                        "while `robotlearn emulate ...` runs)") from None
    except PermissionError:
        raise PortError(f"port {port}: permission denied (add yourself to the 'dialout' group)") from None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        raise PortError(f"port {port} is a {'directory' if stat.S_ISDIR(mode) else 'regular file'}, "
                        "not a serial device")
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as err:
        raise PortError(f"port {port}: cannot open ({err.strerror})") from None
    try:
        if not os.isatty(fd):
            raise PortError(f"port {port} is not a serial device (not a tty)")
    finally:
        os.close(fd)
