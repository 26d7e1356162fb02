"""Servo protocol codecs: byte equality with dynamixel-sdk, published vectors, streaming fuzz."""

from __future__ import annotations

import os
import select
import threading
import tty

import dynamixel_sdk as sdk
import pytest
import robotlearn._rt as rt

# Examples printed in the ROBOTIS e-Manual, "DYNAMIXEL Protocol 2.0" (instruction sections).
EMANUAL = {
    "ping": "FF FF FD 00 01 03 00 01 19 4E",
    "ping_status": "FF FF FD 00 01 07 00 55 00 06 04 26 65 5D",
    "read": "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15",
    "write": "FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89",
    "sync_read": "FF FF FD 00 FE 09 00 82 84 00 04 00 01 02 CE FA",
    "sync_write": "FF FF FD 00 FE 11 00 83 74 00 04 00 01 96 00 00 00 02 AA 00 00 00 82 87",
}


def test_crc_and_packets_match_published_examples() -> None:
    c = rt.Codec("dynamixel2")
    for name, hexstr in EMANUAL.items():
        pkt = bytes.fromhex(hexstr)
        assert rt.dxl2_crc16(pkt[:-2]) == int.from_bytes(pkt[-2:], "little"), name
    assert c.ping(1) == bytes.fromhex(EMANUAL["ping"])
    assert c.status(1, 0, bytes([0x06, 0x04, 0x26])) == bytes.fromhex(EMANUAL["ping_status"])
    assert c.read(1, 132, 4) == bytes.fromhex(EMANUAL["read"])
    assert c.write(1, 116, (512).to_bytes(4, "little")) == bytes.fromhex(EMANUAL["write"])
    assert c.sync_read(132, 4, [1, 2]) == bytes.fromhex(EMANUAL["sync_read"])
    data = (150).to_bytes(4, "little") + (170).to_bytes(4, "little")
    assert c.sync_write(116, 4, [1, 2], data) == bytes.fromhex(EMANUAL["sync_write"])
    # Feetech manual examples: PING id 1; READ id 1, 2 bytes at 0x38 (present position).
    f = rt.Codec("feetech")
    assert f.ping(1) == bytes.fromhex("FF FF 01 02 01 FB")
    assert f.read(1, 0x38, 2) == bytes.fromhex("FF FF 01 04 02 38 02 BE")
    assert rt.feetech_checksum(bytes.fromhex("01 04 02 38 02")) == 0xBE


