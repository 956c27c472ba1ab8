"""Fixtures of the edge tests: a test issuer, a ready context, a private Mosquitto."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from checkpost.edge.procs import Broker
from checkpost.edge.procs import free_port as _free_port

from checkpost.issuer import TestIssuer
from checkpost.policy import Policy, load_policy
from checkpost.runtime import Context, build_context

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
T0 = 1_700_000_000.0  # a fixed "now" for pure workflow tests


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> TestIssuer:
    return TestIssuer.create(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(scope="session")
def ctx(issuer: TestIssuer) -> Context:
    base = build_context(issuer_dir=str(issuer.folder), accept_demo=True)
    base.policy = risk_policy(load_policy())
    return base


def risk_policy(policy: Policy, regions: tuple[str, ...] = ("鄂A", "沪")) -> Policy:
    """The default policy with risk regions set (the built-in list is empty)."""
    params = policy.params
    cp = msgspec.structs.replace(params.checkpoint, risk_regions=list(regions))
    return Policy(msgspec.structs.replace(params, checkpoint=cp), policy.rule_docs)


def free_port() -> int:
    return _free_port()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    if not os.path.exists(MOSQUITTO):
        pytest.fail(f"{MOSQUITTO} not found: install the mosquitto package", pytrace=False)
    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()
