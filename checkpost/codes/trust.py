"""Trust lists: which keys may sign which codes, and what has been revoked.

A trust list is a JSON document with its own version and issue time, signed as a whole by a
trust-list key that units are configured with; a unit never accepts a list signed by any
other key. Inside, entries map a key id (kid) to a public key or an X.509 certificate, with
algorithm, validity, issuer and the code kinds the key may sign. Revocation covers key ids
and hashed identifiers (SHA-256 of a DCC's certificate identifier or of an HP1 `sid`), so a
list can revoke one person's pass without naming them.

Lookups are by kid in a dict (O(1)); several entries may share a kid (kids are 8-byte
hashes, collisions are possible and some countries re-use them), and the pipeline tries each.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from checkpost.codes import cose

FORMAT = "checkpost-trust/1"
_COSE_ALG = cose.ALG_IDS
KINDS = ("HC1", "HP1", "SR1")

# HCERT extended-key-usage OIDs: a DSC carrying any of them may sign only those DCC types.
EKU_TYPES = {
    "1.3.6.1.4.1.1847.2021.1.1": "t",
    "1.3.6.1.4.1.1847.2021.1.2": "v",
    "1.3.6.1.4.1.1847.2021.1.3": "r",
    "1.3.6.1.4.1.0.1847.2021.1.1": "t",
    "1.3.6.1.4.1.0.1847.2021.1.2": "v",
    "1.3.6.1.4.1.0.1847.2021.1.3": "r",
}


class TrustListError(ValueError):
    """A trust list could not be read, or its signature does not verify."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)


