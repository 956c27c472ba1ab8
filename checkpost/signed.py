"""Signed JSON documents: trust lists and policy bundles travel as one of these.

    {"<body_key>": {...body, "format": "..."}, "signature": {"alg", "kid", "protected", "value"}}

The signature is a COSE_Sign1 signature (the same code that verifies passes) over the
canonical JSON of the body: keys sorted, no whitespace, UTF-8. Units are configured with the
public keys that may sign; a document signed by anything else is refused, whole.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from typing import Any

import cbor2

from checkpost.codes import cose


class SignatureError(ValueError):
    """A signed document is malformed, or its signature does not verify."""


def canonical(obj: Any) -> bytes:
    """The exact bytes a document signature covers."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def sign_document(body: dict[str, Any], signer: Any, *, body_key: str) -> dict[str, Any]:
    from checkpost.codes.trust import alg_of, key_id

    public = signer.public_key()
    message = cose.parse_sign1(cose.sign1(canonical(body), signer, key_id(public)))
    return {
        body_key: body,
        "signature": {
            "alg": alg_of(public),
            "kid": _b64(key_id(public)),
            "protected": _b64(message.protected_raw),
            "value": _b64(message.signature),
        },
    }


def verify_document(
    doc: Any, signer_keys: Iterable[Any], *, body_key: str, format: str, what: str
) -> dict[str, Any]:
    """The document's body when its signature verifies under one of `signer_keys`."""
    if not isinstance(doc, dict) or body_key not in doc or "signature" not in doc:
        raise SignatureError(f"not a checkpost {what} (expected '{body_key}' and 'signature')")
    body, sig = doc[body_key], doc["signature"]
    if not isinstance(body, dict) or body.get("format") != format:
        got = body.get("format") if isinstance(body, dict) else None
        raise SignatureError(f"unknown {what} format {got!r}, expected {format}")
    try:
        protected = _unb64(sig["protected"])
        value = _unb64(sig["value"])
        header = cbor2.loads(protected)
        if not isinstance(header, dict):
            raise ValueError("protected header is not a map")
    except (KeyError, TypeError, ValueError, cbor2.CBORDecodeError) as exc:
        raise SignatureError(f"malformed {what} signature: {exc}") from None
    keys = list(signer_keys)
    if not keys:
        raise SignatureError(f"no {what} signing key is configured")
    tbs = cose.sig_structure(protected, canonical(body))
    alg = header.get(cose.HDR_ALG)
    if any(cose.verify_signature(alg, key, tbs, value) for key in keys):
        return body
    raise SignatureError(f"{what} signature does not verify under the configured signing key")
