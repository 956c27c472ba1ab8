"""``checkpost rules test|show|eval`` through the real entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _rules_shared import EU_RULES, require

from checkpost.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, capsys.readouterr().out.splitlines()


def test_rules_test_on_all_eu_rules(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, "rules", "test", str(require(EU_RULES)))
    assert code == 0
    assert lines == ['{"rules": 145, "tests": 1022, "passed": 1022, "failed": 0}']


def test_rules_test_several_dirs(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(
        capsys, "rules", "test", str(require(EU_RULES) / "DE"), str(EU_RULES / "NL" / "GR-NL-0002")
    )
    summary = json.loads(lines[-1])
    assert code == 0 and summary["rules"] == 12 and summary["failed"] == 0


def test_failing_test_gets_a_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = require(EU_RULES) / "DE" / "VR-DE-0001"
    dst = tmp_path / "VR-DE-0001"
    shutil.copytree(src, dst)  # a temporary copy to break, removed with tmp_path
    test_file = sorted((dst / "tests").glob("*.json"))[0]
    test = json.loads(test_file.read_text(encoding="utf-8"))
    test["expected"] = not test["expected"]
    test_file.write_text(json.dumps(test), encoding="utf-8")
    code, lines = run(capsys, "rules", "test", str(tmp_path))
    assert code == 1
    assert lines[0].startswith(f"FAIL VR-DE-0001/tests/{test_file.name} [VR-DE-0001]")
    summary = json.loads(lines[-1])
    assert summary["failed"] == 1 and summary["passed"] == summary["tests"] - 1


def test_broken_rule_fails_its_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "XX-0001"
    (dst / "tests").mkdir(parents=True)
    (dst / "rule.json").write_text(json.dumps({"Identifier": "XX-0001"}), encoding="utf-8")
    (dst / "tests" / "t.json").write_text('{"payload": {}, "expected": true}', encoding="utf-8")
    code, lines = run(capsys, "rules", "test", str(dst))
    assert code == 1 and "does not load" in lines[0] and "missing field" in lines[0]
    assert json.loads(lines[-1])["failed"] == 1


def test_missing_dir_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, lines = run(capsys, "rules", "test", str(tmp_path / "nope"))
    assert code == 1 and lines[0].endswith("no rule.json found")
    assert json.loads(lines[-1])["rules"] == 0


def test_show_and_eval(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = run(capsys, "rules", "show", str(require(EU_RULES)), "--country", "de", "--json")
    assert code == 0 and len(lines) == 11
    assert json.loads(lines[0])["identifier"] == "RR-DE-0001"
    test = EU_RULES / "DE" / "VR-DE-0001" / "tests" / "test004.json"
    code, lines = run(
        capsys, "rules", "eval", str(EU_RULES), "--country", "DE", "--payload", str(test)
    )
    last = json.loads(lines[-1])
    assert last["rules"] == len(lines) - 1 and last["outcome"] in ("passed", "failed", "open")
    assert code == (0 if last["outcome"] == "passed" else 1)


def test_cli_module_imports_stay_light() -> None:
    code = (
        "import sys, checkpost.rules.commands; "
        "print(sorted(m for m in sys.modules if m.startswith(('checkpost.rules.', 'json_logic'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['checkpost.rules.commands']"


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "checkpost", "rules", "test", str(require(EU_RULES) / "AT")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["failed"] == 0
