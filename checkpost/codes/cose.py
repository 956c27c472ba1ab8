"""COSE_Sign1 (RFC 9052) parsing, verification and signing, built directly on `cryptography`.

The COSE stack other Python DCC verifiers use (pycose) costs ~1.7 ms per verify — 28x the
bare signature check — and cannot decode a tagged COSE_Sign1 with cbor2 6.x. The structure
is small: a 4-array of protected header bytes, unprotected map, payload and signature. We
build the Sig_structure by hand (a fixed CBOR prefix plus two byte-string headers), which is
the only part a verifier has to serialise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
from cbor2 import CBORTag, loads
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

COSE_SIGN1_TAG = 18
CWT_TAG = 61
HDR_ALG = 1
HDR_KID = 4

# COSE algorithm ids we accept; anything else is refused with its number in the reason.
ALG_ES256 = -7
ALG_EDDSA = -8
ALG_PS256 = -37
ALG_NAMES = {ALG_ES256: "ES256", ALG_EDDSA: "EdDSA", ALG_PS256: "PS256"}
ALG_IDS = {v: k for k, v in ALG_NAMES.items()}

# cbor2 decodes maps nested in tags as its own immutable `frozendict`; checking concrete
# types instead of `collections.abc.Mapping` avoids the slow ABC machinery on the hot path.
MAP_TYPES = (dict, cbor2.frozendict)
_ARRAY_TYPES = (list, tuple)
_BYTES_TYPES = (bytes, bytearray)
_SIG1_PREFIX = b"\x84\x6aSignature1"  # array(4), text(10) "Signature1"
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_SHA256 = hashes.SHA256()


class CoseError(ValueError):
    """The bytes are not a well-formed COSE_Sign1 message."""


def _bstr_head(n: int) -> bytes:
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    return b"\x5a" + n.to_bytes(4, "big")


def _sig_head(protected: bytes) -> bytes:
    """CBOR of ["Signature1", protected, h'', …: the Sig_structure up to the payload."""
    return b"".join((_SIG1_PREFIX, _bstr_head(len(protected)), protected, b"\x40"))


def _sig_with_payload(head: bytes, payload: bytes) -> bytes:
    return b"".join((head, _bstr_head(len(payload)), payload))


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """CBOR of ["Signature1", protected, h'', payload]: what the signature covers."""
    return _sig_with_payload(_sig_head(protected), payload)


@dataclass(slots=True)
class Sign1:
    protected_raw: bytes
    protected: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes
    tagged: bool
    # The protected header wins for both; the unprotected header is a fallback the HCERT spec
    # allows. For the algorithm that is harmless although the signature does not cover it: a
    # trust entry's algorithm is fixed by its key's type, so a swapped header can only name
    # the key's own algorithm. Read once at parse time (every scan asks for both).
    alg: int | None
    kid: bytes | None
    # `_sig_head(protected_raw)`, kept with the parsed header: the same for every code an
    # issuer signs.
    sig_head: bytes

    def to_be_signed(self) -> bytes:
        return _sig_with_payload(self.sig_head, self.payload)


def parse_sign1(data: bytes) -> Sign1:
    try:
        obj = loads(data)
    except Exception as exc:  # cbor2 raises several types for malformed input
        raise CoseError(f"not CBOR: {exc}") from None
    tagged = False
    if isinstance(obj, CBORTag):
        if obj.tag == CWT_TAG:
            obj = obj.value  # a CWT tag around the COSE message is allowed (RFC 8392 §6)
        if isinstance(obj, CBORTag):
            if obj.tag != COSE_SIGN1_TAG:
                raise CoseError(f"CBOR tag {obj.tag} is not COSE_Sign1 (18)")
            obj, tagged = obj.value, True
    # cbor2 decodes arrays inside tags as tuples and maps as frozendicts.
    if not isinstance(obj, _ARRAY_TYPES) or len(obj) != 4:
        raise CoseError("COSE_Sign1 must be an array of 4 items")
    prot_raw, unprot, payload, signature = obj
    if not isinstance(prot_raw, bytes) or not isinstance(payload, bytes):
        raise CoseError("protected header and payload must be byte strings")
    if not isinstance(signature, bytes):
        raise CoseError("signature must be a byte string")
    if not isinstance(unprot, MAP_TYPES):
        raise CoseError("unprotected header must be a map")
    header = _HEADERS.get(prot_raw)
    if header is None:
        header = _header(prot_raw)
        if len(_HEADERS) >= _HEADERS_MAX:
            _HEADERS.clear()
        _HEADERS[prot_raw] = header
    prot, alg, kid, tbs_head = header
    if unprot:  # usually empty: nothing to fall back on
        if alg is None:
            alg = unprot.get(HDR_ALG)
        if kid is None:
            kid = unprot.get(HDR_KID)
    if type(alg) is not int:
        alg = None
    if type(kid) is not bytes:
        kid = bytes(kid) if isinstance(kid, _BYTES_TYPES) else None
    return Sign1(prot_raw, prot, unprot, payload, signature, tagged, alg, kid, tbs_head)


# Protected headers, parsed: an issuer's header ({alg, kid}) is the same bytes on every code
# it signs, so a unit sees a handful of distinct ones. Bounded, read-only once stored. Each
# holds the map, its raw alg and kid values, and the Sig_structure's head up to the payload.
_HEADERS: dict[bytes, tuple[Mapping[Any, Any], Any, Any, bytes]] = {}
_HEADERS_MAX = 4096


def _header(prot_raw: bytes) -> tuple[Mapping[Any, Any], Any, Any, bytes]:
    prot = _protected(prot_raw)
    return prot, prot.get(HDR_ALG), prot.get(HDR_KID), _sig_head(prot_raw)


def _protected(prot_raw: bytes) -> Mapping[Any, Any]:
    if not prot_raw:
        return cbor2.frozendict()
    try:
        prot = cbor2.loads(prot_raw)
    except Exception as exc:
        raise CoseError(f"protected header is not CBOR: {exc}") from None
    if not isinstance(prot, MAP_TYPES):
        raise CoseError("protected header must be a map")
    return cbor2.frozendict(prot) if isinstance(prot, dict) else prot


def _der_signature(signature: bytes) -> bytes:
    """COSE's raw r‖s (32 bytes each) as the DER SEQUENCE of two INTEGERs `cryptography`
    takes: the same bytes as `encode_dss_signature(r, s)` at under half its cost (no detour
    through Python ints). Minimal INTEGERs: leading zeros dropped, a 0 byte put back in front
    of a high bit (or of nothing: zero is 02 01 00). Every length fits in one byte."""
    r = signature[:32].lstrip(b"\0")
    s = signature[32:].lstrip(b"\0")
    if not r or r[0] >= 0x80:
        r = b"\0" + r
    if not s or s[0] >= 0x80:
        s = b"\0" + s
    return b"\x30%c\x02%c%s\x02%c%s" % (len(r) + len(s) + 4, len(r), r, len(s), s)


def verify_signature(
    alg: int, key: Any, to_be_signed: bytes, signature: bytes, *, key_checked: bool = False
) -> bool:
    """True when `signature` over `to_be_signed` verifies under `key` with COSE `alg`.

    `key_checked` skips the key-type check when the caller already matched `alg` against
    the key's own algorithm (trust entries derive their algorithm from the key's type).
    """
    try:
        if alg == ALG_ES256:
            if len(signature) != 64:
                return False
            if not key_checked and not isinstance(key, ec.EllipticCurvePublicKey):
                return False
            key.verify(_der_signature(signature), to_be_signed, _ECDSA_SHA256)
        elif alg == ALG_EDDSA:
            if not key_checked and not isinstance(key, ed25519.Ed25519PublicKey):
                return False
            key.verify(signature, to_be_signed)
        elif alg == ALG_PS256:
            if not key_checked and not isinstance(key, rsa.RSAPublicKey):
                return False
            key.verify(signature, to_be_signed, _PSS, _SHA256)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def sign1(payload: bytes, private_key: Any, kid: bytes, *, tagged: bool = True) -> bytes:
    """Build a COSE_Sign1 message (used by the test issuer and the trust-list signer)."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        alg = ALG_ES256
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        alg = ALG_EDDSA
    elif isinstance(private_key, rsa.RSAPrivateKey):
        alg = ALG_PS256
    else:
        raise TypeError(f"unsupported key type {type(private_key).__name__}")
    protected = cbor2.dumps({HDR_ALG: alg, HDR_KID: kid})
    tbs = sig_structure(protected, payload)
    if alg == ALG_ES256:
        r, s = decode_dss_signature(private_key.sign(tbs, _ECDSA_SHA256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif alg == ALG_EDDSA:
        signature = private_key.sign(tbs)
    else:
        signature = private_key.sign(tbs, _PSS, _SHA256)
    msg = [protected, {}, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, msg) if tagged else msg)
