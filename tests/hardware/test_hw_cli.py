"""`checkpost hw check --simulate` walks every part against its simulator."""

from __future__ import annotations

import json

import pytest

from checkpost.cli import main


def test_hw_check_simulated_passes_every_part(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "check", "--simulate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    parts = {c["part"]: c["ok"] for c in out["checks"]}
    assert out["simulated"] and all(parts.values())
    assert set(parts) == {
        "decoder",
        "camera",
        "thermometer",
        "serial scanner",
        "wedge scanner",
        "gpio",
    }


def test_hw_check_reports_a_missing_camera(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hw", "check", "--camera", "replay:/nonexistent/folder"]) == 1
    assert "FAIL  camera" in capsys.readouterr().out
