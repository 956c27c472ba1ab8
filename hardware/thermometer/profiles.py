"""Wire protocols of serial infrared thermometers: incremental parsers and encoders.

A parser is fed whatever bytes the port returned (a frame may arrive split, doubled, or
after garbage) and yields the temperatures it is sure of. Each profile resynchronises on
its own framing: the ASCII profile drops a line that does not match exactly, Modbus RTU and
the binary profile slide one byte forward when a CRC or checksum fails. The encoders are
what the simulator sends, so the tests run the same bytes a device puts on the wire.

- ``ascii``: ``T=36.5\\r\\n`` (optionally ``T=97.7F``). No integrity check exists in this
  protocol: a corrupted digit cannot be detected, only malformed lines are.
- ``modbus``: the driver polls *read holding registers* (function 3) for one register;
  the reply carries a signed 16-bit value in tenths of a degree, CRC-16/MODBUS.
- ``binary``: ``AA 55 len payload checksum`` where payload = type 0x01, signed 16-bit
  hundredths of a degree (big-endian), unit byte ``C``/``F``; checksum = sum(len..payload)
  modulo 256.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """A temperature as the device sent it: value in the device's unit ("C" or "F")."""

    value: float
    unit: str


@dataclass
class ParseStats:
    """Counts that tell "no data" from "garbage" in the driver's status."""

    frames: int = 0
    garbage_bytes: int = 0
    bad_checksums: int = 0


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class Profile:
    """Base of the protocol profiles."""

    name = "base"
    polled = False  # True when the driver must send a request for each reading

    def __init__(self, unit: str = "C") -> None:
        self.unit = unit
        self.stats = ParseStats()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Sample]:
        raise NotImplementedError

    def encode(self, value: float, unit: str | None = None) -> bytes:
        raise NotImplementedError

    def request(self) -> bytes:
        return b""

    def reset(self) -> None:
        self._buf.clear()


class AsciiLine(Profile):
    """``T=36.5\\r\\n`` lines; anything else on a line is garbage and the line is dropped."""

    name = "ascii"
    MAX_LINE = 32
    _LINE = re.compile(rb"T=(-?\d{1,3}(?:\.\d{1,2})?)([CF]?)")

    def feed(self, data: bytes) -> list[Sample]:
        out: list[Sample] = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.MAX_LINE:  # no terminator in sight: garbage
                    self.stats.garbage_bytes += len(self._buf)
                    self._buf.clear()
                return out
            line = bytes(self._buf[:nl]).rstrip(b"\r")
            del self._buf[: nl + 1]
            m = self._LINE.fullmatch(line)
            if m is None:
                self.stats.garbage_bytes += len(line) + 1
                continue
            self.stats.frames += 1
            out.append(Sample(float(m.group(1)), m.group(2).decode() or self.unit))

    def encode(self, value: float, unit: str | None = None) -> bytes:
        suffix = "" if unit is None else unit
        return f"T={value:.1f}{suffix}\r\n".encode()


class ModbusRTU(Profile):
    """Function 3 (read holding registers), one register, tenths of a degree."""

    name = "modbus"
    polled = True

    def __init__(self, unit: str = "C", address: int = 1, register: int = 0) -> None:
        super().__init__(unit)
        if not 1 <= address <= 247:
            raise ValueError("Modbus address must be 1-247")
        self.address = address
        self.register = register

    def request(self) -> bytes:
        body = struct.pack(">BBHH", self.address, 3, self.register, 1)
        return body + struct.pack("<H", crc16_modbus(body))

    def feed(self, data: bytes) -> list[Sample]:
        out: list[Sample] = []
        self._buf += data
        while len(self._buf) >= 7:
            if self._buf[0] != self.address or self._buf[1] != 3 or self._buf[2] != 2:
                del self._buf[0]
                self.stats.garbage_bytes += 1
                continue
            frame = bytes(self._buf[:7])
            if struct.unpack("<H", frame[5:7])[0] != crc16_modbus(frame[:5]):
                self.stats.bad_checksums += 1
                del self._buf[0]  # slide: the real frame may start inside this one
                continue
            del self._buf[:7]
            self.stats.frames += 1
            out.append(Sample(struct.unpack(">h", frame[3:5])[0] / 10.0, self.unit))
        return out

    def encode(self, value: float, unit: str | None = None) -> bytes:
        body = struct.pack(">BBBh", self.address, 3, 2, round(value * 10))
        return body + struct.pack("<H", crc16_modbus(body))

    def is_request(self, data: bytes) -> bool:
        return data == self.request()


class BinaryFramed(Profile):
    """``AA 55 len payload checksum`` frames."""

    name = "binary"
    HEADER = b"\xaa\x55"

    def feed(self, data: bytes) -> list[Sample]:
        out: list[Sample] = []
        self._buf += data
        while True:
            start = self._buf.find(self.HEADER)
            if start < 0:
                keep = 1 if self._buf[-1:] == b"\xaa" else 0
                self.stats.garbage_bytes += len(self._buf) - keep
                del self._buf[: len(self._buf) - keep]
                return out
            if start:
                self.stats.garbage_bytes += start
                del self._buf[:start]
            if len(self._buf) < 3:
                return out
            n = self._buf[2]
            if n != 4:  # the only payload this profile defines: type, int16, unit
                self.stats.garbage_bytes += 1
                del self._buf[0]
                continue
            if len(self._buf) < 3 + n + 1:
                return out
            frame = bytes(self._buf[: 4 + n])
            if sum(frame[2 : 3 + n]) % 256 != frame[3 + n]:
                self.stats.bad_checksums += 1
                del self._buf[0]
                continue
            typ, raw, unit = frame[3], struct.unpack(">h", frame[4:6])[0], frame[6:7]
            if typ != 1 or unit not in (b"C", b"F"):
                self.stats.garbage_bytes += 1
                del self._buf[0]
                continue
            del self._buf[: 4 + n]
            self.stats.frames += 1
            out.append(Sample(raw / 100.0, unit.decode()))

    def encode(self, value: float, unit: str | None = None) -> bytes:
        payload = struct.pack(">Bh", 1, round(value * 100)) + (unit or self.unit).encode()
        body = bytes([len(payload)]) + payload
        return self.HEADER + body + bytes([sum(body) % 256])


PROFILES: dict[str, type[Profile]] = {
    "ascii": AsciiLine,
    "modbus": ModbusRTU,
    "binary": BinaryFramed,
}


def make_profile(name: str, unit: str = "C", **kw: int) -> Profile:
    """The profile named in config: ``ascii``, ``modbus`` or ``binary``."""
    try:
        cls = PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown thermometer profile {name!r}; choose from {sorted(PROFILES)}"
        ) from None
    if unit not in ("C", "F"):
        raise ValueError("unit must be 'C' or 'F'")
    return cls(unit, **kw) if kw else cls(unit)
