"""Unit tests of the envelope: Base45, COSE_Sign1, the trust list, and pipeline edge cases."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpost.codes import CodePatterns, Verifier, cose
from checkpost.codes.base45 import ALPHABET, Base45Error, b45decode, b45encode
from checkpost.codes.claims import CLAIM_EXP, CLAIM_HCERT, CLAIM_HP1, CLAIM_IAT, CLAIM_ISS
from checkpost.codes.trust import (
    TrustEntry,
    TrustListError,
    TrustStore,
    build_trust_list,
    cert_kid,
    hashed_id,
    key_id,
    load_trust_list,
    store_from_body,
    verify_trust_document,
)
from checkpost.issuer import TestIssuer, mint

NOW = 1_750_000_000.0
FAST = settings(max_examples=200, deadline=None)

# -- Base45 (RFC 9285) ------------------------------------------------------------------------

RFC_VECTORS = [
    (b"AB", "BB8"),
    (b"Hello!!", "%69 VD92EX0"),
    (b"base-45", "UJCLQE7W581"),
    (b"ietf!", "QED8WEX0"),
    (b"", ""),
]


@pytest.mark.parametrize(("raw", "text"), RFC_VECTORS)
def test_base45_rfc_vectors(raw: bytes, text: str) -> None:
    assert b45encode(raw) == text
    assert b45decode(text) == raw
    assert b45decode(text.encode("ascii")) == raw


@FAST
@given(st.binary(max_size=600))
def test_base45_round_trip(raw: bytes) -> None:
    text = b45encode(raw)
    assert set(text) <= set(ALPHABET)
    assert len(text) == 3 * (len(raw) // 2) + 2 * (len(raw) % 2)
    assert b45decode(text) == raw


@pytest.mark.parametrize(
    "text",
    [
        "A",  # a length of 1 mod 3
        "ABCD",
        "abc",  # lower case is not in the alphabet
        "AB\n",
        "QED8WEX0é",
        "GGW",  # 16 + 16*45 + 32*2025 = 65536 > 65535
        "ZZZ",
        "ZZ",  # 35 + 35*45 = 1610 > 255
        "BB8:Z",
    ],
)
def test_base45_invalid_raises(text: str) -> None:
    with pytest.raises(Base45Error):
        b45decode(text)


@FAST
@given(st.text(max_size=60))
def test_base45_decode_raises_only_base45error(text: str) -> None:
    try:
        out = b45decode(text)
    except Base45Error:
        return  # the only exception allowed
    assert set(text) <= set(ALPHABET) and len(text) % 3 != 1
    assert b45encode(out) == text  # valid Base45 has exactly one spelling


@FAST
@given(st.text(ALPHABET, max_size=60), st.characters().filter(lambda c: c not in ALPHABET))
def test_base45_any_foreign_character_raises(text: str, bad: str) -> None:
    with pytest.raises(Base45Error):
        b45decode(text[: len(text) // 2] + bad + text[len(text) // 2 :])


@FAST
@given(st.text(ALPHABET, min_size=1, max_size=60).filter(lambda s: len(s) % 3 == 1))
def test_base45_bad_length_raises(text: str) -> None:
    with pytest.raises(Base45Error, match="length"):
        b45decode(text)


# -- COSE_Sign1 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def es_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_sign1_tagged_and_untagged(es_key) -> None:
    kid = key_id(es_key.public_key())
    for tagged in (True, False):
        message = cose.sign1(b"payload", es_key, kid, tagged=tagged)
        assert message[:1] == (b"\xd2" if tagged else b"\x84")
        msg = cose.parse_sign1(message)
        assert (msg.tagged, msg.kid, msg.alg, msg.payload) == (
            tagged,
            kid,
            cose.ALG_ES256,
            b"payload",
        )
        assert cose.verify_signature(
            msg.alg, es_key.public_key(), msg.to_be_signed(), msg.signature
        )


def test_cwt_tag_61_is_accepted(es_key) -> None:
    for tagged in (True, False):
        inner = cbor2.loads(cose.sign1(b"p", es_key, b"k", tagged=tagged))
        msg = cose.parse_sign1(cbor2.dumps(cbor2.CBORTag(61, inner)))
        assert (msg.payload, msg.kid) == (b"p", b"k")
        assert cose.verify_signature(
            msg.alg, es_key.public_key(), msg.to_be_signed(), msg.signature
        )


def _message(protected: dict, unprotected: dict, payload: bytes, key) -> bytes:
    prot = cbor2.dumps(protected) if protected else b""
    tbs = cose.sig_structure(prot, payload)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(tbs)
    else:
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return cbor2.dumps(cbor2.CBORTag(18, [prot, unprotected, payload, signature]))


def test_kid_in_the_unprotected_header(es_key) -> None:
    msg = cose.parse_sign1(_message({1: -7}, {4: b"unprot"}, b"p", es_key))
    assert msg.kid == b"unprot" and msg.alg == cose.ALG_ES256
    both = cose.parse_sign1(_message({1: -7, 4: b"prot"}, {4: b"unprot"}, b"p", es_key))
    assert both.kid == b"prot"  # the protected header wins


def test_pipeline_accepts_kid_in_the_unprotected_header(issuer: TestIssuer) -> None:
    key = issuer.keys["EdDSA"]
    kid = key_id(key.public_key())
    claims = {
        CLAIM_ISS: "CN-DEMO",
        CLAIM_IAT: int(NOW),
        CLAIM_EXP: int(NOW + 180),
        CLAIM_HP1: {"v": 1, "sid": "ab" * 16, "nm": "张*三", "c": "G"},
    }
    message = _message({1: cose.ALG_EDDSA}, {4: kid}, cbor2.dumps(claims), key)
    text = "HP1:" + b45encode(zlib.compress(message))
    decoded = Verifier(issuer.trust_store()).verify(text, NOW)
    assert decoded.valid, decoded.reasons
    assert decoded.kid == kid


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\x00",
        cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"", b""])),
        cbor2.dumps(cbor2.CBORTag(17, [b"", {}, b"", b""])),
        cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(98, []))),
        cbor2.dumps([b"", {}, b""]),
        cbor2.dumps([b"", {}, b"", b"", b""]),
        cbor2.dumps({1: 2}),
        cbor2.dumps("text"),
        cbor2.dumps(["", {}, b"", b""]),  # protected header not bytes
        cbor2.dumps([b"", {}, "payload", b""]),
        cbor2.dumps([b"", {}, b"", "sig"]),
        cbor2.dumps([b"", [], b"", b""]),  # unprotected header not a map
        cbor2.dumps([cbor2.dumps([1, 2]), {}, b"", b""]),  # protected header not a map
        cbor2.dumps([b"\xff", {}, b"", b""]),  # protected header not CBOR
        cbor2.dumps([None, {}, None, None]),
    ],
)
def test_malformed_sign1_raises_coseerror(data: bytes) -> None:
    with pytest.raises(cose.CoseError):
        cose.parse_sign1(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_sign1_raises_only_coseerror(data: bytes) -> None:
    try:
        msg = cose.parse_sign1(data)
    except cose.CoseError:
        return
    assert isinstance(msg.payload, bytes) and isinstance(msg.signature, bytes)


@FAST
@given(
    st.one_of(st.binary(max_size=300), st.integers(0, 70_000).map(lambda n: b"\x01" * n)),
    st.binary(max_size=300),
)
def test_sig_structure_is_the_cbor_of_the_rfc_array(payload: bytes, protected: bytes) -> None:
    assert cose.sig_structure(protected, payload) == cbor2.dumps(
        ["Signature1", protected, b"", payload]
    )


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65535, 65536])
def test_sig_structure_length_boundaries(size: int) -> None:
    payload = b"x" * size
    assert cose.sig_structure(b"\xa0", payload) == cbor2.dumps(
        ["Signature1", b"\xa0", b"", payload]
    )


def test_verify_signature_refuses_mismatches(es_key) -> None:
    message = cose.parse_sign1(cose.sign1(b"p", es_key, b"k"))
    tbs, sig = message.to_be_signed(), message.signature
    pub = es_key.public_key()
    assert cose.verify_signature(cose.ALG_ES256, pub, tbs, sig)
    assert not cose.verify_signature(cose.ALG_ES256, pub, tbs + b"x", sig)
    assert not cose.verify_signature(cose.ALG_ES256, pub, tbs, sig[:-1])
    assert not cose.verify_signature(cose.ALG_EDDSA, pub, tbs, sig)
    assert not cose.verify_signature(cose.ALG_PS256, pub, tbs, sig)
    assert not cose.verify_signature(-35, pub, tbs, sig)
    assert not cose.verify_signature(None, pub, tbs, sig)  # type: ignore[arg-type]


def test_ps256_and_eddsa_sign_and_verify() -> None:
    for key in (rsa.generate_private_key(65537, 2048), ed25519.Ed25519PrivateKey.generate()):
        msg = cose.parse_sign1(cose.sign1(b"payload", key, b"kid"))
        assert msg.alg == (cose.ALG_PS256 if isinstance(key, rsa.RSAPrivateKey) else cose.ALG_EDDSA)
        assert cose.verify_signature(msg.alg, key.public_key(), msg.to_be_signed(), msg.signature)
    with pytest.raises(TypeError):
        cose.sign1(b"p", ec.generate_private_key(ec.SECP384R1()).public_key(), b"k")


# -- trust lists --------------------------------------------------------------------------------


def _write(doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_trust_list_round_trip(issuer: TestIssuer, tmp_path: Path) -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    doc = build_trust_list(
        issuer.entries(),
        issuer.trust_key,
        version=12,
        issuer="Bureau",
        revoked_kids=[b"\x01" * 8],
        revoked_ids=[hashed_id("x"), hashed_id("x")],
        issued_at=when,
    )
    store = load_trust_list(_write(doc, tmp_path / "t.json"), [issuer.trust_key.public_key()])
    assert (store.version, store.issuer, store.issued_at) == (12, "Bureau", "2026-01-02T03:04:05Z")
    assert store.revoked_kids == {b"\x01" * 8}
    assert store.revoked_ids == {hashlib.sha256(b"x").hexdigest()}
    assert len(store) == 2
    for entry in issuer.entries():
        (loaded,) = store.by_kid[entry.kid]
        assert (loaded.alg, loaded.issuer, loaded.kinds, loaded.demo) == (
            entry.alg,
            entry.issuer,
            entry.kinds,
            True,
        )
        assert loaded.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == entry.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    assert store.candidates(issuer.entries()[0].kid) == []  # demo keys are not accepted
    assert verify_trust_document(doc, [issuer.trust_key.public_key()]) == doc["trust_list"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["trust_list"].__setitem__("version", 13),
        lambda d: d["trust_list"].__setitem__("revoked_kids", []),
        lambda d: d["trust_list"]["revoked_ids"].append("00" * 32),
        lambda d: d["trust_list"]["keys"].pop(),
        lambda d: d["trust_list"]["keys"][0].__setitem__("demo", False),
        lambda d: d["trust_list"]["keys"][0].__setitem__("kinds", ["HC1", "HP1", "SR1"]),
        lambda d: d["signature"].__setitem__("value", d["signature"]["value"][::-1]),
        lambda d: d["signature"].__setitem__("protected", "oA=="),
        lambda d: d["signature"].pop("value"),
        lambda d: d.pop("signature"),
        lambda d: d["trust_list"].__setitem__("format", "checkpost-trust/0"),
    ],
)
def test_tampered_trust_list_is_refused(issuer: TestIssuer, tmp_path: Path, tamper) -> None:
    doc = build_trust_list(
        issuer.entries(), issuer.trust_key, version=12, issuer="B", revoked_kids=[b"k" * 8]
    )
    tamper(doc)
    with pytest.raises(TrustListError):
        load_trust_list(_write(doc, tmp_path / "t.json"), [issuer.trust_key.public_key()])


def test_trust_list_file_problems(issuer: TestIssuer, tmp_path: Path) -> None:
    key = issuer.trust_key.public_key()
    with pytest.raises(TrustListError, match="cannot read"):
        load_trust_list(tmp_path / "missing.json", [key])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(TrustListError, match="cannot read"):
        load_trust_list(bad, [key])
    doc = build_trust_list(issuer.entries(), issuer.trust_key, version=1, issuer="B")
    with pytest.raises(TrustListError, match=r"no trust.list signing key"):
        verify_trust_document(doc, [])
    with pytest.raises(TrustListError, match=r"keys\[0\]"):
        store_from_body({"keys": [{"kid": "AAAA", "public_key": "bm90IGEga2V5"}]})


def test_several_keys_under_one_kid_are_each_tried(issuer: TestIssuer) -> None:
    right = issuer.keys["ES256"]
    kid = key_id(right.public_key())
    store = TrustStore(accept_demo=True)
    wrong = ec.generate_private_key(ec.SECP256R1())
    for key in (ed25519.Ed25519PrivateKey.generate(), wrong, right):
        entry = TrustEntry(
            kid=kid, alg="ES256", public_key=key.public_key(), kinds=frozenset({"HP1"})
        )
        if isinstance(key, ed25519.Ed25519PrivateKey):
            entry.alg = "EdDSA"
        store.add(entry)
    assert len(store.candidates(kid)) == 3
    code = issuer.hp1(iat=NOW)
    decoded = Verifier(store).verify(code, NOW)
    assert decoded.valid, decoded.reasons
    assert (
        decoded.signer is not None and decoded.signer.public_key == store.by_kid[kid][2].public_key
    )


def _certificate(key, ekus: list[str] | None, *, days: int = 365) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DSC test")])
    start = dt.datetime.fromtimestamp(NOW, dt.UTC) - dt.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1234)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )
    if ekus is not None:
        usage = x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in ekus])
        builder = builder.add_extension(usage, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _hc1(key, kid: bytes, statement: str, *, iat: float = NOW) -> str:
    entry = {
        "v": {"tg": "840539006", "dn": 2, "sd": 2, "dt": "2025-01-01"},
        "t": {"tg": "840539006", "tt": "LP6464-4", "sc": "2025-06-15T10:00:00Z", "tr": "260415000"},
        "r": {"tg": "840539006", "fr": "2025-05-01", "df": "2025-05-12", "du": "2025-10-01"},
    }[statement]
    entry.update({"co": "DE", "is": "RKI", "ci": "URN:UVCI:01:DE:TEST#1"})
    dcc = {"ver": "1.3.0", "nam": {"fnt": "MUSTER"}, "dob": "1964-08-12", statement: [entry]}
    claims = {
        CLAIM_ISS: "DE",
        CLAIM_IAT: int(iat),
        CLAIM_EXP: int(iat + 86400),
        CLAIM_HCERT: {1: dcc},
    }
    return mint("HC1", claims, key, kid)


def test_certificate_entry_and_key_usage() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    test_only = _certificate(key, ["1.3.6.1.4.1.1847.2021.1.1"])
    entry = TrustEntry.from_certificate(test_only)
    assert entry.kid == cert_kid(test_only) == hashlib.sha256(test_only).digest()[:8]
    assert (entry.alg, entry.kinds, entry.dcc_types) == ("ES256", frozenset({"HC1"}), {"t"})
    assert entry.issuer == "CN=DSC test"
    store = TrustStore()
    store.add(entry)
    verifier = Verifier(store)
    assert verifier.verify(_hc1(key, entry.kid, "t"), NOW).steps["key_usage"] is True
    for kind in ("v", "r"):
        decoded = verifier.verify(_hc1(key, entry.kid, kind), NOW)
        assert decoded.steps["key_usage"] is False
        assert "key_usage" in [r.code for r in decoded.reasons]
    # No EKU: any type; only foreign purposes: none.
    assert TrustEntry.from_certificate(_certificate(key, None)).dcc_types is None
    foreign = TrustEntry.from_certificate(_certificate(key, ["1.3.6.1.5.5.7.3.1"]))
    assert foreign.dcc_types == frozenset()
    # Round trip through the trust-list JSON keeps the certificate and what it may sign.
    again = TrustEntry.from_json(entry.to_json())
    assert (again.kid, again.dcc_types, again.not_after) == (entry.kid, {"t"}, entry.not_after)


def test_signer_certificate_outside_its_validity_fails_expiry() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    entry = TrustEntry.from_certificate(_certificate(key, None, days=30))
    store = TrustStore()
    store.add(entry)
    later = NOW + 60 * 86400
    decoded = Verifier(store).verify(_hc1(key, entry.kid, "t", iat=later - 10), later)
    assert decoded.steps["signature"] is True
    assert decoded.steps["expiry"] is False
    assert "key_not_valid" in [r.code for r in decoded.reasons]


def test_hashed_id_is_sha256_hex() -> None:
    assert hashed_id("URN:UVCI:01:DE:X") == hashlib.sha256(b"URN:UVCI:01:DE:X").hexdigest()
    assert hashed_id("张三") == hashlib.sha256("张三".encode()).hexdigest()


# -- pipeline edge cases ------------------------------------------------------------------------


def test_uncompressed_body_is_a_zlib_step_failure_not_a_crash(issuer: TestIssuer) -> None:
    message = zlib.decompress(b45decode(issuer.hp1(iat=NOW)[4:]))
    decoded = Verifier(issuer.trust_store()).verify("HP1:" + b45encode(message), NOW)
    assert decoded.steps["zlib"] is False
    assert decoded.steps["cose"] is True and decoded.steps["signature"] is True
    assert [r.code for r in decoded.reasons] == ["zlib"]
    assert not decoded.valid


def test_decompression_bomb_is_refused(issuer: TestIssuer) -> None:
    bomb = zlib.compress(b"\x00" * 2_000_000, 9)
    decoded = Verifier(issuer.trust_store()).verify("HP1:" + b45encode(bomb), NOW)
    assert decoded.steps["zlib"] is False


def test_overlong_and_empty_text_is_unreadable(issuer: TestIssuer) -> None:
    verifier = Verifier(issuer.trust_store())
    for text in ("", "   ", "HP1:" + "A" * 9000):
        decoded = verifier.verify(text, NOW)
        assert [r.code for r in decoded.reasons] == ["unreadable"]


def test_hc1_without_schemas_fails_the_schema_step() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    entry = TrustEntry.from_certificate(_certificate(key, None))
    store = TrustStore()
    store.add(entry)
    decoded = Verifier(store, schemas=None).verify(_hc1(key, entry.kid, "v"), NOW)
    assert decoded.steps["signature"] is True and decoded.steps["schema"] is False


def test_a_broken_schema_release_fails_the_schema_step_with_its_reason(tmp_path: Path) -> None:
    """A release folder with a malformed file (the EU's own 0.1.0 has one) fails the codes
    that name it, saying why — not an internal error — and other releases still work."""
    from checkpost.codes.dcc import SchemaStore

    good = tmp_path / "1.3.0"
    good.mkdir()
    (good / "DCC.combined-schema.json").write_text(json.dumps({"type": "object"}))
    broken = tmp_path / "1.2.0"
    broken.mkdir()
    (broken / "DCC.combined-schema.json").write_text('{"type": "object",, }')
    key = ec.generate_private_key(ec.SECP256R1())
    entry = TrustEntry.from_certificate(_certificate(key, None))
    store = TrustStore()
    store.add(entry)
    verifier = Verifier(store, schemas=SchemaStore([tmp_path]))
    code = _hc1(key, entry.kid, "v")
    assert verifier.verify(code, NOW).steps["schema"] is True
    old = mint("HC1", _claims_with_ver(code, "1.2.0"), key, entry.kid)
    for _ in range(2):  # the failure is remembered, and said the same way each time
        decoded = verifier.verify(old, NOW)
        assert decoded.steps["schema"] is False
        assert [r.code for r in decoded.reasons] == ["schema"]
        assert "schema release 1.2.0 cannot be used" in decoded.reasons[0].en


def _claims_with_ver(code: str, ver: str) -> dict:
    message = cose.parse_sign1(zlib.decompress(b45decode(code[4:])))
    claims = dict(cbor2.loads(message.payload))
    hcert = dict(claims[CLAIM_HCERT])
    hcert[1] = {**hcert[1], "ver": ver}
    claims[CLAIM_HCERT] = hcert
    return claims


def test_tube_and_box_patterns_are_configurable() -> None:
    default = Verifier(TrustStore())
    assert default.verify("1234567890", NOW).format == "tube"
    assert default.verify("12345678901234", NOW).format == "tube"
    assert default.verify("123456789", NOW).format == "unknown"
    assert default.verify("BOX123456", NOW).format == "box"
    assert default.verify("BOX12345", NOW).format == "unknown"
    custom = Verifier(TrustStore(), patterns=CodePatterns(tube=(r"T-\d{4}",), box=(r"K\d{3}",)))
    assert custom.verify("T-1234", NOW).format == "tube"
    assert custom.verify("K123", NOW).format == "box"
    assert custom.verify("1234567890", NOW).format == "unknown"


@pytest.mark.parametrize("wbits", [9, 10, 12, 14, 15])
def test_zlib_stream_with_any_window_size_is_accepted(issuer: TestIssuer, wbits: int) -> None:
    """RFC 1950 allows windows of 2**8..2**15 bytes (CMF 0x08..0x78); all inflate alike."""
    message = zlib.decompress(b45decode(issuer.hp1(iat=NOW)[4:]))
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    data = packer.compress(message) + packer.flush()
    assert zlib.decompress(data) == message
    decoded = Verifier(issuer.trust_store()).verify("HP1:" + b45encode(data), NOW)
    assert decoded.steps["zlib"] is True, (hex(data[0]), decoded.steps)
    assert decoded.valid, decoded.reasons


@settings(max_examples=60)
@given(
    kind=st.sampled_from(["SR1", "HP1"]),
    age=st.floats(-3600, 40 * 86400, allow_nan=False),
    probe=st.floats(-2 * 86400, 60 * 86400, allow_nan=False),
)
def test_valid_window_is_where_the_expiry_step_passes(issuer, kind, age, probe) -> None:
    """`valid_window` (what the hub's SR1 cache re-checks) and the pipeline's expiry step
    must agree for every `now`: inside the window the step passes, outside it fails."""
    from checkpost.codes.pipeline import valid_window

    v = Verifier(issuer.trust_store())
    base = 1_800_000_000.0
    iat = base - age
    code = issuer.sr1(iat=iat) if kind == "SR1" else issuer.hp1(iat=iat)
    d = v.verify(code, base)
    window = valid_window(d, v.skew, v.hp1_max_age)
    assert window is not None
    now = base + probe
    inside = window[0] <= now <= window[1]
    assert bool(v.verify(code, now).steps.get("expiry")) == inside