def key_id(public_key: Any) -> bytes:
    """Key id for our own keys: the first 8 bytes of SHA-256 over the SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()[:8]


def cert_kid(cert_der: bytes) -> bytes:
    """HCERT key id of a document signer certificate: first 8 bytes of SHA-256 of its DER."""
    return hashlib.sha256(cert_der).digest()[:8]


def hashed_id(identifier: str) -> str:
    """The revocation form of an identifier (DCC certificate id or HP1 sid)."""
    return hashlib.sha256(identifier.encode("utf-8")).hexdigest()


def alg_of(public_key: Any) -> str:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ES256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(public_key, rsa.RSAPublicKey):
        return "PS256"
    raise TrustListError(f"unsupported key type {type(public_key).__name__}")


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _dcc_types(cert: x509.Certificate) -> frozenset[str] | None:
    """Which DCC types a signer certificate may sign, from its extended key usage.

    No EKU extension: any type. An EKU extension: only the types its HCERT OIDs name — a
    certificate whose EKU lists only foreign purposes may sign none (as the EU reference
    tests expect). An extension that does not even parse is treated as absent: the
    signature itself still has to verify.
    """
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        return None
    return frozenset(EKU_TYPES[o.dotted_string] for o in eku if o.dotted_string in EKU_TYPES)


@dataclass(slots=True)
class TrustEntry:
    kid: bytes
    alg: str
    public_key: Any
    issuer: str = ""
    kinds: frozenset[str] = frozenset(KINDS)
    not_before: float | None = None
    not_after: float | None = None
    certificate: x509.Certificate | None = None
    demo: bool = False
    # HC1 types this key may sign ("t", "v", "r"); None = no restriction.
    dcc_types: frozenset[str] | None = None

    @property
    def cose_alg(self) -> int:
        return _COSE_ALG[self.alg]

    @classmethod
    def from_certificate(
        cls, der: bytes, *, kinds: Iterable[str] = ("HC1",), demo: bool = False
    ) -> TrustEntry:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise TrustListError(f"not a DER X.509 certificate: {exc}") from None
        key = cert.public_key()
        return cls(
            kid=cert_kid(der),
            alg=alg_of(key),
            public_key=key,
            issuer=cert.subject.rfc4514_string(),
            kinds=frozenset(kinds),
            not_before=cert.not_valid_before_utc.timestamp(),
            not_after=cert.not_valid_after_utc.timestamp(),
            certificate=cert,
            demo=demo,
            dcc_types=_dcc_types(cert),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kid": b64(self.kid),
            "alg": self.alg,
            "issuer": self.issuer,
            "kinds": sorted(self.kinds),
            "demo": self.demo,
        }
        if self.certificate is not None:
            out["certificate"] = b64(self.certificate.public_bytes(serialization.Encoding.DER))
        else:
            out["public_key"] = b64(
                self.public_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            out["not_before"] = _iso(
                dt.datetime.fromtimestamp(self.not_before, dt.UTC) if self.not_before else None
            )
            out["not_after"] = _iso(
                dt.datetime.fromtimestamp(self.not_after, dt.UTC) if self.not_after else None
            )
        return out

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> TrustEntry:
        kinds = item.get("kinds", list(KINDS))
        demo = bool(item.get("demo", False))
        if "certificate" in item:
            entry = cls.from_certificate(unb64(item["certificate"]), kinds=kinds, demo=demo)
            if "kid" in item:
                entry.kid = unb64(item["kid"])
            return entry
        key = serialization.load_der_public_key(unb64(item["public_key"]))
        alg = item.get("alg") or alg_of(key)
        if alg != alg_of(key):
            raise TrustListError(f"entry {item.get('kid')}: alg {alg} does not match its key")
        return cls(
            kid=unb64(item["kid"]) if "kid" in item else key_id(key),
            alg=alg,
            public_key=key,
            issuer=item.get("issuer", ""),
            kinds=frozenset(kinds),
            not_before=_parse_time(item.get("not_before")),
            not_after=_parse_time(item.get("not_after")),
            demo=demo,
        )


@dataclass(slots=True)
class TrustStore:
    """The keys a verifier trusts, indexed by kid, plus revocations."""

    by_kid: dict[bytes, list[TrustEntry]] = field(default_factory=dict)
    revoked_kids: set[bytes] = field(default_factory=set)
    revoked_ids: set[str] = field(default_factory=set)
    version: int = 0
    issued_at: str = ""
    issuer: str = ""
    accept_demo: bool = False
    _signers: dict[tuple[bytes, str, bool], tuple[TrustEntry, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def add(self, entry: TrustEntry) -> None:
        self.by_kid.setdefault(entry.kid, []).append(entry)
        self._signers.clear()

    def signers(self, kid: bytes, fmt: str) -> tuple[TrustEntry, ...]:
        """The keys to try for a code of format `fmt` signed under `kid`: the candidates,
        keys allowed to sign that format first. Memoised per (kid, format), since every scan
        asks and the answer changes only when a key is added."""
        key = (kid, fmt, self.accept_demo)
        hit = self._signers.get(key)
        if hit is None:
            found = sorted(self.candidates(kid), key=lambda e: fmt not in e.kinds)
            hit = self._signers[key] = tuple(found)
        return hit

    def candidates(self, kid: bytes | None) -> list[TrustEntry]:
        entries = self.by_kid.get(kid) if kid is not None else None
        if not entries:
            return []
        if self.accept_demo:
            return entries
        return [e for e in entries if not e.demo]

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_kid.values())

    def entries(self) -> list[TrustEntry]:
        return [e for v in self.by_kid.values() for e in v]

    def merged(self, other: TrustStore) -> TrustStore:
        out = TrustStore(
            revoked_kids=self.revoked_kids | other.revoked_kids,
            revoked_ids=self.revoked_ids | other.revoked_ids,
            version=max(self.version, other.version),
            issued_at=max(self.issued_at, other.issued_at),
            issuer=self.issuer or other.issuer,
            accept_demo=self.accept_demo or other.accept_demo,
        )
        for e in self.entries() + other.entries():
            out.add(e)
        return out


def build_trust_list(
    entries: Iterable[TrustEntry],
    signer: Any,
    *,
    version: int,
    issuer: str,
    revoked_kids: Iterable[bytes] = (),
    revoked_ids: Iterable[str] = (),
    issued_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """A signed trust-list document (JSON-serialisable)."""
    from checkpost.signed import sign_document

    body = {
        "format": FORMAT,
        "version": int(version),
        "issued_at": _iso(issued_at or dt.datetime.now(dt.UTC)),
        "issuer": issuer,
        "keys": [e.to_json() for e in entries],
        "revoked_kids": sorted(b64(k) for k in revoked_kids),
        "revoked_ids": sorted(set(revoked_ids)),
    }
    return sign_document(body, signer, body_key="trust_list")


def verify_trust_document(doc: Any, signer_keys: Iterable[Any]) -> dict[str, Any]:
    """Check a trust-list document's signature against the configured signer keys."""
    from checkpost.signed import SignatureError, verify_document

    try:
        return verify_document(
            doc, signer_keys, body_key="trust_list", format=FORMAT, what="trust list"
        )
    except SignatureError as exc:
        raise TrustListError(str(exc)) from None


def store_from_body(body: dict[str, Any], *, accept_demo: bool = False) -> TrustStore:
    store = TrustStore(
        version=int(body.get("version", 0)),
        issued_at=str(body.get("issued_at", "")),
        issuer=str(body.get("issuer", "")),
        accept_demo=accept_demo,
        revoked_kids={unb64(k) for k in body.get("revoked_kids", [])},
        revoked_ids=set(body.get("revoked_ids", [])),
    )
    for i, item in enumerate(body.get("keys", [])):
        try:
            store.add(TrustEntry.from_json(item))
        except (KeyError, ValueError, TypeError) as exc:
            raise TrustListError(f"keys[{i}]: {exc}") from None
    return store


def load_public_key(path: str | Path) -> Any:
    data = Path(path).read_bytes()
    try:
        if b"BEGIN CERTIFICATE" in data:
            return x509.load_pem_x509_certificate(data).public_key()
        return serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise TrustListError(f"{path}: not a PEM public key or certificate: {exc}") from None


def load_trust_list(
    path: str | Path, signer_keys: Iterable[Any], *, accept_demo: bool = False
) -> TrustStore:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrustListError(f"{path}: cannot read trust list: {exc}") from None
    body = verify_trust_document(doc, signer_keys)
    return store_from_body(body, accept_demo=accept_demo)
