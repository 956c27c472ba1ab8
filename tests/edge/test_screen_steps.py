"""The station page for issue 6 §2-3: direction picked on the plate keypad, advice and
disinfection ticked with their time, the hub's sealed list with its version and age, a
person entered by hand with an ID number, and the hub's record of an arriving box.
Screenshots under test-artifacts/screens/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from checkpost.edge.agent import HubResult, PushedList
from checkpost.edge.workflows import CodeRead, Tap
from playwright.sync_api import Browser

from checkpost.protocol import Result, decode_event
from checkpost.protocol.lists import sealed_document

from .helpers import wait_for
from .test_screen import Station, browser

__all__ = ["browser"]


def test_checkpoint_direction_and_steps(tmp_path: Path, issuer: Any, browser: Browser) -> None:
    st = Station(tmp_path, issuer, browser, "checkpoint")
    page = st.page
    try:
        page.click("button[data-action=plate]")
        page.fill("#f-plate", "京A12345")
        page.click("button.dir[data-dir=out]")
        page.click("#modal-ok")
        page.wait_for_selector("[data-testid=direction]:has-text('出')")
        assert st.unit.workflow.vehicle.direction == "out"
        page.click("button[data-action=advice]")
        page.wait_for_selector("[data-testid=steps]:has-text('✓ 已宣教')")
        assert not page.is_visible("button[data-action=advice]")
        page.click("button[data-action=disinfect]")
        page.wait_for_selector("[data-testid=steps]:has-text('✓ 已消杀')")
        hhmm = time.strftime("%H:%M", time.localtime(st.unit.workflow.vehicle.disinfected_at))
        assert hhmm in page.inner_text("[data-testid=steps]")
        kinds = [r.kind for r in st.unit.outbox.pending(limit=10)]
        assert kinds == ["vehicle_open", "vehicle_step", "vehicle_step"]
        st.shot("checkpoint-direction-advice-disinfect")
    finally:
        st.close()


def test_gate_shows_the_hub_sealed_list(tmp_path: Path, issuer: Any, browser: Browser) -> None:
    st = Station(tmp_path, issuer, browser, "gate")
    page = st.page
    try:
        sid = issuer.sid("110101199001011234")
        doc = sealed_document(
            [sid], version=7, issued_at=time.time() - 1800, signer=issuer.trust_key, scope="3栋"
        )
        st.unit.submit(PushedList("sealed", doc))
        page.wait_for_selector("[data-testid=sealed]:has-text('版本 7')")
        text = page.inner_text("[data-testid=sealed]")
        assert "30 min" in text and "中心下发" in text and "3栋" in text
        st.do(Tap("direction", {"direction": "out"}))
        st.do(CodeRead(issuer.hp1()))
        st.verdict("FAIL")
        assert "封控" in page.inner_text("#reasons")
        st.shot("gate-sealed-list-from-hub")
    finally:
        st.close()


def test_manual_entry_and_box_check(tmp_path: Path, issuer: Any, browser: Browser) -> None:
    st = Station(tmp_path, issuer, browser, "sampling")
    page = st.page
    try:
        st.do(CodeRead("100000000001"))
        page.wait_for_selector("[data-testid=tube]:has-text('100000000001')")
        page.click("button[data-action=manual]")
        page.fill("#f-name", "王小明")
        page.fill("#f-id_number", "110101199003071234")
        page.fill("#f-phone", "13900001111")
        page.click("#modal-ok")
        page.wait_for_selector("li:has-text('王*明 ✍')")
        ev = decode_event(st.unit.outbox.pending(limit=10)[-1].body)
        assert ev.person is not None and ev.person.phone == "139****1111"
        st.shot("sampling-manual-entry")
    finally:
        st.close()
    xf = Station(tmp_path, issuer, browser, "transfer")
    page = xf.page
    try:
        xf.do(CodeRead("BOX0000001"))
        page.wait_for_selector("text=正在核对")
        check = decode_event(xf.unit.outbox.pending(limit=10)[-1].body)
        assert check.__struct_config__.tag == "box_check"
        flags = ["sealed", "known:2/9", "tube:100000000001", "tube:100000000002"]
        xf.unit.submit(HubResult(Result(id=check.id, ok=True, flags=flags)))
        page.wait_for_selector("text=中心记录")
        xf.do(CodeRead("100000000003"))
        wait_for(lambda: xf.unit.workflow.notice is not None, what="extra tube notice")
        page.wait_for_selector("#notice.warn")
        xf.shot("transfer-box-checked-against-hub")
    finally:
        xf.close()
