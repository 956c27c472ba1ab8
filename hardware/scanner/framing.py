"""Turning a hand-held scanner's character stream into codes.

Scanners "type" a code and end it with a suffix (Enter by default); some send a prefix,
some send nothing and are framed by a pause. Many can also send the AIM symbology
identifier (``]Q1`` QR, ``]C0`` Code 128), which tells the format: when present it is
stripped and used, so scanner reads carry a format like camera reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AIM_FORMATS = {"]Q": "QR", "]C": "Code128"}


@dataclass
class Framer:
    """Frame codes by prefix/suffix, and by an inter-character ``timeout_s`` when set."""

    prefix: str = ""
    suffix: str = "\r"
    timeout_s: float | None = 0.1
    max_len: int = 4096
    aim: bool = True
    _buf: list[str] = field(default_factory=list)
    _last: float = 0.0

    def feed(self, text: str, now: float) -> list[tuple[str, str]]:
        """Feed characters; returns completed (text, format) codes."""
        out = self.flush(now)
        for ch in text:
            if ch == "\n" and self.suffix == "\r":  # CR LF: the LF belongs to the suffix
                continue
            self._buf.append(ch)
            self._last = now
            joined = "".join(self._buf)
            if self.suffix and joined.endswith(self.suffix):
                code = joined[: -len(self.suffix)]
                self._buf.clear()
                got = self._finish(code)
                if got is not None:
                    out.append(got)
            elif len(self._buf) > self.max_len:
                self._buf.clear()
        return out

    def flush(self, now: float) -> list[tuple[str, str]]:
        """Codes completed by a pause (scanners configured without a suffix)."""
        if self._buf and self.timeout_s is not None and now - self._last > self.timeout_s:
            code = "".join(self._buf)
            self._buf.clear()
            if not self.suffix:
                got = self._finish(code)
                return [got] if got is not None else []
            # a suffix was expected and never came: a partial code, drop it
        return []

    def _finish(self, code: str) -> tuple[str, str] | None:
        if self.prefix:
            i = code.find(self.prefix)
            if i < 0:
                return None
            code = code[i + len(self.prefix) :]
        fmt = "unknown"
        if self.aim and len(code) >= 3 and code[:2] in AIM_FORMATS:
            fmt, code = AIM_FORMATS[code[:2]], code[3:]
        code = code.strip("\r\n")
        return (code, fmt) if code else None
