"""The one code-format pipeline: every code any station scans goes through `Verifier.verify`.

    text ─ unprefix ─ Base45 ─ zlib ─ COSE_Sign1 ─ CBOR claims ─ signature ─ expiry ─ schema
         ─ key usage ─ revocation                      (HC1, HP1, SR1: signed formats)
    text ─ pattern                                     (tube and box codes)

Every step reports pass/fail in `Decoded.steps` (absent where not reached or not applicable)
and every failure adds a reason; nothing raises past `verify`. Steps go on as far as the data
allows even after a failure (a forged pass is still decoded, and its expiry still checked),
so that one look at the result says everything that is wrong with a code. The verdict is
the policy engine's job (`checkpost.policy`); a code with any failed step never passes.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
import msgspec

from checkpost.codes import cose
from checkpost.codes.base45 import Base45Error, b45decode
from checkpost.codes.claims import (
    CLAIM_EXP,
    CLAIM_HCERT,
    CLAIM_IAT,
    CLAIM_ISS,
    CLAIM_OF_FORMAT,
    STRUCT_OF_FORMAT,
)
from checkpost.codes.cose import ALG_NAMES, MAP_TYPES, CoseError, parse_sign1, verify_signature
from checkpost.codes.dcc import SchemaStore, certificate_ids, dcc_type
from checkpost.codes.trust import TrustEntry, TrustStore, hashed_id
from checkpost.reasons import Reason, reason

SIGNED_FORMATS = ("HC1", "HP1", "SR1")
STEPS = (
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
    "revocation",
)
# A decompression bomb must not take a unit's memory: real certificates are a few kB.
MAX_INFLATED = 64 * 1024
MAX_TEXT = 8 * 1024


@dataclass(slots=True)
class CodePatterns:
    """Plain-text codes: tubes (Code 128 or QR labels) and transfer boxes."""

    tube: tuple[str, ...] = (r"\d{10,14}",)
    box: tuple[str, ...] = (r"BOX\d{6,10}",)
    _tube: list[re.Pattern[str]] = field(default_factory=list, repr=False)
    _box: list[re.Pattern[str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._tube = [re.compile(p) for p in self.tube]
        self._box = [re.compile(p) for p in self.box]

    def kind(self, text: str) -> str | None:
        if any(p.fullmatch(text) for p in self._box):
            return "box"
        if any(p.fullmatch(text) for p in self._tube):
            return "tube"
        return None


class Decoded:
    """Everything the pipeline learnt about one code.

    A plain slotted class rather than a dataclass: one is built per scan, and the generated
    dataclass __init__ with default factories costs several times a hand-written one.
    """

    __slots__ = (
        "alg",
        "claims",
        "content",
        "exp",
        "format",
        "iat",
        "issuer",
        "kid",
        "reasons",
        "signer",
        "steps",
        "text",
    )

    def __init__(self, text: str, format: str = "unknown") -> None:
        self.text = text
        self.format = format
        self.steps: dict[str, bool] = {}
        self.reasons: list[Reason] = []
        self.kid: bytes | None = None
        self.alg: int | None = None
        self.issuer: str | None = None
        self.claims: Mapping[Any, Any] | None = None
        self.content: Any = None  # HealthPass / SamplingRegistration struct, or the DCC dict
        self.iat: float | None = None
        self.exp: float | None = None
        self.signer: TrustEntry | None = None

    def __repr__(self) -> str:
        return f"Decoded(format={self.format!r}, steps={self.steps}, reasons={self.reasons})"

    @property
    def valid(self) -> bool:
        """All steps passed: the code is genuine, current and well-formed."""
        return not self.reasons and False not in self.steps.values()

    def fail(self, step: str, why: Reason) -> None:
        self.steps[step] = False
        self.reasons.append(why)

    def payload_json(self) -> dict[str, Any] | None:
        if self.claims is None:
            return None
        return {_claim_name(k): json_safe(v) for k, v in self.claims.items()}


_CLAIM_NAMES = {CLAIM_ISS: "iss", CLAIM_EXP: "exp", CLAIM_IAT: "iat", CLAIM_HCERT: "hcert"}
_CLAIM_NAMES.update({v: k.lower() for k, v in CLAIM_OF_FORMAT.items() if k != "HC1"})


def _claim_name(key: Any) -> str:
    return _CLAIM_NAMES.get(key, str(key))


def _json_hook(value: Any) -> Any:
    if isinstance(value, cbor2.frozendict):
        return dict(value)
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": value.value}
    if isinstance(value, cbor2.CBORSimpleValue | cbor2.undefined.__class__):
        return None
    return str(value)


_to_json = msgspec.json.Encoder(enc_hook=_json_hook).encode
_from_json = msgspec.json.Decoder().decode
_convert = msgspec.convert
_decompressobj = zlib.decompressobj


def json_safe(value: Any) -> Any:
    """Decoded CBOR as JSON data: byte strings as base64, dates as ISO 8601 text, map keys as
    text, NaN as null. One msgspec encode/decode round trip does it in C (a recursive Python
    walk cost ~10x more on an EU certificate)."""
    return _from_json(_to_json(value))


def _is_zlib_header(data: bytes) -> bool:
    """RFC 1950 header: deflate method (8), window ≤ 32 KiB, header checksum. Any window
    size is valid (not only the 0x78 most encoders write)."""
    if len(data) < 2:
        return False
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf * 256 + flg) % 31 == 0


class Verifier:
    """Decodes and checks codes against a trust store; safe to share, never raises.

    `hp1_max_age` caps an HP1 pass's life after its `iat` whatever its `exp` says: the app
    refreshes every minute, so an older code is a screenshot.
    """

    def __init__(
        self,
        trust: TrustStore,
        *,
        schemas: SchemaStore | None = None,
        patterns: CodePatterns | None = None,
        skew: float = 60.0,
        hp1_max_age: float = 180.0,
    ) -> None:
        self.trust = trust
        self.schemas = schemas
        self.patterns = patterns or CodePatterns()
        self.skew = skew
        self.hp1_max_age = hp1_max_age

    def verify(self, text: str, now: float) -> Decoded:
        try:
            code = text.strip()
            d = Decoded(code)
            if not code or len(code) > MAX_TEXT:
                d.reasons.append(reason("unreadable"))
                return d
            prefix = code[:3]
            if code[3:4] == ":" and prefix in SIGNED_FORMATS:
                d.format = prefix
                d.steps["unprefix"] = True
                self._signed(d, code[4:], now)
                return d
            return self._plain(d, code)
        except Exception as exc:  # pragma: no cover - a bug, but a scan must never crash
            d = Decoded(text=text if isinstance(text, str) else repr(text))
            d.reasons.append(reason("unreadable"))
            d.reasons.append(Reason("internal_error", f"internal error: {exc}", f"内部错误：{exc}"))
            return d

    def _plain(self, d: Decoded, text: str) -> Decoded:
        kind = self.patterns.kind(text)
        if kind is not None:
            d.format = kind
            return d
        # Neither a known prefix nor a plain code: the unprefix step is what failed.
        if text[:3] in SIGNED_FORMATS:
            d.format = text[:3]
        d.fail("unprefix", reason("unknown_format"))
        return d

    # -- signed formats -------------------------------------------------------------------
    # One method for the whole chain: every scan runs it, and per-step method calls and `d.`
    # round trips cost more than most steps' own Python. The signature step, HC1's schema
    # and revocation by identifier (slow anyway, or rare) keep their own methods.

    def _signed(self, d: Decoded, body: str, now: float) -> None:
        try:
            compressed = b45decode(body)
        except Base45Error:
            d.fail("base45", reason("base45"))
            return
        steps = d.steps
        steps["base45"] = True

        if _is_zlib_header(compressed):
            try:
                inflater = _decompressobj()
                raw = inflater.decompress(compressed, MAX_INFLATED)
                if inflater.unconsumed_tail:
                    raise zlib.error("inflated size exceeds limit")
                if not inflater.eof:  # cut short: the Adler-32 trailer was never checked
                    raise zlib.error("truncated stream")
                steps["zlib"] = True
            except zlib.error:
                d.fail("zlib", reason("zlib"))
                return
        else:
            # Not compressed: a step failure; decoding goes on so the rest can be reported.
            d.fail("zlib", reason("zlib"))
            raw = compressed

        try:
            msg = parse_sign1(raw)
        except CoseError:
            d.fail("cose", reason("cose"))
            return
        steps["cose"] = True
        fmt = d.format
        d.kid = kid = msg.kid
        d.alg = alg = msg.alg

        # CBOR claims: a map holding the format's content map (HC1: under hcert's key 1).
        try:
            claims = cbor2.loads(msg.payload)
        except Exception:
            d.fail("cbor", reason("cbor"))
            claims = None
        content = iss = None
        if isinstance(claims, MAP_TYPES):
            content = claims.get(CLAIM_OF_FORMAT[fmt])
            if fmt == "HC1" and isinstance(content, MAP_TYPES):
                content = content.get(1)
            if not isinstance(content, MAP_TYPES):
                content = None
        if content is None:
            if "cbor" not in steps:
                d.fail("cbor", reason("cbor"))
        else:
            steps["cbor"] = True
            d.claims, d.content = claims, content
            iss = claims.get(CLAIM_ISS)
            if isinstance(iss, str):
                d.issuer = iss

        signer = self._signature(d, msg, kid, alg, fmt)
        if content is None:
            return

        # Expiry. Numbers only (a bool is an int to Python, not a time to us).
        exp, iat = claims.get(CLAIM_EXP), claims.get(CLAIM_IAT)
        exp = float(exp) if type(exp) is int or type(exp) is float else None
        iat = float(iat) if type(iat) is int or type(iat) is float else None
        d.exp, d.iat = exp, iat
        skew = self.skew
        if exp is None:
            d.fail("expiry", reason("no_expiry"))
        else:
            if fmt == "HP1" and iat is not None:
                exp = min(exp, iat + self.hp1_max_age)
            if now > exp + skew:
                d.fail("expiry", reason("expired"))
            elif iat is not None and iat > now + skew:
                d.fail("expiry", reason("not_yet_valid"))
            elif signer is not None and not _key_valid_at(signer, now):
                d.fail("expiry", reason("key_not_valid"))
            else:
                steps["expiry"] = True

        # Schema: HC1 the JSON schema of its version; HP1 and SR1 our own typed structs.
        if fmt == "HC1":
            self._hc1_schema(d)
        elif not isinstance(iss, str):
            d.fail("schema", reason("schema", detail="issuer (claim 1) missing"))
        else:
            try:
                d.content = _convert(content, STRUCT_OF_FORMAT[fmt], strict=True)
                steps["schema"] = True
            except msgspec.ValidationError as exc:
                d.fail("schema", reason("schema", detail=str(exc)[:120]))

        # Key usage: the signer may sign this format (and, for HC1, this certificate type).
        if signer is not None:
            if fmt not in signer.kinds:
                d.fail("key_usage", reason("wrong_kind", kind=fmt))
            elif fmt == "HC1" and signer.dcc_types is not None:
                if dcc_type(d.content) in signer.dcc_types:
                    steps["key_usage"] = True
                else:
                    d.fail("key_usage", reason("key_usage"))
            else:
                steps["key_usage"] = True

        if self.trust.revoked_ids:
            self._revocation(d)
        else:  # the common case: nothing to look up, no identifiers to hash
            steps["revocation"] = True

    def _signature(
        self, d: Decoded, msg: cose.Sign1, kid: bytes | None, alg: int | None, fmt: str
    ) -> TrustEntry | None:
        """The signature step; returns the trust entry whose key verified it."""
        if kid is None:
            d.fail("signature", reason("no_kid"))
            return None
        trust = self.trust
        if kid in trust.revoked_kids:
            d.fail("signature", reason("key_revoked"))
            return None
        if alg not in ALG_NAMES:
            d.fail("signature", reason("bad_algorithm", alg=alg))
            return None
        candidates = trust.signers(kid, fmt)
        if not candidates:
            d.fail("signature", reason("unknown_key"))
            return None
        tbs = msg.to_be_signed()
        signature = msg.signature
        for entry in candidates:
            if entry.cose_alg == alg and verify_signature(
                alg, entry.public_key, tbs, signature, key_checked=True
            ):
                d.signer = entry
                d.steps["signature"] = True
                if d.issuer is None:
                    d.issuer = entry.issuer
                return entry
        d.fail("signature", reason("bad_signature"))
        return None

    def _hc1_schema(self, d: Decoded) -> None:
        if self.schemas is None:
            d.fail("schema", reason("schema", detail="no DCC schemas configured"))
            return
        # CBOR may carry tagged dates; the schemas describe the JSON form.
        d.content = json_safe(d.content)
        problem = self.schemas.validate(d.content)
        if problem is None and dcc_type(d.content) is None:
            problem = "must hold exactly one of vaccination, test or recovery"
        if problem:
            d.fail("schema", reason("schema", detail=problem))
            return
        d.steps["schema"] = True

    def _revocation(self, d: Decoded) -> None:
        """Revocation by identifier, when the trust list revokes any."""
        if d.format == "HC1":
            ids = certificate_ids(d.content)
        else:
            sid = getattr(d.content, "sid", None)
            if sid is None and isinstance(d.content, dict):
                sid = d.content.get("sid")
            ids = [sid] if isinstance(sid, str) else []
        if any(hashed_id(i) in self.trust.revoked_ids for i in ids):
            d.fail("revocation", reason("revoked"))
        else:
            d.steps["revocation"] = True


def valid_window(d: Decoded, skew: float, hp1_max_age: float) -> tuple[float, float] | None:
    """The span of `now` values over which the expiry step passes for this decoded code
    (its iat/exp with the clock skew, the HP1 maximum age, and its signing key's validity),
    or None without an expiry. Written beside `_signed`'s expiry step, which it mirrors,
    so that a cache of verified codes (hub/prepare.py) re-decides expiry the same way."""
    if d.exp is None:
        return None
    exp, iat, signer = d.exp, d.iat, d.signer
    if d.format == "HP1" and iat is not None:
        exp = min(exp, iat + hp1_max_age)
    lo = iat - skew if iat is not None else float("-inf")
    hi = exp + skew
    if signer is not None:
        if signer.not_before is not None:
            lo = max(lo, signer.not_before)
        if signer.not_after is not None:
            hi = min(hi, signer.not_after)
    return lo, hi


def _key_valid_at(entry: TrustEntry, when: float) -> bool:
    if entry.not_before is not None and when < entry.not_before:
        return False
    return not (entry.not_after is not None and when > entry.not_after)
