"""Signed documents from the hub to the units, and to the hub's own loop workers.

Who does what:

- **The API process publishes** (it already owns the hub's birth and death on the broker):
  one :class:`DocumentPublisher` reads the configured trust list (`[trust] file`, or a test
  issuer's list with `--issuer-dir`) and signed policy bundle (`[policy] file` ending in
  `.json`), checks each with the configured signer keys and the very acceptance rules of the
  units (:class:`checkpost.documents.Documents`: signature, a newer version), and
  publishes **the file's exact bytes**, retained, QoS 1, on `<root>/hub/trust` and
  `<root>/hub/policy`. It looks again on start, every `[hub] documents_poll_s` seconds (the
  file's mtime, size and inode) and on SIGHUP. A document that does not verify, or is older
  than the one published, is refused — an ERROR log line naming the file and the reason and
  `checkpost_hub_documents_refused_total{kind,where="publisher",reason}` — and the
  previous one stays retained; nothing crashes. A policy that is not a signed bundle (the
  built-in default, a parameters TOML) cannot be pushed: its version is announced
  (PolicyAnnounce) as before.
- **Loop workers follow the retained topics** (:func:`follow_documents`, one hook line in
  `Worker.start`): a worker subscribes to `hub/policy` and `hub/trust` on its own link,
  checks what arrives on a separate thread with the same :class:`Documents` rules and
  signer keys, and then swaps three references on the loop thread between two events
  (`worker.ctx`, `worker.prepare`, `worker.policy_version`). The hot path is untouched: it
  reads `self.prepare` as before. A restarted worker builds its context from the files and
  gets the retained documents on subscribe, so it converges on what the units hold.
- **The sealed-building list** (`[hub] sealed_file`, built by `checkpost hub sealed`) is
  published the same way on `<root>/hub/sealed`, checked with the gates' rules
  (`checkpost.protocol.lists.verify_sealed` under the trust-list signer keys, a higher
  version); loop workers do not need it.
- **Units** apply the same bytes (`checkpost.documents`).

The single source of truth is the retained message; the files are its input.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from checkpost.protocol import PolicyAnnounce, Topics, TrustAnnounce, encode
from checkpost.protocol.messages import MAX_DOCUMENT

log = logging.getLogger("checkpost.hub.publisher")

PUBLISHED = Counter(
    "checkpost_hub_documents_published", "Signed documents published to the units", ["kind"]
)
REFUSED = Counter(
    "checkpost_hub_documents_refused",
    "Documents refused: not published (publisher) or not switched to (worker), by reason",
    ["kind", "where", "reason"],
)
APPLIED = Counter(
    "checkpost_hub_documents_applied", "Documents a loop worker switched to", ["kind"]
)

KINDS = ("trust", "policy", "sealed")
_NAMES = {"trust": "trust list", "policy": "policy bundle", "sealed": "sealed-building list"}
_MISSING = (-1, -1, -1)


def _rel(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def signer_keys(cfg: Any, base: Path | None = None) -> tuple[list[Any], list[Any]]:
    """(trust-list signer keys, policy signer keys) the hub accepts. No fallback from one
    to the other: a policy bundle needs a configured `[policy] signer_keys` key."""
    from checkpost.codes.trust import load_public_key

    base = base or Path.cwd()
    trust = [load_public_key(_rel(k, base)) for k in cfg.trust.signer_keys]
    policy = [load_public_key(_rel(k, base)) for k in cfg.policy.signer_keys]
    if cfg.hub.issuer_dir is not None:
        from checkpost.issuer import TestIssuer

        trust.append(TestIssuer.load(cfg.hub.issuer_dir).trust_key.public_key())
    return trust, policy


def document_paths(cfg: Any, base: Path | None = None) -> dict[str, Path | None]:
    """The files the hub publishes; None where there is no signed document to push."""
    base = base or Path.cwd()
    trust: Path | None = None
    if cfg.trust.file:
        trust = _rel(cfg.trust.file, base)
    elif cfg.hub.issuer_dir is not None:
        from checkpost.issuer import TestIssuer

        trust = TestIssuer.load(cfg.hub.issuer_dir).trust_list_path
    policy = None
    if cfg.policy.file and str(cfg.policy.file).endswith(".json"):
        policy = _rel(cfg.policy.file, base)
    sealed = _rel(cfg.hub.sealed_file, base) if cfg.hub.sealed_file else None
    return {"trust": trust, "policy": policy, "sealed": sealed}


def _documents(cfg: Any, ctx: Any, base: Path | None = None) -> Any:
    from checkpost.documents import Documents

    trust_keys, policy_keys = signer_keys(cfg, base)
    return Documents(
        ctx,
        cfg.data_dir(),
        trust_keys=trust_keys,
        policy_keys=policy_keys,
        accept_demo=cfg.trust.accept_demo or cfg.hub.issuer_dir is not None,
    )


@dataclass(slots=True)
class Published:
    """What the hub retains on one topic (a signed document, or an announcement)."""

    kind: str
    payload: bytes
    version: str
    issued_at: str = ""
    source: str = ""  # the file, or "built-in"
    signed: bool = False
    sha256: str = ""
    published_at: float | None = None

    def view(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "issued_at": self.issued_at,
            "signed": self.signed,
            "source": self.source,
            "bytes": len(self.payload),
            "sha256": self.sha256,
            "published_at": self.published_at,
        }


@dataclass(slots=True)
class Refusal:
    at: float
    source: str
    reason: str
    error: str

    def view(self) -> dict[str, Any]:
        return {"at": self.at, "source": self.source, "reason": self.reason, "error": self.error}


class DocumentPublisher:
    """Reads, checks and remembers the documents to retain; `publish()` sends them."""

    def __init__(self, cfg: Any, base: Path | None = None) -> None:
        from checkpost.runtime import build_context
        from checkpost.settings import CoreSettings

        self.cfg = cfg
        self.topics = Topics(cfg.hub.topic_root)
        self.paths = document_paths(cfg, base)
        # Start from nothing (trust list version 0, the built-in policy without an issue
        # time): the first readable, verified file is accepted, later ones must be newer.
        self.docs = _documents(cfg, build_context(CoreSettings(hc1=cfg.hc1)), base)
        self._stamps: dict[str, tuple[int, int, int] | None] = {k: None for k in KINDS}
        self.current: dict[str, Published] = {}
        self.refused: dict[str, Refusal] = {}

    # -- reading and checking ---------------------------------------------------------------

    def refresh(self, force: bool = False) -> list[str]:
        """Look at the files; returns the kinds whose retained payload changed. Blocking
        (reads, verifies, compiles a policy): run it off the event loop. Never raises."""
        changed = []
        for kind in KINDS:
            try:
                if self._refresh_one(kind, force):
                    changed.append(kind)
            except Exception as exc:  # a bug must not stop publishing the other document
                log.exception("checking the %s document failed", kind)
                self._refuse(kind, str(self.paths[kind]), "internal_error", repr(exc))
        return changed

    def _refresh_one(self, kind: str, force: bool) -> bool:
        from checkpost.documents import AlreadyApplied, DocumentError

        path = self.paths[kind]
        if path is None:
            if kind in self.current or kind == "sealed":  # no list configured: none pushed
                return False
            self.current[kind] = self._announcement(kind)
            return True
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError as exc:
            if force or self._stamps[kind] != _MISSING:  # say it once, not every poll
                self._stamps[kind] = _MISSING
                self._refuse(kind, str(path), "unreadable", f"cannot read: {exc.strerror}")
            return False
        if stamp == self._stamps[kind] and not force:
            return False
        self._stamps[kind] = stamp
        if st.st_size > MAX_DOCUMENT:
            self._refuse(kind, str(path), "too_large", f"{st.st_size} bytes > {MAX_DOCUMENT}")
            return False
        try:
            payload = path.read_bytes()
        except OSError as exc:
            self._refuse(kind, str(path), "unreadable", f"cannot read: {exc.strerror}")
            return False
        if kind == "sealed":
            return self._refresh_sealed(path, payload)
        body_key = "trust_list" if kind == "trust" else "policy"
        if f'"{body_key}"'.encode() not in payload:
            self._refuse(kind, str(path), "malformed", f"not a signed document ('{body_key}')")
            return False
        first = kind not in self.current or not self.current[kind].signed
        try:
            self.docs.apply(kind, payload, persist=False)
        except AlreadyApplied:
            if not first:
                return False  # the file was touched or rewritten with the same document
            # The first document read has the content already in use (a bundle of the
            # built-in parameters): it verified, so publish it, and hold its issue time.
        except DocumentError as exc:
            self._refuse(kind, str(path), exc.reason, str(exc))
            return False
        from checkpost.documents import epoch_of

        body = json.loads(payload)[body_key]
        issued_at = str(body.get("issued_at", ""))
        state = self.docs.trust if kind == "trust" else self.docs.policy
        if state.issued_at is None:
            state.issued_at = epoch_of(issued_at)
        self._accept(kind, path, payload, state.version, issued_at)
        return True

    def _accept(
        self, kind: str, path: Path, payload: bytes, version: str, issued_at: str, more: str = ""
    ) -> None:
        """A verified, newer document becomes the one to retain on its topic."""
        self.refused.pop(kind, None)
        self.current[kind] = Published(
            kind,
            payload,
            version,
            issued_at=issued_at,
            source=str(path),
            signed=True,
            sha256=hashlib.sha256(payload).hexdigest(),
        )
        log.warning(  # an operator wants to see this line at the default level
            "%s version %s (issued %s%s) from %s will be published on %s",
            _NAMES[kind],
            version,
            issued_at or "?",
            more,
            path,
            self.topic(kind),
        )

    def _refresh_sealed(self, path: Path, payload: bytes) -> bool:
        """The gates' rules: signed with a trust-list signer key, and a newer version."""
        from checkpost.protocol.lists import verify_sealed
        from checkpost.signed import SignatureError

        try:
            sealed = verify_sealed(payload, self.docs.trust_keys)
        except SignatureError as exc:
            self._refuse("sealed", str(path), "signature", str(exc))
            return False
        held = self.current.get("sealed")
        if held is not None:
            if payload == held.payload:
                return False
            if sealed.version <= int(held.version):
                self._refuse(
                    "sealed",
                    str(path),
                    "not_newer",
                    f"version {sealed.version} is not newer than {held.version}",
                )
                return False
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sealed.issued_at))
        more = f"; {len(sealed.sids)} ids, {sealed.scope or 'no scope'}"
        self._accept("sealed", path, payload, str(sealed.version), issued, more)
        return True

    def _announcement(self, kind: str) -> Published:
        """A bare version announcement where there is no signed document to push."""
        ctx = self.docs.context
        if kind == "trust":
            version = str(ctx.trust.version)
            payload = encode(TrustAnnounce(version=version, entries=len(ctx.trust)))
            return Published(kind, payload, version, source="built-in")
        from checkpost.policy import load_policy

        policy = ctx.policy
        if self.cfg.policy.file:  # a parameters TOML: its version, not pushable
            try:
                policy = load_policy(str(_rel(self.cfg.policy.file, Path.cwd())))
            except ValueError as exc:
                log.error("policy %s: %s", self.cfg.policy.file, exc)
        payload = encode(PolicyAnnounce(version=policy.version, name=policy.name))
        return Published(kind, payload, policy.version, source=self.cfg.policy.file or "built-in")

    def _refuse(self, kind: str, source: str, reason: str, error: str) -> None:
        self.refused[kind] = Refusal(time.time(), source, reason, error)
        REFUSED.labels(kind, "publisher", reason).inc()
        held = self.current.get(kind)
        log.error(
            "NOT publishing the %s from %s (%s): %s; units keep %s",
            _NAMES[kind],
            source,
            reason,
            error,
            f"version {held.version}" if held else "what they hold",
        )

    # -- publishing -------------------------------------------------------------------------

    def topic(self, kind: str) -> str:
        return {
            "trust": self.topics.hub_trust,
            "policy": self.topics.hub_policy,
            "sealed": self.topics.hub_sealed,
        }[kind]

    def version(self, kind: str) -> str:
        p = self.current.get(kind)
        return p.version if p else ""

    def publish(self, link: Any, kinds: list[str] | tuple[str, ...] = KINDS) -> None:
        """Retain the current documents (QoS 1) on `link` (a hub transport Link)."""
        now = time.time()
        for kind in kinds:
            p = self.current.get(kind)
            if p is None:
                continue
            link.publish(self.topic(kind), p.payload, 1, retain=True)
            p.published_at = now
            if p.signed:
                PUBLISHED.labels(kind).inc()

    def view(self, now: float | None = None) -> dict[str, Any]:
        """`GET /api/v1/documents`: what is retained, and the last refusal of each kind."""
        now = time.time() if now is None else now
        out: dict[str, Any] = {}
        for kind in KINDS:
            p = self.current.get(kind)
            r = self.refused.get(kind)
            entry: dict[str, Any] = {
                "topic": self.topic(kind),
                "file": None if self.paths[kind] is None else str(self.paths[kind]),
                "published": None if p is None else p.view(),
                "refused": None if r is None else r.view(),
            }
            if p is not None and p.issued_at:
                from checkpost.documents import epoch_of

                t = epoch_of(p.issued_at)
                entry["age_h"] = None if t is None else round((now - t) / 3600.0, 2)
            out[kind] = entry
        return out


