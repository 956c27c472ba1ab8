"""One catalogue of reasons for the pipeline, the policy, the station workflows and the hub."""

from __future__ import annotations

import re
import string
from pathlib import Path

from checkpost.hub import reasons as hub_reasons

from checkpost.reasons import CATALOGUE, Reason, reason

ROOT = Path(__file__).resolve().parents[2]
CALL = re.compile(r"""\breason\(\s*["']([a-z0-9_]+)["']((?:[^()]|\([^()]*\))*)\)""")


def _sources() -> list[Path]:
    return [
        p
        for part in ("checkpost", "edge", "hub", "hardware")
        for p in (ROOT / part).rglob("*.py")
        if ".venv" not in p.parts
    ]


def test_every_reason_a_program_gives_is_in_the_catalogue_with_its_parameters() -> None:
    """`reason("code", ...)` with an unknown code or a missing parameter would raise on a
    rare path (a broken seal at 3 a.m.); this finds it before a unit does."""
    calls = 0
    for path in _sources():
        for m in CALL.finditer(path.read_text("utf-8")):
            code, args = m[1], m[2]
            calls += 1
            assert code in CATALOGUE, f"{path.relative_to(ROOT)}: unknown reason {code!r}"
            given = set(re.findall(r"\b([a-z_]+)=", args))
            for text in CATALOGUE[code]:
                wanted = {f for _, f, _, _ in string.Formatter().parse(text) if f}
                if "**" not in args:
                    assert wanted <= given, f"{path.relative_to(ROOT)}: {code} needs {wanted}"
    assert calls > 50  # the pattern still finds the calls


def test_hub_reasons_are_the_catalogues_own() -> None:
    prebuilt = [v for v in vars(hub_reasons).values() if isinstance(v, Reason)]
    assert len(prebuilt) >= 10
    for r in prebuilt:
        assert r == reason(r.code)


def test_every_text_is_short_enough_for_the_station_screen() -> None:
    for code, (en, zh) in CATALOGUE.items():
        assert re.fullmatch(r"[a-z0-9_]+", code)
        assert en and zh, code
        assert len(en) <= 60 and len(zh) <= 40, code
