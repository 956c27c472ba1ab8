"""Create and use a test issuer directory (see the package docstring)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
import zlib
from pathlib import Path
from typing import Any

import cbor2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from checkpost.codes import cose
from checkpost.codes.base45 import b45encode
from checkpost.codes.claims import CLAIM_EXP, CLAIM_HP1, CLAIM_IAT, CLAIM_ISS, CLAIM_SR1
from checkpost.codes.trust import (
    TrustEntry,
    TrustStore,
    build_trust_list,
    key_id,
    load_trust_list,
)

HP1_LIFETIME = 180
SR1_LIFETIME = 30 * 24 * 3600
FILES = {
    "ES256": "issuer-es256.key.pem",
    "EdDSA": "issuer-ed25519.key.pem",
    "trust": "trust-signer.key.pem",
    "trust_pub": "trust-signer.pub.pem",
    "trustlist": "trustlist.json",
    "sid_key": "sid-hmac.key",
    "meta": "issuer.json",
}


def mint(prefix: str, claims: dict[int, Any], private_key: Any, kid: bytes | None = None) -> str:
    """PREFIX: + Base45(zlib(COSE_Sign1(CBOR(claims)))) — the HCERT envelope."""
    kid = kid if kid is not None else key_id(private_key.public_key())
    message = cose.sign1(cbor2.dumps(claims), private_key, kid)
    return f"{prefix}:{b45encode(zlib.compress(message, 9))}"


def _write_private(path: Path, key: Any) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _read_private(path: Path) -> Any:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


class TestIssuer:
    """A region's demo issuer: two signing keys (ES256, Ed25519) and a trust-list signer."""

    __test__ = False  # not a pytest test class

    def __init__(
        self, folder: Path, keys: dict[str, Any], trust_key: Any, sid_key: bytes, region: str
    ):
        self.folder = folder
        self.keys = keys
        self.trust_key = trust_key
        self.sid_key = sid_key
        self.region = region

    # -- creation and loading -------------------------------------------------------------

    @classmethod
    def create(
        cls, folder: str | Path, *, region: str = "CN-DEMO", force: bool = False
    ) -> TestIssuer:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / FILES["meta"]).exists() and not force:
            return cls.load(folder)
        keys = {
            "ES256": ec.generate_private_key(ec.SECP256R1()),
            "EdDSA": ed25519.Ed25519PrivateKey.generate(),
        }
        trust_key = ec.generate_private_key(ec.SECP256R1())
        for alg, key in keys.items():
            _write_private(folder / FILES[alg], key)
        _write_private(folder / FILES["trust"], trust_key)
        (folder / FILES["trust_pub"]).write_bytes(
            trust_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        sid_key = secrets.token_bytes(32)
        fd = os.open(folder / FILES["sid_key"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(sid_key)
        (folder / FILES["meta"]).write_text(
            json.dumps({"region": region, "demo": True}, indent=2) + "\n"
        )
        issuer = cls(folder, keys, trust_key, sid_key, region)
        issuer.write_trust_list(version=1)
        return issuer

    @classmethod
    def load(cls, folder: str | Path) -> TestIssuer:
        folder = Path(folder)
        meta = json.loads((folder / FILES["meta"]).read_text())
        keys = {alg: _read_private(folder / FILES[alg]) for alg in ("ES256", "EdDSA")}
        return cls(
            folder,
            keys,
            _read_private(folder / FILES["trust"]),
            (folder / FILES["sid_key"]).read_bytes(),
            meta.get("region", "CN-DEMO"),
        )

    # -- trust ----------------------------------------------------------------------------

    def entries(self) -> list[TrustEntry]:
        return [
            TrustEntry(
                kid=key_id(k.public_key()),
                alg=alg,
                public_key=k.public_key(),
                issuer=f"{self.region} test issuer",
                kinds=frozenset({"HP1", "SR1"}),
                demo=True,
            )
            for alg, k in self.keys.items()
        ]

    def write_trust_list(
        self,
        *,
        version: int,
        revoked_kids: list[bytes] | None = None,
        revoked_ids: list[str] | None = None,
    ) -> Path:
        doc = build_trust_list(
            self.entries(),
            self.trust_key,
            version=version,
            issuer=f"{self.region} test issuer",
            revoked_kids=revoked_kids or [],
            revoked_ids=revoked_ids or [],
        )
        path = self.folder / FILES["trustlist"]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @property
    def trust_list_path(self) -> Path:
        return self.folder / FILES["trustlist"]

    @property
    def trust_signer_path(self) -> Path:
        return self.folder / FILES["trust_pub"]

    def trust_store(self, *, accept_demo: bool = True) -> TrustStore:
        return load_trust_list(
            self.trust_list_path, [self.trust_key.public_key()], accept_demo=accept_demo
        )

    # -- minting --------------------------------------------------------------------------

    def sid(self, id_number: str) -> str:
        """Pseudonymous subject id: a keyed hash of the ID number (which never travels)."""
        return hmac.new(self.sid_key, id_number.encode(), hashlib.sha256).hexdigest()[:32]

    def hp1(
        self,
        *,
        sid: str | None = None,
        id_number: str = "110101199001011234",
        name: str = "张*三",
        colour: str = "G",
        test_age_hours: float | None = 20.0,
        result: str = "neg",
        doses: int = 3,
        trip: bool = False,
        iat: float | None = None,
        lifetime: float = HP1_LIFETIME,
        alg: str = "ES256",
        key: Any = None,
    ) -> str:
        iat = time.time() if iat is None else iat
        body: dict[str, Any] = {
            "v": 1,
            "sid": sid or self.sid(id_number),
            "nm": name,
            "c": colour,
            "vx": doses,
            "trip": trip,
        }
        if test_age_hours is not None:
            body["nat"] = {"t": int(iat - test_age_hours * 3600), "r": result}
        claims = {
            CLAIM_ISS: self.region,
            CLAIM_IAT: int(iat),
            CLAIM_EXP: int(iat + lifetime),
            CLAIM_HP1: body,
        }
        return mint(
            "HP1",
            claims,
            key or self.keys[alg],
            None if key else key_id(self.keys[alg].public_key()),
        )

    def sr1(
        self,
        *,
        sid: str | None = None,
        id_number: str = "110101199001011234",
        name: str = "李*四",
        phone: str = "138****1234",
        registration: str | None = None,
        iat: float | None = None,
        lifetime: float = SR1_LIFETIME,
        alg: str = "ES256",
    ) -> str:
        iat = time.time() if iat is None else iat
        body = {
            "v": 1,
            "sid": sid or self.sid(id_number),
            "nm": name,
            "ph": phone,
            "reg": registration or f"R{secrets.randbelow(10**10):010d}",
        }
        claims = {
            CLAIM_ISS: self.region,
            CLAIM_IAT: int(iat),
            CLAIM_EXP: int(iat + lifetime),
            CLAIM_SR1: body,
        }
        return mint("SR1", claims, self.keys[alg])
