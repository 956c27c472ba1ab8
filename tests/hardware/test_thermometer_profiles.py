"""Parsers of every thermometer profile: random bytes never crash them and never yield a
temperature that was not sent, however frames are split or interleaved with garbage."""

from __future__ import annotations

import pytest
from checkpost.hardware.thermometer import AsciiLine, BinaryFramed, ModbusRTU, crc16_modbus
from hypothesis import given, settings
from hypothesis import strategies as st

PROFILES = [AsciiLine, ModbusRTU, BinaryFramed]
temps = st.floats(min_value=30.0, max_value=45.0).map(lambda v: round(v, 1))


def test_crc16_modbus_known_vector() -> None:
    # read holding register 0 of slave 1: the CRC every Modbus tool prints for this request
    assert ModbusRTU().request() == bytes.fromhex("010300000001840a")
    assert crc16_modbus(b"123456789") == 0x4B37


@pytest.mark.parametrize("cls", PROFILES)
def test_round_trip_whole_and_bytewise(cls) -> None:
    values = [36.5, 37.3, 35.0, 42.9]
    wire = b"".join(cls().encode(v) for v in values)
    assert [s.value for s in cls().feed(wire)] == values
    p = cls()
    got = [s.value for i in range(len(wire)) for s in p.feed(wire[i : i + 1])]
    assert got == values


@pytest.mark.parametrize("cls", PROFILES)
@given(data=st.binary(max_size=512))
def test_random_bytes_never_crash(cls, data: bytes) -> None:
    p = cls()
    for s in p.feed(data):
        assert isinstance(s.value, float)


def _chunks(draw_split: list[int], wire: bytes) -> list[bytes]:
    cuts = sorted({c % (len(wire) + 1) for c in draw_split})
    out, prev = [], 0
    for c in [*cuts, len(wire)]:
        out.append(wire[prev:c])
        prev = c
    return out


@pytest.mark.parametrize("cls", [ModbusRTU, BinaryFramed])
@settings(max_examples=150)
@given(
    values=st.lists(temps, max_size=8),
    garbage=st.lists(st.binary(max_size=24), max_size=9),
    splits=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_checked_profiles_never_invent_a_reading(cls, values, garbage, splits) -> None:
    enc = cls()
    wire = b""
    for i, v in enumerate(values):
        wire += garbage[i] if i < len(garbage) else b""
        wire += enc.encode(v)
    wire += garbage[len(values)] if len(garbage) > len(values) else b""
    p = cls()
    got = [s.value for chunk in _chunks(splits, wire) for s in p.feed(chunk)]
    assert set(got) <= set(values)
    if not any(garbage):
        assert got == values


@settings(max_examples=150)
@given(
    values=st.lists(temps, max_size=8),
    garbage=st.lists(st.binary(max_size=24).map(lambda b: b.replace(b"\n", b"")), max_size=9),
    splits=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_ascii_never_invents_a_reading(values, garbage, splits) -> None:
    """ASCII lines carry no checksum: garbage is only recognisable as a malformed line, so
    garbage here ends its own line (a device's noise burst ends with the next CR LF)."""
    enc = AsciiLine()
    wire = b""
    for i, v in enumerate(values):
        if i < len(garbage) and garbage[i]:
            wire += garbage[i] + b"\r\n"
        wire += enc.encode(v)
    p = AsciiLine()
    got = [s.value for chunk in _chunks(splits, wire) for s in p.feed(chunk)]
    assert set(got) <= set(values)


def test_bad_checksum_is_counted_and_resynced() -> None:
    p = BinaryFramed()
    good = p.encode(36.6)
    bad = bytearray(good)
    bad[-1] ^= 1
    got = p.feed(bytes(bad) + good)
    assert [s.value for s in got] == [36.6]
    assert p.stats.bad_checksums == 1
    m = ModbusRTU()
    frame = bytearray(m.encode(37.0))
    frame[4] ^= 0x10
    assert m.feed(bytes(frame) + m.encode(36.1)) == [m.feed(m.encode(36.1))[0]]
    assert m.stats.bad_checksums >= 1


def test_fahrenheit_frames_keep_their_unit() -> None:
    assert AsciiLine().feed(b"T=98.6F\r\n")[0].unit == "F"
    assert BinaryFramed("F").feed(BinaryFramed("F").encode(98.6))[0].unit == "F"
    assert ModbusRTU("F").feed(ModbusRTU("F").encode(98.6))[0].unit == "F"
