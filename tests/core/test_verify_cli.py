"""`checkpost verify`: the contract of issue 3 §3 that later tools and checks depend on."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import qrcode

from checkpost import cli
from checkpost.codes.trust import build_trust_list
from checkpost.issuer import TestIssuer

REPO = Path(__file__).resolve().parents[2]
CHECKPOST = REPO / ".venv" / "bin" / "checkpost"
NOW = 1_750_000_000.0
AT = dt.datetime.fromtimestamp(NOW, dt.UTC).isoformat()
FIELDS = {"input", "text", "format", "steps", "kid", "issuer", "payload", "verdict", "reasons"}
ISSUE_STEPS = {
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
}
# The pipeline also reports revocation (issue 3 §2) as a step of its own.
STEPS = ISSUE_STEPS | {"revocation"}
VERDICTS = {"PASS", "REVIEW", "REMEASURE", "FAIL"}


def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    """`checkpost ARGV` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    try:
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(list(argv))
            except SystemExit as exc:  # argparse and --at report usage errors this way
                rc = exc.code if isinstance(exc.code, int) else 2
    finally:
        sys.stdin = old_stdin
    return rc, out.getvalue(), err.getvalue()


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def codes(issuer: TestIssuer) -> dict[str, str]:
    return {
        "pass": issuer.hp1(iat=NOW - 10),
        "eddsa": issuer.hp1(iat=NOW - 10, alg="EdDSA"),
        "yellow": issuer.hp1(iat=NOW - 10, colour="Y"),
        "stale": issuer.hp1(iat=NOW - 3600),
        "sr1": issuer.sr1(iat=NOW - 10),
    }


def verify(issuer: TestIssuer, *inputs: str, extra: tuple[str, ...] = ()) -> tuple[int, list, str]:
    rc, out, err = run(
        "verify", "--json", "--at", AT, "--issuer", str(issuer.folder), *extra, *inputs
    )
    return rc, records(out), err


# -- exit codes -----------------------------------------------------------------------------


def test_exit_0_when_every_input_passed(issuer, codes) -> None:
    rc, recs, _ = verify(issuer, codes["pass"], codes["eddsa"])
    assert rc == 0
    assert [r["verdict"] for r in recs] == ["PASS", "PASS"]


def test_exit_1_when_any_input_did_not_pass(issuer, codes) -> None:
    rc, recs, _ = verify(issuer, codes["pass"], codes["stale"], codes["yellow"])
    assert rc == 1
    assert [r["verdict"] for r in recs] == ["PASS", "FAIL", "REVIEW"]
    assert [c["code"] for c in recs[1]["reasons"]] == ["expired"]


@pytest.mark.parametrize(
    "argv",
    [
        ("verify",),  # no INPUT
        ("verify", "--at", "yesterday", "HP1:X"),
        ("verify", "--no-such-option", "HP1:X"),
        ("verify", "--temp", "warm", "HP1:X"),
        ("verify", "--station", "kitchen", "HP1:X"),
        ("verify", "--cert", "bm90IGEgY2VydGlmaWNhdGU=", "HP1:X"),
        ("verify", "--policy", "/nonexistent/policy.toml", "HP1:X"),
        ("verify", "--trust", "/nonexistent/trust.json", "--trust-key", "/nonexistent.pem", "X"),
    ],
)
def test_exit_2_on_a_usage_error(argv) -> None:
    rc, out, err = run(*argv)
    assert rc == 2, (rc, out, err)
    assert out == ""
    assert err.strip()


def test_trust_list_needs_a_signing_key(issuer) -> None:
    rc, out, err = run("verify", "--trust", str(issuer.trust_list_path), "HP1:X")
    assert rc == 2 and "signing key" in err and out == ""


def test_trust_list_signed_by_another_key_is_a_usage_error(issuer, tmp_path) -> None:
    other = TestIssuer.create(tmp_path / "other")
    rc, out, err = run(
        "verify",
        "--trust",
        str(issuer.trust_list_path),
        "--trust-key",
        str(other.trust_signer_path),
        "HP1:X",
    )
    assert rc == 2 and "does not verify" in err and out == ""


# -- the JSON record --------------------------------------------------------------------------


