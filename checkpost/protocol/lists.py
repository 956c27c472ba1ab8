"""Lists the hub pushes to units: the sealed-building list for compound gates.

The hub publishes it **retained** on ``<root>/hub/sealed`` as a signed JSON document
(``checkpost.signed``, the same signature scheme as trust lists and policy bundles)::

    {"sealed": {"format": "checkpost-sealed-1", "version": 7, "issued_at": 1700000000.0,
                "scope": "compound 12", "sids": ["<pseudonymous id>", ...]},
     "signature": {...}}

A unit verifies the signature under its trust-list signer keys, refuses a version older
than the one it holds, and applies the list atomically; its version and age are on the gate
screen. Publishing an empty list (``sids: []``) with a higher version lifts every seal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from checkpost.signed import SignatureError, sign_document, verify_document

SEALED_FORMAT = "checkpost-sealed-1"
SEALED_BODY = "sealed"
MAX_SIDS = 200_000


@dataclass(frozen=True, slots=True)
class SealedList:
    version: int
    issued_at: float
    sids: frozenset[str]
    scope: str = ""


def sealed_document(
    sids: Iterable[str], *, version: int, issued_at: float, signer: Any, scope: str = ""
) -> bytes:
    """The signed document the hub publishes (``signer``: the trust-list signing key)."""
    body = {
        "format": SEALED_FORMAT,
        "version": int(version),
        "issued_at": float(issued_at),
        "scope": scope,
        "sids": sorted(set(sids)),
    }
    return json.dumps(sign_document(body, signer, body_key=SEALED_BODY)).encode()


def verify_sealed(payload: bytes, keys: Iterable[Any]) -> SealedList:
    """The list when the document is well formed and its signature verifies; else raises
    ``SignatureError`` saying why."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError(f"sealed list is not JSON: {exc}") from None
    body = verify_document(
        doc, keys, body_key=SEALED_BODY, format=SEALED_FORMAT, what="sealed list"
    )
    sids, version, issued = body.get("sids"), body.get("version"), body.get("issued_at")
    if not isinstance(sids, list) or not all(isinstance(s, str) and s for s in sids):
        raise SignatureError("sealed list: 'sids' must be a list of ids")
    if len(sids) > MAX_SIDS:
        raise SignatureError(f"sealed list: {len(sids)} ids > {MAX_SIDS}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise SignatureError("sealed list: 'version' must be a non-negative integer")
    if not isinstance(issued, int | float) or isinstance(issued, bool):
        raise SignatureError("sealed list: 'issued_at' must be epoch seconds")
    return SealedList(version, float(issued), frozenset(sids), str(body.get("scope", ""))[:64])
