"""Reasons only the hub can give: they depend on city-wide state no unit can see.

Kept here as `Reason` instances (same shape as `checkpost.reasons.CATALOGUE`) so the core
catalogue stays untouched while the hub's rules settle; they are meant to be merged into the
catalogue later, with the same codes.
"""

from __future__ import annotations

from checkpost.reasons import Reason

TUBE_ALREADY_OPENED = Reason(
    "tube_already_opened", "Tube already opened elsewhere", "该试管已在别处开管"
)
TUBE_NOT_OPEN = Reason(
    "tube_not_open", "Tube not opened — scan the tube first", "试管未开管，请先扫试管码"
)
TUBE_CLOSED = Reason("tube_closed", "Tube already closed", "该试管已封管")
POOL_FULL = Reason("pool_full", "Tube is full", "该试管已满")
POOL_SIZE = Reason("pool_size", "Pool size not allowed", "混采人数不符合规定")
ALREADY_SAMPLED = Reason("already_sampled", "Already sampled this round", "本轮已采样")
TUBE_IN_BOX = Reason("tube_in_other_box", "Tube already in a box", "该试管已装入转运箱")
TUBE_NOT_CLOSED = Reason("tube_not_closed", "Tube not closed yet", "试管尚未封管")
BOX_ALREADY_OPENED = Reason("box_already_opened", "Box already opened", "该转运箱已启用")
BOX_NOT_OPEN = Reason(
    "box_not_open", "Box not opened — scan the box first", "转运箱未启用，请先扫箱码"
)
BOX_SEALED = Reason("box_sealed", "Box is sealed", "转运箱已封箱")
BOX_NOT_SEALED = Reason("box_not_sealed", "Box not sealed yet", "转运箱尚未封箱")
COUNT_MISMATCH = Reason("count_mismatch", "Counts do not match the hub's", "数量与系统记录不符")
SEAL_BROKEN = Reason("seal_broken", "Seal not intact", "封条不完整")
REPLAYED_PASS = Reason(
    "replayed_pass", "Pass already shown elsewhere — check ID", "该码已在别处出示，请核验身份"
)
RISK_REGION = Reason(
    "risk_region_vehicle", "Vehicle from a risk region — turn back", "车辆来自风险地区，请劝返"
)
UNKNOWN_TARGET = Reason("unknown_target", "Nothing to undo", "没有可撤销的记录")
CANNOT_UNDO = Reason("cannot_undo", "Cannot undo after closing", "已封管/封箱，无法撤销")
UNIT_MISMATCH = Reason(
    "unit_mismatch", "Message names another unit", "消息中的设备编号与发送方不符"
)
MALFORMED = Reason("malformed", "Malformed message", "消息格式错误")

ALL: tuple[Reason, ...] = (
    TUBE_ALREADY_OPENED,
    TUBE_NOT_OPEN,
    TUBE_CLOSED,
    POOL_FULL,
    POOL_SIZE,
    ALREADY_SAMPLED,
    TUBE_IN_BOX,
    TUBE_NOT_CLOSED,
    BOX_ALREADY_OPENED,
    BOX_NOT_OPEN,
    BOX_SEALED,
    BOX_NOT_SEALED,
    COUNT_MISMATCH,
    SEAL_BROKEN,
    REPLAYED_PASS,
    RISK_REGION,
    UNKNOWN_TARGET,
    CANNOT_UNDO,
    UNIT_MISMATCH,
    MALFORMED,
)
