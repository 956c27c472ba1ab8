"""The reasons the hub's city-wide rules give, prebuilt from the one catalogue
(`checkpost.reasons`): the hot path rejects with a ready `Reason`, and the text a station
shows for a hub refusal is the very text it would show for its own.

Reasons that name the tube or box (or a count) are built where they are given, with
`reason("box_sealed", box=...)`.
"""

from __future__ import annotations

from checkpost.reasons import reason

TUBE_ALREADY_OPENED = reason("tube_already_opened")
TUBE_NOT_OPEN = reason("tube_not_open")
TUBE_CLOSED = reason("tube_closed")
POOL_SIZE = reason("pool_size")
ALREADY_SAMPLED = reason("already_sampled")
TUBE_IN_BOX = reason("tube_in_other_box")
BOX_ALREADY_OPENED = reason("box_already_opened")
BOX_NOT_OPEN = reason("box_not_open")
SEAL_BROKEN = reason("seal_broken")
REPLAYED_PASS = reason("replayed_pass")
RISK_REGION = reason("risk_region_vehicle")
UNKNOWN_TARGET = reason("unknown_target")
CANNOT_UNDO = reason("cannot_undo")
UNIT_MISMATCH = reason("unit_mismatch")
MALFORMED = reason("malformed")