def test_json_fields_are_exactly_the_contract(issuer, codes) -> None:
    rc, recs, _ = verify(issuer, codes["pass"])
    assert rc == 0
    (rec,) = recs
    assert set(rec) == FIELDS
    assert rec["input"] == rec["text"] == codes["pass"]
    assert rec["format"] == "HP1"
    assert set(rec["steps"]) <= STEPS and all(v is True for v in rec["steps"].values())
    assert set(rec["steps"]) >= ISSUE_STEPS - {"picture"}
    kid = issuer.entries()[0].kid
    assert base64.b64decode(rec["kid"]) == kid
    assert rec["issuer"] == issuer.region
    payload = rec["payload"]
    assert payload["iss"] == issuer.region
    assert payload["exp"] - payload["iat"] == 180
    assert payload["hp1"]["c"] == "G" and payload["hp1"]["nm"] == "张*三"
    assert rec["verdict"] == "PASS" and rec["reasons"] == []


def test_every_reason_has_code_en_zh(issuer, codes) -> None:
    _rc, recs, _ = verify(issuer, codes["stale"], codes["yellow"], "garbage", "HP1:%%")
    for rec in recs:
        assert set(rec) == FIELDS
        assert rec["verdict"] in VERDICTS
        assert set(rec["steps"]) <= STEPS
        assert all(isinstance(v, bool) for v in rec["steps"].values())
        for r in rec["reasons"]:
            assert set(r) == {"code", "en", "zh"} and all(r.values())


@pytest.mark.parametrize(
    ("text", "fmt", "steps"),
    [
        ("1234567890", "tube", {}),
        ("BOX123456", "box", {}),
        ("hello", "unknown", {"unprefix": False}),
        ("HP1:AB%", "HP1", {"unprefix": True, "base45": False}),
        ("HC1:", "HC1", {"unprefix": True, "base45": True, "zlib": False, "cose": False}),
    ],
)
def test_format_and_steps_absent_where_not_reached(text, fmt, steps) -> None:
    _rc, out, _ = run("verify", "--json", text)
    (rec,) = records(out)
    assert (rec["format"], rec["steps"]) == (fmt, steps)
    assert rec["kid"] is None and rec["payload"] is None


def test_sr1_and_hc1_formats(issuer, codes) -> None:
    _rc, recs, _ = verify(issuer, codes["sr1"])
    assert recs[0]["format"] == "SR1" and recs[0]["verdict"] == "PASS"
    assert recs[0]["payload"]["sr1"]["nm"] == "李*四"


def test_temperatures_and_station(issuer, codes) -> None:
    rc, recs, _ = verify(issuer, codes["pass"], extra=("--temp", "37.5"))
    assert rc == 1 and recs[0]["verdict"] == "REMEASURE"
    rc, recs, _ = verify(issuer, codes["pass"], extra=("--temp", "37.5", "--temp", "37.6"))
    assert rc == 1 and [r["code"] for r in recs[0]["reasons"]] == ["fever"]
    rc, recs, _ = verify(issuer, codes["pass"], extra=("--temp", "36.5"))
    assert rc == 0
    rc, recs, _ = verify(issuer, codes["pass"], extra=("--station", "sampling"))
    assert rc == 1 and recs[0]["reasons"][0]["code"] == "wrong_station"


def test_policy_file(issuer, tmp_path) -> None:
    policy = tmp_path / "strict.toml"
    policy.write_text('[checkpoint]\nyellow = "fail"\n', encoding="utf-8")
    yellow = issuer.hp1(iat=NOW - 10, colour="Y")
    _rc, recs, _ = verify(issuer, yellow, extra=("--policy", str(policy)))
    assert recs[0]["verdict"] == "FAIL"
    bad = tmp_path / "bad.toml"
    bad.write_text("[checkpoint]\nyellow = 1\n", encoding="utf-8")
    rc, out, err = run("verify", "--policy", str(bad), "HP1:X")
    assert rc == 2 and f"{bad}: line 2: checkpoint.yellow" in err and out == ""


def test_signed_trust_list_and_demo_keys(issuer, codes, tmp_path) -> None:
    base = ("verify", "--json", "--at", AT, "--trust", str(issuer.trust_list_path))
    base += ("--trust-key", str(issuer.trust_signer_path))
    rc, out, _ = run(*base, codes["pass"])
    assert rc == 1
    assert records(out)[0]["reasons"][0]["code"] == "unknown_key"  # demo keys refused
    rc, out, _ = run(*base, "--accept-demo", codes["pass"])
    assert rc == 0, out
    # A newer list that revokes the ES256 key.
    doc = build_trust_list(
        issuer.entries(),
        issuer.trust_key,
        version=2,
        issuer="test",
        revoked_kids=[issuer.entries()[0].kid],
    )
    revoking = tmp_path / "trust.json"
    revoking.write_text(json.dumps(doc), encoding="utf-8")
    argv = ("verify", "--json", "--at", AT, "--trust", str(revoking), "--accept-demo")
    argv += ("--trust-key", str(issuer.trust_signer_path), codes["pass"], codes["eddsa"])
    rc, out, _ = run(*argv)
    recs = records(out)
    assert rc == 1
    assert [r["verdict"] for r in recs] == ["FAIL", "PASS"]
    assert recs[0]["reasons"][0]["code"] == "key_revoked"


