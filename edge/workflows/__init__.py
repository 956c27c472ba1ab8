"""Station workflows as pure state machines (no I/O): checkpoint, gate, sampling, transfer.

``make_workflow(station, unit, verifier, policy, **options)`` builds one; see
:mod:`.common` for the inputs, the Step a workflow returns and how the agent applies it.
"""

from __future__ import annotations

from typing import Any

from checkpost.edge.workflows.checkpoint import CheckpointWorkflow
from checkpost.edge.workflows.common import (
    CodeRead,
    DeviceState,
    Input,
    Notice,
    Output,
    Reading,
    Step,
    Tap,
    Tick,
    VerdictView,
    Workflow,
)
from checkpost.edge.workflows.gate import GateWorkflow
from checkpost.edge.workflows.sampling import SamplingWorkflow
from checkpost.edge.workflows.transfer import TransferWorkflow

KINDS: dict[str, type[Workflow]] = {
    "checkpoint": CheckpointWorkflow,
    "gate": GateWorkflow,
    "sampling": SamplingWorkflow,
    "transfer": TransferWorkflow,
}


def make_workflow(station: str, unit: str, verifier: Any, policy: Any, **options: Any) -> Workflow:
    try:
        cls = KINDS[station]
    except KeyError:
        raise ValueError(
            f"unknown station kind {station!r} (expected {', '.join(KINDS)})"
        ) from None
    return cls(unit, verifier, policy, **options)


__all__ = [
    "KINDS",
    "CheckpointWorkflow",
    "CodeRead",
    "DeviceState",
    "GateWorkflow",
    "Input",
    "Notice",
    "Output",
    "Reading",
    "SamplingWorkflow",
    "Step",
    "Tap",
    "Tick",
    "TransferWorkflow",
    "VerdictView",
    "Workflow",
    "make_workflow",
]
