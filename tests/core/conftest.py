"""Shared fixtures of the core tests, and the hook that prints the EU conformance table."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkpost.issuer import TestIssuer

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
ARTIFACTS = REPO / "test-artifacts"

_REPORT_KEY = pytest.StashKey[list[str]]()


def require_shared(*parts: str) -> Path:
    """A folder of ../shared; its absence fails the test (never a skip)."""
    path = SHARED.joinpath(*parts)
    if not path.is_dir():
        pytest.fail(
            f"{path} is missing: the core tests need the shared test data beside the "
            f"checkout ({SHARED}); restore it rather than skipping these checks",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> TestIssuer:
    """One demo issuer (ES256 + Ed25519 keys, trust-list signer) for the whole session."""
    return TestIssuer.create(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(scope="session")
def summary_lines(request: pytest.FixtureRequest) -> list[str]:
    """Lines to repeat in the terminal summary (the conformance table)."""
    return request.config.stash.setdefault(_REPORT_KEY, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    lines = config.stash.get(_REPORT_KEY, [])
    if lines:
        terminalreporter.section("EU DCC conformance (checkpost verify --json)")
        for line in lines:
            terminalreporter.write_line(line)
