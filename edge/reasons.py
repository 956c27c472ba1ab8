"""Reasons only a station gives: workflow errors and local rules, in English and Chinese.

The core catalogue (`checkpost.reasons`) covers what a code and the policy say; these are
what the *workflow* says (same person twice, sealed box, pool full ...). Same shape, so the
screen shows both alike. Texts are a few words: a 5-inch screen read at arm's length.
"""

from __future__ import annotations

from typing import Any

from checkpost.reasons import Reason

CATALOGUE: dict[str, tuple[str, str]] = {
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
}


def local_reason(code: str, **params: Any) -> Reason:
    en, zh = CATALOGUE[code]
    if params:
        return Reason(code, en.format(**params), zh.format(**params))
    return Reason(code, en, zh)
