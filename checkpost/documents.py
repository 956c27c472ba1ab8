"""Trust-list and policy updates arriving over MQTT: checked, then applied atomically.

One home for both sides: the units and the hub's loop workers accept and refuse exactly the
same documents, so the rules live in the core rather than in `edge/` or `hub/`.

A document is accepted only when its signature verifies under the unit's configured signer
keys and it is newer than what the unit holds (trust lists: a higher ``version``; policy
bundles: a later ``issued_at`` and a different content hash). Acceptance builds a complete
new Verifier/Policy first and swaps one reference (:class:`Documents.context`), so a scan
is decided wholly under the old or wholly under the new documents, never a mix. The
document is cached in the data folder (write to a temporary file, fsync, rename) so a unit
restarted without its hub starts from the newest list it has seen.

The hub's API process publishes the signed documents themselves, retained, on ``hub/trust``
and ``hub/policy`` (``checkpost.hub.publisher``); a hub without a signed document retains
a bare announcement (PolicyAnnounce, TrustAnnounce) instead, which is recorded
(``announced``) and shown as "update pending" when it names a version the unit does not
hold. The document the unit already holds (it is retained, so it arrives again on every
reconnect) is a quiet no-op (:class:`AlreadyApplied`), not a refusal.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkpost.codes import CodePatterns, Verifier
from checkpost.codes.trust import TrustListError, TrustStore, store_from_body, verify_trust_document
from checkpost.runtime import Context

log = logging.getLogger("checkpost.documents")


def write_cache(path: Path, payload: bytes) -> None:
    """Cache a pushed document: write, fsync, atomic replace. A full disk keeps the old
    cache and is logged (the update itself still applies in memory)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.error("cannot cache %s: %s", path.name, exc)


