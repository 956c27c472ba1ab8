"""EU DCC conformance: every case of ../shared/dcc-testdata through `checkpost verify --json`.

Each `2DCode/raw/*.json` case goes through the real CLI (argument parsing, trust from
`--cert`, clock from `--at`, JSON output), run in-process for speed: one run per
(VALIDATIONCLOCK, CERTIFICATE) pair, since those two are per run. Where a case has a
picture (`2DCODE`), the PNG goes in first and is decoded by the stations' decoder; the
PREFIX text is verified too, so a picture that does not hold the PREFIX (a data defect)
cannot hide a pipeline disagreement.

Each `EXPECTED*` flag maps to a pipeline step. An expected true needs that step true; an
expected false is met when that step or an earlier one failed. Exceptions are named in one
place each: the test data's own `tests/known_issues.csv`, read here, and `DATA_DEFECTS`
below for defects of the test data that the CSV does not list.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from checkpost import cli

from .conftest import ARTIFACTS, require_shared

ORDER = (
    "picture",
    "unprefix",
    "base45",
    "zlib",
    "cose",
    "cbor",
    "signature",
    "expiry",
    "schema",
    "key_usage",
)
# EXPECTED* flag -> the step it tests (DECODE and VALIDJSON also compare the payload).
FLAG_STEP = {
    "EXPECTEDPICTUREDECODE": "picture",
    "EXPECTEDUNPREFIX": "unprefix",
    "EXPECTEDB45DECODE": "base45",
    "EXPECTEDCOMPRESSION": "zlib",
    "EXPECTEDVERIFY": "signature",
    "EXPECTEDDECODE": "cbor",
    "EXPECTEDVALIDJSON": "cbor",
    "EXPECTEDEXPIRATIONCHECK": "expiry",
    "EXPECTEDSCHEMAVALIDATION": "schema",
    "EXPECTEDKEYUSAGE": "key_usage",
}
PAYLOAD_FLAGS = {"EXPECTEDDECODE", "EXPECTEDVALIDJSON"}
# Flags that test something other than a verifier step, or are misspelt in the data.
NOT_VERIFIER_FLAGS = {
    "EXPECTEDVALIDOBJECT": "the JSON against the schema, before any encoding (issuer side)",
    "EXPECTEDENCODE": "JSON -> CBOR encoding (issuer side)",
    "EXPTECTEDEXPIRED": "misspelt flag in BG/1-4 and ES/201-203 (data defect), no defined meaning",
    "EXPECTEDRESULTS": "nested inside EXPECTEDRESULTS in ES/1001-1003 (data defect)",
}
# known_issues.csv test_name -> the flag it excludes.
CSV_TEST_FLAG = {
    "test_cose_schema": "EXPECTEDSCHEMAVALIDATION",
    "test_cose_json": "EXPECTEDVALIDJSON",
    "test_cbor_json": "EXPECTEDDECODE",
    "test_verification_check": "EXPECTEDVERIFY",
    "test_expiration_check": "EXPECTEDEXPIRATIONCHECK",
    "test_expected_key_usage": "EXPECTEDKEYUSAGE",
    "test_picture_decode": "EXPECTEDPICTUREDECODE",
    "test_unprefix": "EXPECTEDUNPREFIX",
    "test_b45_decode": "EXPECTEDB45DECODE",
    "test_compression": "EXPECTEDCOMPRESSION",
}

# Defects of the test data that known_issues.csv does not list: (flag, country, cases, reason).
# `cases` empty = every case of that country. Each entry is checked to still be a defect.
_FR_NO_PICTURE = (
    *(f"DGC_QrCode_{i:05d}_Raw" for i in range(1, 19)),
    "recovery_ok",
    "test_pcr_ok",
    "vaccin_ok",
)
NO_PICTURE = "expects a picture decode but has no 2DCODE field (LV renamed it _2DCODE)"
WRONG_PICTURE = "its 2DCODE PNG encodes a different certificate from its PREFIX"
DATA_DEFECTS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("EXPECTEDPICTUREDECODE", "FR", _FR_NO_PICTURE, NO_PICTURE),
    ("EXPECTEDPICTUREDECODE", "LV", ("1", "2", "3"), NO_PICTURE),
    ("EXPECTEDPICTUREDECODE", "common", ("B1",), NO_PICTURE),
    ("picture-is-prefix", "ES", ("501", "502", "503"), WRONG_PICTURE),
)
DEFECT_KINDS = {NO_PICTURE: "no picture", WRONG_PICTURE: "wrong picture"}


@dataclass
class Case:
    name: str  # "DE/1"
    country: str
    stem: str
    data: dict[str, Any]
    png: Path | None = None
    image: dict[str, Any] | None = None  # JSON record of the picture
    text: dict[str, Any] | None = None  # JSON record of the PREFIX text

    @property
    def prefix(self) -> str:
        return self.data["PREFIX"]

    @property
    def expected(self) -> dict[str, Any]:
        return self.data.get("EXPECTEDRESULTS", {})


@dataclass
class Outcome:
    cases: list[Case]
    broken_files: list[str]
    exit_codes: Counter[int]
    # flag -> {"true": [agree, total], "false": [agree, total], "known": n, "defect": n}
    table: dict[str, dict[str, Any]] = field(default_factory=dict)
    disagreements: list[str] = field(default_factory=list)
    unused_defects: list[str] = field(default_factory=list)
    ignored_flags: Counter[str] = field(default_factory=Counter)


def _known_issues(testdata: Path) -> dict[tuple[str, str], set[str]]:
    """(country, flag) -> case stems excluded ({"*"}: every case of that country)."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    with (testdata / "tests" / "known_issues.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            name = row["test_name"].strip()
            if name not in CSV_TEST_FLAG:
                pytest.fail(f"known_issues.csv names test {name!r}, which this test does not map")
            out[(row["country"].strip(), CSV_TEST_FLAG[name])].add(row["test_set"].strip() or "*")
    return out


