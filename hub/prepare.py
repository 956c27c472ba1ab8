"""Turn a decoded event into a unit of work: the per-event decisions that need no state.

Everything here is pure CPU (code pipeline, policy, code patterns) and runs in the loop
before the batch reaches the store; what depends on city-wide state (a tube opened
elsewhere, a pass shown elsewhere) is decided inside the store's transaction.
"""

from __future__ import annotations

import os
from typing import Any

from checkpost.hub import reasons as R
from checkpost.hub.store import Work

from checkpost.codes import Verifier
from checkpost.codes.pipeline import valid_window
from checkpost.policy import Policy, decide


class Preparer:
    # SR1 registration codes are long-lived: a person shows the same code at every round,
    # and its signature check (ES256, ~45 us) was most of a tube_add's cost. A code that
    # verified fully is remembered by its exact text, with the window in which that outcome
    # holds (its iat/exp with the verifier's skew, and its signing key's validity); every
    # use re-checks `now` against that window, and a code outside it, or any change of the
    # trust store (keys, revocations, version), goes through the whole pipeline again.
    # Only valid SR1 codes are remembered: a forged or expired one is verified every time.
    sr1_cache_size = 50_000

    def __init__(self, verifier: Verifier, policy: Policy) -> None:
        self.verifier = verifier
        self.policy = policy
        self.pool_sizes = frozenset(policy.sampling.pool_sizes)
        self.risk_regions = tuple(policy.checkpoint.risk_regions)
        self._sr1: dict[str, tuple[Any, float, float]] = {}
        if "CHECKPOST_HUB_SR1_CACHE" in os.environ:  # bench: size 0 measures without it
            self.sr1_cache_size = int(os.environ["CHECKPOST_HUB_SR1_CACHE"])
        self._sr1_trust: tuple[Any, ...] = ()
        self.sr1_hits = 0

    def _trust_print(self) -> tuple[Any, ...]:
        t = self.verifier.trust
        return (id(t), t.version, len(t.by_kid), len(t.revoked_kids), len(t.revoked_ids))

    def verify_sr1(self, text: str, now: float) -> Any:
        """`verifier.verify(text, now)`, remembering valid SR1 codes (see above)."""
        cache = self._sr1
        hit = cache.get(text)
        if hit is not None:
            d, lo, hi = hit
            if lo <= now <= hi and self._trust_print() == self._sr1_trust:
                self.sr1_hits += 1
                return d
        v = self.verifier
        d = v.verify(text, now)
        window = valid_window(d, v.skew, v.hp1_max_age) if d.format == "SR1" and d.valid else None
        if window is not None and d.signer is not None:
            lo, hi = window
            trust = self._trust_print()
            if trust != self._sr1_trust:
                cache.clear()
                self._sr1_trust = trust
            if len(cache) >= self.sr1_cache_size:  # the oldest entry goes
                if not cache:
                    return d
                del cache[next(iter(cache))]
            cache[text] = (d, lo, hi)
        return d

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
                # a token for replay detection; an issue time no clock could show (even
                # validly signed) would not fit the store's BIGINT and is not a token
                if d.steps.get("signature") and d.iat is not None and 0 <= d.iat <= 1e11:
                    w.iat = int(d.iat)

    def _tube_add(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.tube
        if (e.person is None) == (e.code is None):  # a code or a person, exactly one
            w.pre_ok = False
            w.pre_reasons = [R.MALFORMED]
            return
        if e.person is not None:
            # entered by hand (no registration code): matched on the hashed ID number
            w.sid = "manual:" + e.person.id_hash[:32]
            w.pre_flags = ["manual"]
            return
        d = self.verify_sr1(e.code, now)
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

    def _vehicle_step(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.vehicle

    def _box_check(self, w: Work, e: Any, now: float) -> None:
        w.subject = e.box
