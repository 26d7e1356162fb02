"""PyBullet's C API (the b3* functions its extension module exports) for the compiled per-tick drive.

`_rt.PybulletStepper` calls the same physics-client functions the `pybullet` module calls, on the client
handle that module keeps for a connection id. The module keeps those handles in a file-local table
(`sPhysicsClients1`), which no API returns, so its address is read from the extension's ELF symbol
table (the PyPI wheels ship unstripped) and located in memory relative to an exported function.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import struct
from pathlib import Path

import numpy as np
import pybullet as pb

from robotlearn import _rt

#: PybulletApi field -> exported b3* function
FUNCTIONS = {
    "can_submit": "b3CanSubmitCommand",
    "submit": "b3SubmitClientCommandAndWaitStatus",
    "init_step": "b3InitStepSimulationCommand",
    "request_state": "b3RequestActualStateCommandInit",
    "status_state": "b3GetStatusActualState",
    "joint_control_init": "b3JointControlCommandInit2",
    "set_force_torque": "b3JointControlSetDesiredForceTorque",
    "mass_matrix_init": "b3CalculateMassMatrixCommandInit",
    "mass_matrix_flags": "b3CalculateMassMatrixSetFlags",
    "status_mass_matrix": "b3GetStatusMassMatrix",
    "inverse_dynamics_init": "b3CalculateInverseDynamicsCommandInit2",
    "inverse_dynamics_flags": "b3CalculateInverseDynamicsSetFlags",
    "status_inverse_dynamics": "b3GetStatusInverseDynamicsJointForces",
}
CLIENT_TABLE = "sPhysicsClients1"
MAX_CLIENTS = 1024  # the table's length in pybullet.c
ANCHOR = "b3CanSubmitCommand"  # exported, so its run-time address gives the load base


@functools.cache
def _library() -> ctypes.CDLL:
    return ctypes.CDLL(pb.__file__)  # already loaded: the same handle, so the same functions and tables


def _address(name: str) -> int:
    return ctypes.cast(getattr(_library(), name), ctypes.c_void_p).value


_SYMBOL = np.dtype([("name", "<u4"), ("info", "u1"), ("other", "u1"), ("shndx", "<u2"), ("value", "<u8"),
                    ("size", "<u8")])


def _symbol_values(path: Path, names: tuple[str, ...]) -> dict[str, int]:
    """st_value of each named symbol in the ELF64 .symtab of `path` (local symbols included)."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _find_symbols(path, data, names)


def _find_symbols(path: Path, data: mmap.mmap, names: tuple[str, ...]) -> dict[str, int]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise RuntimeError(f"{path} is not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    symtab = next((s for s in sections if s[1] == 2), None)  # SHT_SYMTAB
    if symtab is None:
        raise RuntimeError(f"{path} has no symbol table (stripped build): the compiled PyBullet drive cannot "
                           "find the module's physics clients; install the PyPI pybullet wheel")
    strtab = sections[symtab[6]]
    strings = data[strtab[4]:strtab[4] + strtab[5]]
    symbols = np.frombuffer(data[symtab[4]:symtab[4] + symtab[5]], _SYMBOL)
    found = {}
    for name in names:
        key, offsets, at = name.encode() + b"\0", [], -1
        while (at := strings.find(key, at + 1)) >= 0:  # linkers may share a string's tail between names
            offsets.append(at)
        match = symbols["value"][np.isin(symbols["name"], offsets)]
        if len(match) != 1:
            raise RuntimeError(f"{path}: symbol {name!r} not found once in its symbol table")
        found[name] = int(match[0])
    return found


@functools.cache
def _client_table_address() -> int:
    values = _symbol_values(Path(pb.__file__), (CLIENT_TABLE, ANCHOR))
    return _address(ANCHOR) - values[ANCHOR] + values[CLIENT_TABLE]


def api() -> _rt.PybulletApi:
    """Addresses of the b3* functions `_rt.PybulletStepper` calls."""
    out = _rt.PybulletApi()
    for field, name in FUNCTIONS.items():
        setattr(out, field, _address(name))
    return out


def client_handle(client: int) -> int:
    """The b3PhysicsClientHandle the pybullet module holds for connection `client`."""
    if not 0 <= client < MAX_CLIENTS or not pb.isConnected(physicsClientId=client):
        raise ValueError(f"pybullet client {client} is not connected")
    handle = ctypes.c_void_p.from_address(_client_table_address() + 8 * client).value
    if not handle:
        raise RuntimeError(f"pybullet client {client}: no handle in the module's client table")
    return handle
