"""Hand-held scanners: framing, the keyboard wedge against its event simulator, and the real
pyserial driver against a pty scanner (split writes, AIM ids, unplug/replug)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from checkpost.hardware.decode import Read
from checkpost.hardware.scanner import (
    Framer,
    KeyDecoder,
    SerialScanner,
    SerialScannerSimulator,
    WedgeScanner,
    key_events,
)
from hypothesis import given
from hypothesis import strategies as st

HP1 = "HP1:NCFOXN%TS3DHWM8YJSX4UGXU$N1A.Q/R8-C12FCUH9Q"


def until(cond: Callable[[], object], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_framer_suffix_prefix_pause_and_aim() -> None:
    f = Framer(suffix="\r")
    assert f.feed("12345678901\r\n", 0.0) == [("12345678901", "unknown")]
    assert f.feed("]Q1" + HP1 + "\r", 1.0) == [(HP1, "QR")]
    assert f.feed("]C0BOX123456\r", 2.0) == [("BOX123456", "Code128")]
    g = Framer(prefix="@", suffix="")
    assert g.feed("@0012345678", 0.0) == []
    assert g.flush(0.5) == [("0012345678", "unknown")]
    h = Framer(suffix="\r", timeout_s=0.1)
    assert h.feed("12345", 0.0) == []
    assert h.feed("BOX1\r", 1.0) == [("BOX1", "unknown")]  # the partial code was dropped


@given(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=80)
)
def test_keyboard_wedge_types_back_any_printable_code(text: str) -> None:
    keys = KeyDecoder()
    typed = "".join(keys.feed(c, v) for c, v in key_events(text))
    assert typed == text + "\r"


def test_wedge_scanner_reads_from_event_stream() -> None:
    got: list[Read] = []
    events = [*key_events(HP1), *key_events("0012345678")]
    s = WedgeScanner("/dev/input/event-sim", got.append, events=events).start()
    assert until(lambda: len(got) == 2)
    s.close()
    assert [r.text for r in got] == [HP1, "0012345678"]
    assert all(r.source == "scanner" and r.corners == () for r in got)
    with pytest.raises(ValueError):
        list(key_events("温"))


def test_serial_scanner_against_pty_with_split_and_replug() -> None:
    got: list[Read] = []
    with (
        SerialScannerSimulator() as sim,
        SerialScanner(sim.path, got.append, backoff_initial_s=0.02) as sc,
    ):
        assert until(lambda: sc.connected)
        sim.scan(HP1, aim="]Q1")
        sim.scan("BOX12345678", split=True)
        assert until(lambda: len(got) == 2)
        assert (got[0].text, got[0].format) == (HP1, "QR")
        assert got[1].text == "BOX12345678"
        sim.unplug()
        assert until(lambda: not sc.connected)
        sim.replug()
        assert until(lambda: sc.connected)
        sim.scan("123456789012")
        assert until(lambda: len(got) == 3 and got[2].text == "123456789012")