class _SdkCapture:
    """dynamixel-sdk's PortHandler on a pty slave; we read what it writes from the master."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave = slave
        self.port = sdk.PortHandler(os.ttyname(slave))
        assert self.port.openPort()
        self.ph = sdk.PacketHandler(2.0)

    def take(self) -> bytes:
        """What the SDK wrote since the last call (tx-only calls leave its port marked busy: clear it)."""
        self.port.is_using = False
        out = b""
        while select.select([self.master], [], [], 0.02)[0]:
            out += os.read(self.master, 4096)
        return out

    def close(self) -> None:
        self.port.closePort()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def cap():
    c = _SdkCapture()
    yield c
    c.close()


@pytest.mark.parametrize("params", [[0x84, 0, 4, 0], [0x74, 0, 0xFF, 0xFF]])
def test_instruction_bytes_equal_dynamixel_sdk(cap: _SdkCapture, params: list[int]) -> None:
    c = rt.Codec("dynamixel2")
    ph, port = cap.ph, cap.port
    addr = params[0] | params[1] << 8
    # READ (tx only) and WRITE (tx only)
    ph.readTx(port, 3, addr, 4)
    assert cap.take() == c.read(3, addr, 4)
    ph.writeTxOnly(port, 5, addr, 4, params)
    assert cap.take() == c.write(5, addr, bytes(params))
    # SYNC_READ and FAST_SYNC_READ
    gsr = sdk.GroupSyncRead(port, ph, 132, 10)
    for i in (1, 2, 3, 253):
        gsr.addParam(i)
    gsr.txPacket()
    assert cap.take() == c.sync_read(132, 10, [1, 2, 3, 253])
    gsr.fastSyncReadTxPacket()
    assert cap.take() == c.fast_sync_read(132, 10, [1, 2, 3, 253])
    # SYNC_WRITE
    gsw = sdk.GroupSyncWrite(port, ph, addr, 4)
    for i in (1, 2, 6):
        gsw.addParam(i, [(p + i) & 0xFF for p in params[:3]] + [params[3]])
    gsw.txPacket()
    data = b"".join(bytes([(p + i) & 0xFF for p in params[:3]] + [params[3]]) for i in (1, 2, 6))
    assert cap.take() == c.sync_write(addr, 4, [1, 2, 6], data)


def test_byte_stuffing_equals_sdk_stuffing_routine() -> None:
    """FF FF FD inside INST..PARAMS gets an extra FD (e-Manual "Byte Stuffing").

    dynamixel-sdk's txPacket() discards addStuffing()'s return value, so on the wire the Python SDK sends
    such packets unstuffed (off-spec); we compare with its stuffing routine itself instead.
    """
    ph = sdk.PacketHandler(2.0)
    c = rt.Codec("dynamixel2")
    for data in ([0xFF, 0xFF, 0xFD, 0x10], [1, 0xFF, 0xFF, 0xFD, 0xFF, 0xFF, 0xFD]):
        pkt = [0] * (len(data) + 12)
        pkt[sdk.PKT_ID], pkt[sdk.PKT_INSTRUCTION] = 5, sdk.INST_WRITE
        pkt[sdk.PKT_LENGTH_L] = len(data) + 5
        pkt[sdk.PKT_PARAMETER0:sdk.PKT_PARAMETER0 + 2] = [0x74, 0]
        pkt[sdk.PKT_PARAMETER0 + 2:sdk.PKT_PARAMETER0 + 2 + len(data)] = data
        stuffed = ph.addStuffing(pkt)
        stuffed[0:4] = [0xFF, 0xFF, 0xFD, 0x00]
        total = stuffed[sdk.PKT_LENGTH_L] + 7
        crc = ph.updateCRC(0, stuffed, total - 2)
        expected = bytes(stuffed[:total - 2]) + crc.to_bytes(2, "little")
        ours = c.write(5, 0x74, bytes(data))
        assert ours == expected
        (sid, instr, _err, params), = c.decoder().feed(ours)  # and unstuffed again on the way in
        assert (sid, instr, params) == (5, sdk.INST_WRITE, bytes([0x74, 0] + data))


def test_ping_bytes_and_sdk_parses_our_status(cap: _SdkCapture) -> None:
    """The SDK pings through the pty; we answer with our encoder; it must read model 1020 back."""
    c = rt.Codec("dynamixel2")
    seen: list[bytes] = []

    def answer() -> None:
        got = b""
        while len(got) < 10 and select.select([cap.master], [], [], 1.0)[0]:
            got += os.read(cap.master, 64)
        seen.append(got)
        os.write(cap.master, c.status(7, 0, (1020).to_bytes(2, "little") + bytes([46])))

    t = threading.Thread(target=answer)
    t.start()
    model, result, error = cap.ph.ping(cap.port, 7)
    t.join()
    assert seen[0] == c.ping(7)
    assert (model, result, error) == (1020, sdk.COMM_SUCCESS, 0)


def test_decoder_parses_sdk_built_status_packets(cap: _SdkCapture) -> None:
    """Status packets assembled by the SDK's own framing (header, stuffing, CRC) decode, in any chunking."""
    payloads = [b"", bytes([1, 2, 3, 4]), bytes([0xFF, 0xFF, 0xFD, 0x00, 9]), bytes(range(200))]
    stream = b""
    for k, pl in enumerate(payloads):
        pkt = [0] * (len(pl) + 11)
        pkt[sdk.PKT_ID] = k + 1
        pkt[sdk.PKT_LENGTH_L], pkt[sdk.PKT_LENGTH_H] = (len(pl) + 4) & 0xFF, (len(pl) + 4) >> 8
        pkt[sdk.PKT_INSTRUCTION] = 0x55
        pkt[sdk.PKT_ERROR] = 0x80 if k == 2 else 0
        pkt[sdk.PKT_PARAMETER0 + 1:sdk.PKT_PARAMETER0 + 1 + len(pl)] = list(pl)
        assert cap.ph.txPacket(cap.port, pkt) == sdk.COMM_SUCCESS
        stream += b"\x00\x13" + cap.take()  # line noise between packets
    for chunk in (1, 3, 64):
        dec = rt.Codec("dynamixel2").decoder()
        out = []
        for i in range(0, len(stream), chunk):
            out += dec.feed(stream[i:i + chunk])
        assert [(o[0], o[1], o[2], o[3]) for o in out] == [
            (k + 1, 0x55, 0x80 if k == 2 else 0, pl) for k, pl in enumerate(payloads)]
        assert dec.counters()["garbage_runs"] == len(payloads)


def test_fast_sync_read_status_roundtrip() -> None:
    """One status for all servos: [err id data crc] per servo, the last CRC being the packet's."""
    c = rt.Codec("dynamixel2")
    data = bytes(range(12))
    pkt = c.fast_sync_status([3, 7, 9], [0, 0, 0x80], data, 4)
    assert len(pkt) == 8 + 3 * (4 + 4)
    (sid, instr, err, params), = c.decoder().feed(pkt)
    assert (sid, instr, err) == (0xFE, 0x55, 0)
    # params start at the first id; the stride per servo is err + id + data + crc = 8 bytes
    assert (params[0], params[1:5]) == (3, data[0:4])
    assert (params[7], params[8], params[9:13]) == (0, 7, data[4:8])
    assert (params[15], params[16], params[17:21]) == (0x80, 9, data[8:12])


def test_fuzz_one_million_streams_per_decoder() -> None:
    """>= 1e6 random + mutated streams through each decoder (the loop runs in C++)."""
    for protocol in ("dynamixel2", "feetech"):
        r = rt.fuzz_decoder(protocol, 1_000_000, seed=7)
        assert r["streams"] == 1_000_000
        assert r["mutated_frames"] > 300_000 and r["unmutated_frames"] > 1_000_000
        if protocol == "dynamixel2":
            # CRC-16: untouched frames always come back (a corrupt length may, ~2^-16 of the time, pass
            # CRC over the bytes of the next frame and swallow it) and every damaged frame is counted.
            assert r["missed"] <= 1e-5 * r["unmutated_frames"]
            assert r["streams_short_counted"] == 0
            assert r["random_frames"] == 0
        else:
            # An 8-bit checksum lets ~1/256 of length-corrupting mutations through; that is the protocol.
            assert r["missed"] <= 0.01 * r["unmutated_frames"]
            assert r["streams_short_counted"] <= 1e-3 * r["streams"]
        assert r["error_events"] >= r["mutated_frames"]