def _excluded(table: dict[tuple[str, str], set[str]], country: str, stem: str, flag: str) -> bool:
    sets = table.get((country, flag), set())
    return "*" in sets or stem in sets


_ISO_INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$")


def normalise(value: Any) -> Any:
    """JSON for comparison: date-times as UTC instants ("Z" and "+00:00" are one instant)."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str) and _ISO_INSTANT.match(value):
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return when.astimezone(dt.UTC).isoformat()
    return value


def _run_cli(argv: list[str]) -> tuple[int, list[dict[str, Any]]]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(argv)
    return rc, [json.loads(line) for line in buf.getvalue().splitlines()]


def _load(testdata: Path, pngs: Path) -> tuple[list[Case], list[str]]:
    cases, broken = [], []
    for path in sorted(testdata.glob("*/2DCode/raw/*.json")):
        country, stem = path.parts[-4], path.stem
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            broken.append(f"{country}/{stem}: {exc}")
            continue
        case = Case(f"{country}/{stem}", country, stem, data)
        picture = data.get("2DCODE")
        if isinstance(picture, str) and picture:
            case.png = pngs / f"{country}-{stem}.png"
            case.png.write_bytes(base64.b64decode(picture))
        cases.append(case)
    return cases, broken


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    testdata = require_shared("dcc-testdata")
    require_shared("dcc-schema")
    cases, broken = _load(testdata, tmp_path_factory.mktemp("dcc-png"))
    groups: dict[tuple[str, str], list[Case]] = defaultdict(list)
    for case in cases:
        ctx = case.data["TESTCTX"]
        groups[(ctx["VALIDATIONCLOCK"], ctx["CERTIFICATE"])].append(case)
    exit_codes: Counter[int] = Counter()
    for (clock, cert), members in groups.items():
        argv = ["verify", "--json", "--at", clock, "--cert", cert]
        for case in members:
            argv += [str(case.png), case.prefix] if case.png else [case.prefix]
        rc, records = _run_cli(argv)
        exit_codes[rc] += 1
        it = iter(records)
        for case in members:
            case.image = next(it) if case.png else None
            case.text = next(it, None)
        assert next(it, None) is None, f"more JSON lines than inputs for clock {clock}"
    result = Outcome(cases, broken, exit_codes)
    _compare(result, _known_issues(testdata))
    return result


def _defect(country: str, stem: str, flag: str) -> str | None:
    for d_flag, d_country, d_cases, why in DATA_DEFECTS:
        if d_flag == flag and d_country == country and (not d_cases or stem in d_cases):
            return why
    return None


def _agrees(case: Case, flag: str, expected: bool, record: dict[str, Any]) -> bool:
    step = FLAG_STEP[flag]
    steps = record["steps"]
    if not expected:
        upto = ORDER[: ORDER.index(step) + 1]
        return any(steps.get(s) is False for s in upto)
    if steps.get(step) is not True:
        return False
    if step == "picture":
        return record["text"] == case.prefix
    if flag in PAYLOAD_FLAGS and "JSON" in case.data:
        payload = (record.get("payload") or {}).get("hcert") or {}
        return normalise(payload.get("1")) == normalise(case.data["JSON"])
    return True


def _compare(out: Outcome, known: dict[tuple[str, str], set[str]]) -> None:
    table = {
        f: {"true": [0, 0], "false": [0, 0], "known": 0, "known_differ": 0, "defect": Counter()}
        for f in FLAG_STEP
    }
    defects_used: set[tuple[str, str]] = set()
    for case in out.cases:
        assert case.text is not None, f"{case.name}: no JSON line for its PREFIX"
        # Steps after the picture are judged on the picture's record when it holds the PREFIX.
        picture_ok = case.image is not None and case.image["text"] == case.prefix
        if case.image is not None and not picture_ok and case.image["steps"].get("picture"):
            why = _defect(case.country, case.stem, "picture-is-prefix")
            if why is None:
                out.disagreements.append(
                    f"{case.name}: picture decoded to {str(case.image['text'])[:40]!r}…, "
                    "not its PREFIX"
                )
            else:
                defects_used.add(("picture-is-prefix", case.name))
        downstream = case.image if picture_ok else case.text
        for flag, expected in case.expected.items():
            if flag not in FLAG_STEP:
                if flag not in NOT_VERIFIER_FLAGS:
                    out.disagreements.append(f"{case.name}: unknown flag {flag}")
                out.ignored_flags[flag] += 1
                continue
            row = table[flag]
            if _excluded(known, case.country, case.stem, flag):
                # Not asserted, but counted: how many of the excluded checks really differ.
                row["known"] += 1
                record = case.image if flag == "EXPECTEDPICTUREDECODE" else downstream
                if record is None or not _agrees(case, flag, bool(expected), record):
                    row["known_differ"] += 1
                continue
            if flag == "EXPECTEDPICTUREDECODE" and case.image is None:
                why = _defect(case.country, case.stem, flag)
                if why is None:
                    out.disagreements.append(f"{case.name}: {flag} but the case has no 2DCODE")
                else:
                    row["defect"][DEFECT_KINDS[why]] += 1
                    defects_used.add((flag, case.name))
                continue
            record = case.image if flag == "EXPECTEDPICTUREDECODE" else downstream
            assert record is not None
            cell = row["true" if expected else "false"]
            cell[1] += 1
            if _agrees(case, flag, bool(expected), record):
                cell[0] += 1
            else:
                reasons = ",".join(r["code"] for r in record["reasons"])
                out.disagreements.append(
                    f"{case.name}: {flag}={expected} but steps {record['steps']} ({reasons})"
                )
    out.table = table
    for flag, country, stems, _why in DATA_DEFECTS:
        for stem in stems:
            if (flag, f"{country}/{stem}") not in defects_used:
                out.unused_defects.append(f"{flag} {country}/{stem}")


def render(out: Outcome) -> list[str]:
    lines = [
        f"{'flag':<26} {'step':<10} {'expected true':>14} {'expected false':>15} "
        f"{'known issue (differ)':>20}  data defect",
    ]
    tot = [0, 0, 0, 0, 0, 0, 0]
    for flag, row in out.table.items():
        (ta, tt), (fa, ft) = row["true"], row["false"]
        known = f"{row['known']} ({row['known_differ']})"
        defects = ", ".join(f"{n} {kind}" for kind, n in sorted(row["defect"].items())) or "-"
        lines.append(
            f"{flag.removeprefix('EXPECTED'):<26} {FLAG_STEP[flag]:<10} {f'{ta}/{tt}':>14} "
            f"{f'{fa}/{ft}':>15} {known:>20}  {defects}"
        )
        counts = (ta, tt, fa, ft, row["known"], row["known_differ"], sum(row["defect"].values()))
        for i, n in enumerate(counts):
            tot[i] += n
    lines.append(
        f"{'all flags':<26} {'':<10} {f'{tot[0]}/{tot[1]}':>14} {f'{tot[2]}/{tot[3]}':>15} "
        f"{f'{tot[4]} ({tot[5]})':>20}  {tot[6]}"
    )
    wrong_pictures = sorted(
        f"{c}/{s}" for f, c, stems, _ in DATA_DEFECTS if f == "picture-is-prefix" for s in stems
    )
    lines += [
        f"cases: {len(out.cases)} (broken JSON files: {len(out.broken_files)}); "
        f"CLI runs: {sum(out.exit_codes.values())}, "
        f"exit codes {dict(sorted(out.exit_codes.items()))}",
        f"pictures not holding their PREFIX (steps judged on the PREFIX text): "
        f"{', '.join(wrong_pictures)}",
        "flags not mapped to a verifier step: "
        + ", ".join(f"{k} x{v}" for k, v in sorted(out.ignored_flags.items())),
        f"disagreements: {len(out.disagreements)}",
    ]
    return lines


@pytest.fixture(scope="module")
def table(outcome: Outcome, summary_lines: list[str]) -> list[str]:
    lines = render(outcome)
    text = "\n".join(lines)
    print("\n" + text)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "dcc-conformance.txt").write_text(text + "\n", encoding="utf-8")
    summary_lines[:] = lines
    return lines


def test_every_raw_file_is_json(outcome: Outcome) -> None:
    assert not outcome.broken_files, "test-data files that are not JSON:\n" + "\n".join(
        outcome.broken_files
    )
    assert len(outcome.cases) >= 500


def test_every_case_agrees(outcome: Outcome, table: list[str]) -> None:
    assert set(outcome.exit_codes) <= {0, 1}, f"usage errors: {outcome.exit_codes}"
    assert not outcome.disagreements, (
        "\n".join(table) + "\n\nDisagreements:\n" + "\n".join(outcome.disagreements)
    )
    checked = sum(r["true"][1] + r["false"][1] for r in outcome.table.values())
    assert checked > 3000, f"only {checked} flags were checked: the mapping is broken"


def test_data_defect_list_is_current(outcome: Outcome) -> None:
    """Every exclusion of DATA_DEFECTS is still a defect of the data (else drop it)."""
    assert not outcome.unused_defects, outcome.unused_defects


def test_every_known_issue_names_a_case(outcome: Outcome) -> None:
    """A known_issues.csv row that matches no case would exclude nothing: the mapping is off."""
    testdata = require_shared("dcc-testdata")
    names = {c.name for c in outcome.cases}
    for (country, flag), stems in _known_issues(testdata).items():
        for stem in stems:
            if stem == "*":
                assert any(n.startswith(f"{country}/") for n in names), (country, flag)
            else:
                assert f"{country}/{stem}" in names, (country, stem, flag)


def test_picture_and_text_give_the_same_result(outcome: Outcome) -> None:
    """Where the picture holds the PREFIX, decoding it changes nothing after the picture."""
    compared = 0
    for case in outcome.cases:
        if case.image is None or case.image["text"] != case.prefix:
            continue
        image, text = case.image, case.text
        assert text is not None
        steps = {k: v for k, v in image["steps"].items() if k != "picture"}
        assert steps == text["steps"], case.name
        assert (image["verdict"], image["payload"]) == (text["verdict"], text["payload"]), case.name
        assert image["input"] == str(case.png)
        assert text["input"] == case.prefix
        compared += 1
    assert compared > 400