async def run_publisher(
    publisher: DocumentPublisher,
    link: Any,
    on_change: Any,
    wake: asyncio.Event,
    poll_s: float,
) -> None:
    """The API process's task: look at the files every `poll_s` seconds or when `wake` is
    set (SIGHUP), publish what changed, then call `on_change()` (the hub's birth carries
    the versions)."""
    while True:
        try:
            await asyncio.wait_for(wake.wait(), poll_s)
        except TimeoutError:
            pass
        force = wake.is_set()
        wake.clear()
        if force:
            log.warning("SIGHUP: reading the trust list, policy and sealed-list files again")
        changed = await asyncio.to_thread(publisher.refresh, force)
        if changed and link.connected.is_set():
            publisher.publish(link, changed)
            on_change()


# -- loop workers -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Follower:
    worker: Any
    docs: Any
    pool: ThreadPoolExecutor
    topics: Topics

    def on_message(self, topic: str, payload: bytes, token: Any) -> None:
        """On the loop thread: acknowledge (the document is retained: a lost one comes
        back on the next subscribe), check it on the documents thread, swap after."""
        link = self.worker.link
        if link is not None:
            link.ack(token)
        kind = (
            "policy"
            if topic == self.topics.hub_policy
            else "trust"
            if topic == self.topics.hub_trust
            else None
        )
        if kind is None or not payload:
            return
        if len(payload) > MAX_DOCUMENT:
            REFUSED.labels(kind, "worker", "too_large").inc()
            log.error("worker: %s document of %d bytes refused", kind, len(payload))
            return
        fut = asyncio.get_running_loop().run_in_executor(
            self.pool, self.check, kind, bytes(payload)
        )
        fut.add_done_callback(self.swap)

    def check(self, kind: str, payload: bytes) -> Any:
        """On the documents thread: the units' rules; a new Preparer when accepted."""
        from checkpost.hub.prepare import Preparer

        from checkpost.documents import AlreadyApplied, DocumentError

        try:
            if not self.docs.apply(kind, payload, persist=False):
                return None  # a bare announcement: nothing to switch to
        except AlreadyApplied:
            return None
        except DocumentError as exc:
            REFUSED.labels(kind, "worker", exc.reason).inc()
            log.error("worker %s: %s (still deciding with the current one)", self.worker.index, exc)
            return None
        ctx = self.docs.context
        return kind, ctx, Preparer(ctx.verifier, ctx.policy)

    def swap(self, fut: Any) -> None:
        """On the loop thread, between two events: three reference assignments."""
        try:
            res = fut.result()
        except Exception:
            log.exception("worker: checking a pushed document failed")
            return
        if res is None:
            return
        kind, ctx, prepare = res
        w = self.worker
        w.ctx, w.prepare, w.policy_version = ctx, prepare, ctx.policy.version
        APPLIED.labels(kind).inc()
        log.warning(
            "worker %s now decides with policy %s and trust list version %s",
            w.index,
            ctx.policy.version,
            ctx.trust.version,
        )


def follow_documents(worker: Any) -> Any:
    """Make a loop Worker follow the retained documents (call before its link connects)."""
    topics = worker.topics
    follower = _Follower(
        worker,
        _documents(worker.cfg, worker.ctx),
        ThreadPoolExecutor(1, thread_name_prefix="hub-docs"),
        topics,
    )
    worker.link.route(f"{topics.root}/hub/", follower.on_message)
    worker.link.subscribe(topics.hub_policy, 1)
    worker.link.subscribe(topics.hub_trust, 1)
    return follower
