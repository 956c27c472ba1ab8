"""Every reason a verdict can carry: a stable code, and short English and Chinese text.

Stations show these on a 5-inch screen at arm's length, so each text is a few words. Codes
are stable identifiers for logs, the hub's store and scripts; texts may be reworded. One
catalogue serves the code pipeline and the policy engine on units and on the hub.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Reason(msgspec.Struct, frozen=True):
    code: str
    en: str
    zh: str


# code -> (English template, Chinese template). Templates take keyword arguments.
CATALOGUE: dict[str, tuple[str, str]] = {
    # reading and decoding
    "unreadable": ("Code not readable — hold still and try again", "无法识别，请保持稳定后重试"),
    "no_code_in_image": ("No code found in the picture", "图片中未找到码"),
    "unknown_format": ("Not a code we accept", "不是可识别的码"),
    "base45": ("Damaged code (Base45)", "码已损坏（Base45）"),
    "zlib": ("Damaged code (compression)", "码已损坏（压缩）"),
    "cose": ("Damaged code (signature envelope)", "码已损坏（签名结构）"),
    "cbor": ("Damaged code (content)", "码已损坏（内容）"),
    # signature and trust
    "no_kid": ("Code names no issuer key", "码中缺少签发密钥标识"),
    "unknown_key": ("Unknown issuer key", "未知的签发密钥"),
    "bad_signature": ("Forged or altered code", "签名无效，码可能被篡改"),
    "bad_algorithm": ("Unsupported signature algorithm {alg}", "不支持的签名算法 {alg}"),
    "key_not_valid": ("Issuer key not valid now", "签发密钥当前无效"),
    "key_revoked": ("Issuer key revoked", "签发密钥已被撤销"),
    "revoked": ("Code revoked", "该码已被撤销"),
    "wrong_kind": ("Issuer may not sign {kind} codes", "该签发方无权签发 {kind} 码"),
    "key_usage": ("Signer may not issue this certificate type", "签发证书无权签发此类证书"),
    # time
    "expired": ("Code expired — refresh the app", "码已过期，请刷新"),
    "not_yet_valid": (
        "Code issued in the future — check the clock",
        "签发时间晚于当前时间，请核对时钟",
    ),
    "no_expiry": ("Code has no expiry", "码缺少有效期"),
    # content
    "schema": ("Invalid content: {detail}", "内容格式错误：{detail}"),
    "wrong_station": ("{kind} code not accepted at a {station}", "{station}不接受 {kind} 码"),
    # EU certificates (HC1); the policy's own verdict reasons live with its rules
    # (checkpost/policy/rules/*.json: Reason code + en/zh Description), not here.
    "hc1_no_entry": (
        "Certificate holds no vaccination, test or recovery",
        "证书无接种、检测或康复记录",
    ),
    "hc1_rule": ("{rule}: {text}", "{rule}：{text}"),
    # sampling
    "bad_tube_code": ("Not a tube code", "不是有效的试管码"),
    "bad_box_code": ("Not a box code", "不是有效的转运箱码"),
}


def reason(code: str, **params: Any) -> Reason:
    """Build a reason from the catalogue; unknown codes are a programming error."""
    en, zh = CATALOGUE[code]
    if params:
        return Reason(code, en.format(**params), zh.format(**params))
    return Reason(code, en, zh)