def test_human_output_one_line_per_input_without_colour_off_a_terminal(issuer, codes) -> None:
    rc, out, _ = run("verify", "--at", AT, "--issuer", str(issuer.folder), codes["pass"], "junk")
    lines = out.splitlines()
    assert rc == 1 and len(lines) == 2
    assert lines[0].startswith("PASS") and "HP1" in lines[0] and "张*三" in lines[0]
    assert lines[1].startswith("FAIL") and "Not a code we accept" in lines[1]
    assert "\033[" not in out


# -- stdin ------------------------------------------------------------------------------------


def test_dash_reads_one_code_per_line_from_stdin(issuer, codes) -> None:
    stdin = f"{codes['pass']}\n\n{codes['stale']}\r\n{codes['eddsa']}\n"
    rc, out, _ = run(
        "verify", "--json", "--at", AT, "--issuer", str(issuer.folder), "-", stdin=stdin
    )
    recs = records(out)
    assert rc == 1
    assert [r["input"] for r in recs] == [codes["pass"], codes["stale"], codes["eddsa"]]
    assert [r["verdict"] for r in recs] == ["PASS", "FAIL", "PASS"]


def test_stream_of_2000_codes_through_the_installed_command(issuer, codes) -> None:
    """One process, thousands of lines (timing is measured by `checkpost bench`, not here)."""
    assert CHECKPOST.exists(), f"{CHECKPOST} is missing: install the project into .venv"
    lines = [codes["pass"], codes["eddsa"], codes["sr1"], "1234567890"] * 500
    proc = subprocess.run(
        [str(CHECKPOST), "verify", "--json", "--at", AT, "--issuer", str(issuer.folder), "-"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = records(proc.stdout)
    assert len(recs) == 2000
    assert [r["input"] for r in recs] == lines
    assert {r["verdict"] for r in recs} == {"PASS"}


# -- images -----------------------------------------------------------------------------------


def render_qr(text: str, path: Path) -> Path:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_Q, box_size=6, border=4)
    qr.add_data(text)
    qr.make(fit=True)
    qr.make_image().save(path)
    return path


def test_png_is_decoded_with_the_station_decoder(issuer, codes, tmp_path, monkeypatch) -> None:
    from checkpost.hardware import decode

    calls: list[str] = []
    real = decode.decode_image_file

    def spy(path, *args, **kwargs):
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(decode, "decode_image_file", spy)
    png = render_qr(codes["pass"], tmp_path / "pass.png")
    rc, recs, _ = verify(issuer, str(png))
    assert calls == [str(png)]
    assert rc == 0
    (rec,) = recs
    assert set(rec) == FIELDS
    assert rec["input"] == str(png)
    assert rec["text"] == codes["pass"]
    assert rec["steps"]["picture"] is True
    assert next(iter(rec["steps"])) == "picture"
    assert rec["verdict"] == "PASS"


def test_picture_without_a_code_fails(tmp_path) -> None:
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    rc, out, _ = run("verify", "--json", str(blank))
    (rec,) = records(out)
    assert rc == 1
    assert set(rec) == FIELDS
    assert rec["steps"] == {"picture": False}
    assert rec["verdict"] == "FAIL"
    assert rec["reasons"][0]["code"] == "no_code_in_image"


def test_unreadable_image_file_fails_without_a_traceback(tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    rc, out, err = run("verify", "--json", str(broken))
    (rec,) = records(out)
    assert rc == 1 and rec["verdict"] == "FAIL" and rec["steps"] == {"picture": False}
    assert "Traceback" not in err


def test_text_verify_does_not_import_image_decoders(issuer, codes) -> None:
    """`checkpost verify --json CODE` must not pay for OpenCV and the decoders."""
    probe = (
        "import json, sys\n"
        "from checkpost import cli\n"
        "rc = cli.main(sys.argv[1:])\n"
        "heavy = ('cv2', 'zxingcpp', 'pyzbar', 'PIL', 'qrcode', 'numpy')\n"
        "print(json.dumps([m for m in sys.modules if m.split('.')[0] in heavy]), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    argv = ["verify", "--json", "--at", AT, "--issuer", str(issuer.folder), codes["pass"]]
    env = {k: v for k, v in os.environ.items() if k != "CHECKPOST_CONFIG"}
    proc = subprocess.run(
        [sys.executable, "-c", probe, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "PASS"
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []
