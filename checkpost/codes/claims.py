"""Typed schemas of our own signed formats: the HP1 health pass and the SR1 registration.

CWT claims hold them under private claim keys (-270 for HP1, -271 for SR1). msgspec converts
the decoded CBOR map into these structs in about a microsecond and names the first bad field
in its error, which becomes the `schema` step's reason.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

CLAIM_ISS = 1
CLAIM_EXP = 4
CLAIM_IAT = 6
CLAIM_HCERT = -260
CLAIM_HP1 = -270
CLAIM_SR1 = -271

Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{16,64}$", description="keyed hash, hex")]
MaskedName = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]


class NucleicAcidTest(msgspec.Struct, frozen=True):
    t: Annotated[int, msgspec.Meta(ge=0)]  # sample time, epoch seconds
    r: Literal["neg", "pos", "pending"]


class HealthPass(msgspec.Struct, frozen=True):
    """Claim -270. `sid` is a keyed hash of the ID number; the number itself never travels."""

    v: Literal[1]
    sid: Hex
    nm: MaskedName
    c: Literal["G", "Y", "R"]
    nat: NucleicAcidTest | None = None
    vx: Annotated[int, msgspec.Meta(ge=0, le=20)] = 0
    trip: bool = False


class SamplingRegistration(msgspec.Struct, frozen=True):
    """Claim -271: long-lived (30 days) so it can be printed for people without phones."""

    v: Literal[1]
    sid: Hex
    nm: MaskedName
    ph: Annotated[str, msgspec.Meta(pattern=r"^[0-9*+ -]{4,20}$")]
    reg: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


CLAIM_OF_FORMAT = {"HP1": CLAIM_HP1, "SR1": CLAIM_SR1, "HC1": CLAIM_HCERT}
STRUCT_OF_FORMAT: dict[str, type[msgspec.Struct]] = {
    "HP1": HealthPass,
    "SR1": SamplingRegistration,
}
