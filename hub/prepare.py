"""Turn a decoded event into a unit of work: the per-event decisions that need no state.

Everything here is pure CPU (code pipeline, policy, code patterns) and runs in the loop
before the batch reaches the store; what depends on city-wide state (a tube opened
elsewhere, a pass shown elsewhere) is decided inside the store's transaction.
"""

from __future__ import annotations

from typing import Any

from checkpost.hub import reasons as R
from checkpost.hub.store import Work

from checkpost.codes import Verifier
from checkpost.policy import Policy, decide


class Preparer:
    def __init__(self, verifier: Verifier, policy: Policy) -> None:
        self.verifier = verifier
        self.policy = policy
        self.pool_sizes = frozenset(policy.sampling.pool_sizes)
        self.risk_regions = tuple(policy.checkpoint.risk_regions)

    def __call__(self, event: Any, body: str, now: float) -> Work:
        w = Work(event=event, body=body, hub_ts=now)
        kind = event.__struct_config__.tag
        fn = getattr(self, "_" + kind, None)
        if fn is not None:
            fn(w, event, now)
        return w

    def _scan(self, w: Work, e: Any, now: float) -> None:
        d = self.verifier.verify(e.code, now)
        v = decide(d, e.temps, e.station, now, self.policy)
        w.pre_verdict = v.verdict
        w.pre_reasons = list(v.reasons)
        w.pre_ok = True  # a scan is always recorded; its verdict says what it means
        w.subject = e.vehicle
        if d.format == "HP1":
            sid = getattr(d.content, "sid", None)
            if isinstance(sid, str):
                w.sid = sid
                if d.steps.get("signature") and d.iat is not None:
                    w.iat = int(d.iat)

    def _tube_add(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.tube
        d = self.verifier.verify(e.code, now)
        if d.format != "SR1":
            w.pre_ok = False
            w.pre_reasons = list(d.reasons) or [R.MALFORMED]
            if d.valid:
                from checkpost.reasons import reason

                w.pre_reasons = [reason("wrong_station", kind=d.format, station="sampling")]
            return
        v = decide(d, None, "sampling", now, self.policy)
        sid = getattr(d.content, "sid", None)
        if isinstance(sid, str) and d.valid:
            w.sid = sid
        if v.verdict == "FAIL" or w.sid is None:
            w.pre_ok = False
            w.pre_reasons = list(v.reasons)

    def _tube_open(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.tube
        if self.verifier.patterns.kind(e.tube) != "tube":
            from checkpost.reasons import reason

            w.pre_ok = False
            w.pre_reasons = [reason("bad_tube_code")]
        elif e.pool not in self.pool_sizes:
            w.pre_ok = False
            w.pre_reasons = [R.POOL_SIZE]

    def _box_open(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.box
        if self.verifier.patterns.kind(e.box) != "box":
            from checkpost.reasons import reason

            w.pre_ok = False
            w.pre_reasons = [reason("bad_box_code")]

    def _tube_close(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.tube

    def _box_add(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.box

    def _box_seal(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.box

    def _handover(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.box

    def _undo(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.target

    def _override(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.target
        w.pre_flags = ["override"]

    def _vehicle_open(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.id
        if self.risk_regions and e.plate.startswith(self.risk_regions):
            w.pre_flags = ["turn_back"]
            w.pre_reasons = [R.RISK_REGION]

    def _vehicle_close(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.vehicle

    def _vehicle_turn_back(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.vehicle
