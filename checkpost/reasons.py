"""Every reason a verdict can carry: a stable code, and short English and Chinese text.

Stations show these on a 5-inch screen at arm's length, so each text is a few words. Codes
are stable identifiers for logs, the hub's store and scripts; texts may be reworded. One
catalogue serves the code pipeline, the policy engine, the station workflows and the hub's
city-wide rules, on units and on the hub: a code means one thing, worded one way, wherever it
is shown (a hub correction on a station screen reads like the station's own message).
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
    # station workflows (checkpoint, gate, sampling, transfer) and device health
    # checkpoint and gate
    "plate_first": ("Enter the plate first", "请先输入车牌"),
    "vehicle_open": ("Finish the current vehicle first", "请先完成当前车辆"),
    "no_vehicle": ("No vehicle open", "当前没有车辆"),
    "bad_plate": ("Not a plate: {plate}", "车牌格式错误：{plate}"),
    "risk_plate": (
        "Plate from risk region {region} — turn back",
        "车牌属中高风险地区 {region}，请劝返",
    ),
    "same_person": ("Same person already scanned in this vehicle", "此人已在本车登记"),
    "measure_first": ("Measure the current person first", "请先为当前人员测温"),
    "decide_first": ("Decide the current person first", "请先处理当前人员"),
    "thermometer_unplugged": (
        "Thermometer disconnected — measure by hand",
        "测温仪已断开，请手动测温",
    ),
    "thermometer_back": ("Thermometer connected again", "测温仪已重新连接"),
    "release_blocked": ("Cannot release: {why}", "不能放行：{why}"),
    "nothing_to_decide": ("Nobody waits for a decision", "没有待处理的人员"),
    "sealed_building": ("Sealed building — no exit", "所在楼栋封控，禁止外出"),
    "not_a_pass": ("Not a health code", "不是健康码"),
    "bad_direction": ("Unknown direction {direction}", "方向无效：{direction}"),
    "advice_done": ("Advice already recorded at {at}", "已于 {at} 记录宣教"),
    "disinfect_done": ("Disinfection already recorded at {at}", "已于 {at} 记录消杀"),
    "sealed_list_applied": ("Sealed list v{version} applied", "封控名单 v{version} 已更新"),
    # sampling
    "no_open_tube": ("Scan a tube first", "请先扫试管码"),
    "tube_reopened": ("Tube {tube} was already used", "试管 {tube} 已使用过"),
    "tube_open": ("Close tube {tube} first", "请先封闭试管 {tube}"),
    "person_in_tube": ("Already in this tube", "此人已在本管"),
    "person_in_round": ("Already sampled this round (tube {tube})", "本轮已采样（试管 {tube}）"),
    "pool_full": ("Tube full ({count}/{pool}) — close it", "试管已满（{count}/{pool}），请封管"),
    "tube_empty": ("Tube is empty", "试管内无人员"),
    "bad_pool": ("Pool size {pool} not allowed", "混采人数 {pool} 不允许"),
    "no_open_box": ("Scan a box first", "请先扫转运箱码"),
    "box_sealed": ("Box {box} is sealed — no more tubes", "转运箱 {box} 已封箱，不能再放试管"),
    "box_open": ("Seal box {box} first", "请先封箱 {box}"),
    "box_empty": ("Box is empty", "转运箱为空"),
    "tube_not_closed": ("Tube {tube} is not closed", "试管 {tube} 未封闭"),
    "tube_in_box": ("Tube {tube} is already in box {box}", "试管 {tube} 已在转运箱 {box}"),
    "unknown_tube": ("Tube {tube} unknown here", "本台未采集试管 {tube}"),
    "nothing_to_undo": ("Nothing to undo", "没有可撤销的操作"),
    "override_needed": ("Staff override needed", "需要人工授权"),
    "labels_low": ("{what} labels running low ({left} left)", "{what}标签即将用完（剩 {left}）"),
    "manual_entry": ("Entered by hand", "手工登记"),
    "transfer_notified": (
        "Box {box} sealed — transfer team notified",
        "转运箱 {box} 已封箱，已通知转运",
    ),
    "registration_invalid": ("Registration code not valid", "登记码无效"),
    # transfer
    "box_expected": ("Box {box} not announced", "转运箱 {box} 不在交接清单"),
    "count_mismatch": ("{what}: counted {got}, expected {want}", "{what}：清点 {got}，应为 {want}"),
    "seal_broken": ("Seal broken", "封条破损"),
    "missing_box": ("Box {box} missing", "缺少转运箱 {box}"),
    "extra_tube": ("Extra tube {tube}", "多出试管 {tube}"),
    "tube_twice": ("Tube {tube} scanned twice", "试管 {tube} 重复扫描"),
    "missing_tube": ("Tube {tube} missing", "缺少试管 {tube}"),
    "box_unknown": ("Hub does not know box {box}", "中心无转运箱 {box} 记录"),
    "box_not_sealed": ("Box {box} was never sealed", "转运箱 {box} 未登记封箱"),
    "hub_checking": ("Asking the hub about box {box}…", "正在向中心核对转运箱 {box}…"),
    "no_handler": ("Enter the handler", "请填写交接人"),
    "box_held": ("Box held: fix the mismatch first", "转运箱已扣留，请先处理差异"),
    # link and device health
    "hub_correction": ("Hub corrected to {verdict}", "中心更正为 {verdict}"),
    "hub_conflict": ("Hub refused: {why}", "中心拒绝：{why}"),
    "trust_stale": ("Trust list {hours} h old — update needed", "信任列表已 {hours} 小时未更新"),
    "outbox_full": ("Upload queue full — work refused", "上传队列已满，暂停作业"),
    # city-wide state only the hub sees (tubes, boxes, passes shown elsewhere, messages)
    "tube_already_opened": ("Tube already opened elsewhere", "该试管已在别处开管"),
    "tube_not_open": ("Tube not opened — scan the tube first", "试管未开管，请先扫试管码"),
    "tube_closed": ("Tube already closed", "该试管已封管"),
    "pool_size": ("Pool size not allowed", "混采人数不符合规定"),
    "already_sampled": ("Already sampled this round", "本轮已采样"),
    "tube_in_other_box": ("Tube already in a box", "该试管已装入转运箱"),
    "box_already_opened": ("Box already opened", "该转运箱已启用"),
    "box_not_open": ("Box not opened — scan the box first", "转运箱未启用，请先扫箱码"),
    "replayed_pass": ("Pass already shown elsewhere — check ID", "该码已在别处出示，请核验身份"),
    "risk_region_vehicle": ("Vehicle from a risk region — turn back", "车辆来自风险地区，请劝返"),
    "unknown_target": ("Nothing to undo", "没有可撤销的记录"),
    "cannot_undo": ("Cannot undo after closing", "已封管/封箱，无法撤销"),
    "unit_mismatch": ("Message names another unit", "消息中的设备编号与发送方不符"),
    "malformed": ("Malformed message", "消息格式错误"),
}


def reason(code: str, **params: Any) -> Reason:
    """Build a reason from the catalogue; unknown codes are a programming error."""
    en, zh = CATALOGUE[code]
    if params:
        return Reason(code, en.format(**params), zh.format(**params))
    return Reason(code, en, zh)