class DocumentError(ValueError):
    """A pushed document was refused; the message says why (signature, version, format).
    `reason` is a stable code for metrics: signature, not_newer, malformed, unknown."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class AlreadyApplied(DocumentError):
    """The document is the one in use (a retained document seen again): nothing to do."""


@dataclass(slots=True)
class DocState:
    version: str = ""
    issued_at: float | None = None  # epoch seconds (from the document)
    applied_at: float | None = None  # when this unit applied it
    announced: str = ""  # latest version the hub announced
    last_error: str = ""


def epoch_of(text: str) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Documents:
    """Holds the current Context and swaps it when a newer signed document arrives."""

    def __init__(
        self,
        ctx: Context,
        data_dir: Path,
        *,
        trust_keys: list[Any],
        policy_keys: list[Any],
        accept_demo: bool = False,
        trust_max_age_h: float = 72.0,
    ) -> None:
        self.context = ctx
        self.data_dir = data_dir
        self.trust_keys = trust_keys
        self.policy_keys = policy_keys  # callers decide any fallback (the unit: trust keys)
        self.accept_demo = accept_demo
        self.trust_max_age_h = trust_max_age_h
        self._lock = threading.Lock()
        self.trust = DocState()
        self.policy = DocState()
        self.reset(ctx)

    def reset(self, ctx: Context) -> None:
        """Start again from `ctx` (a reload of the configured files); cached or pushed
        documents newer than it can then be applied again."""
        with self._lock:
            self.context = ctx
            now = time.time()
            self.trust = DocState(
                str(ctx.trust.version), epoch_of(ctx.trust.issued_at), now, self.trust.announced
            )
            self.policy = DocState(
                ctx.policy.version,
                epoch_of(getattr(ctx.policy, "issued_at", "")),
                now,
                self.policy.announced,
            )

    # -- cache ------------------------------------------------------------------------------

    @property
    def trust_cache(self) -> Path:
        return self.data_dir / "trustlist.json"

    @property
    def policy_cache(self) -> Path:
        return self.data_dir / "policy.json"

    def load_cached(self) -> list[str]:
        """Apply cached documents newer than the configured ones; returns what was applied."""
        applied = []
        for kind, path in (("trust", self.trust_cache), ("policy", self.policy_cache)):
            if path.exists():
                try:
                    self.apply(kind, path.read_bytes(), persist=False)
                    applied.append(kind)
                except AlreadyApplied:
                    pass
                except DocumentError as exc:
                    log.info("cached %s not applied: %s", kind, exc)
        return applied

    # -- applying ---------------------------------------------------------------------------

    def apply(
        self, kind: str, payload: bytes, *, persist: bool = True, now: float | None = None
    ) -> bool:
        """Check and apply one pushed document. Returns True when the context changed,
        False for an announcement only; raises DocumentError when refused."""
        now = time.time() if now is None else now
        try:
            doc = json.loads(payload)
        except ValueError as exc:
            raise self._refuse(kind, f"not JSON: {exc}", "malformed") from None
        if not isinstance(doc, dict):
            raise self._refuse(kind, "not a JSON object", "malformed")
        if kind == "trust":
            if "trust_list" not in doc:
                self.trust.announced = str(doc.get("version", ""))
                return False
            return self._apply_trust(doc, payload, persist, now)
        if kind == "policy":
            if "policy" not in doc:
                self.policy.announced = str(doc.get("version", ""))
                return False
            return self._apply_policy(doc, payload, persist, now)
        raise self._refuse(kind, "unknown document kind", "unknown")

    def _refuse(self, kind: str, why: str, reason: str = "invalid") -> DocumentError:
        state = self.trust if kind == "trust" else self.policy
        state.last_error = why
        log.warning("%s update refused, current one kept: %s", kind, why)
        return DocumentError(f"{kind} update refused: {why}", reason)

    def _apply_trust(self, doc: dict[str, Any], payload: bytes, persist: bool, now: float) -> bool:
        try:
            body = verify_trust_document(doc, self.trust_keys)
            store = store_from_body(body, accept_demo=self.accept_demo)
        except TrustListError as exc:
            raise self._refuse("trust", str(exc), _reason(str(exc))) from None
        with self._lock:
            old = self.context
            if store.version == old.trust.version:
                raise AlreadyApplied(f"trust list version {store.version} already applied")
            if store.version < old.trust.version:
                raise self._refuse(
                    "trust",
                    f"version {store.version} is not newer than {old.trust.version}",
                    "not_newer",
                )
            verifier = _verifier(store, old)
            if persist:  # cached first: what is in use is always what a restart finds
                write_cache(self.trust_cache, payload)
            self.context = Context(verifier, old.policy, store)  # one reference swap
            self.trust = DocState(
                str(store.version), epoch_of(store.issued_at), now, self.trust.announced
            )
        log.info("trust list version %s applied (%d keys)", store.version, len(store))
        return True

    def _apply_policy(self, doc: dict[str, Any], payload: bytes, persist: bool, now: float) -> bool:
        from checkpost.policy import PolicyError
        from checkpost.policy.bundle import verify_policy_document

        try:
            policy = verify_policy_document(doc, self.policy_keys)
        except (PolicyError, ValueError) as exc:
            raise self._refuse("policy", str(exc), _reason(str(exc))) from None
        issued = epoch_of(policy.issued_at)
        with self._lock:
            old = self.context
            if policy.version == old.policy.version:
                raise AlreadyApplied(f"policy version {policy.version} already applied")
            held = self.policy.issued_at
            if held is not None and (issued is None or issued <= held):
                raise self._refuse(
                    "policy",
                    f"issued {policy.issued_at}, not newer than the policy held",
                    "not_newer",
                )
            verifier = _verifier(old.trust, old, policy)
            if persist:
                write_cache(self.policy_cache, payload)
            self.context = Context(verifier, policy, old.trust)
            self.policy = DocState(policy.version, issued, now, self.policy.announced)
        log.info("policy %s applied", policy.version)
        return True

    # -- health -----------------------------------------------------------------------------

    def trust_age_h(self, now: float) -> float | None:
        t = self.trust.issued_at or self.trust.applied_at
        return None if t is None else max(0.0, (now - t) / 3600.0)

    def trust_stale(self, now: float) -> bool:
        age = self.trust_age_h(now)
        return age is not None and age > self.trust_max_age_h

    def summary(self, now: float) -> dict[str, Any]:
        def one(s: DocState) -> dict[str, Any]:
            age = None if s.issued_at is None else round((now - s.issued_at) / 3600.0, 1)
            return {
                "version": s.version,
                "age_h": age,
                "pending": bool(s.announced) and s.announced != s.version,
                "announced": s.announced,
                "error": s.last_error,
            }

        out = {"trust": one(self.trust), "policy": one(self.policy)}
        out["trust"]["stale"] = self.trust_stale(now)
        out["trust"]["max_age_h"] = self.trust_max_age_h
        return out


def _reason(message: str) -> str:
    return "signature" if "sign" in message else "malformed"


def _verifier(store: TrustStore, old: Context, policy: Any = None) -> Verifier:
    policy = policy or old.policy
    v = old.verifier
    return Verifier(
        store,
        schemas=v.schemas,
        patterns=CodePatterns(tuple(policy.codes.tube_patterns), tuple(policy.codes.box_patterns)),
        skew=policy.clock.skew_seconds,
        hp1_max_age=policy.checkpoint.hp1_max_age_seconds,
    )
