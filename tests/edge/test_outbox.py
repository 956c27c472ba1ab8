"""The durable outbox: order, acknowledgement, limits, full disk, kill -9, and a model check."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from checkpost.edge.outbox import DuplicateEvent, Outbox, OutboxFull
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from checkpost.protocol import Scan, decode_event, uuid7

HERE = Path(__file__).resolve().parent


def scan(code: str = "HP1:x") -> Scan:
    return Scan(id=uuid7(), unit="unit-1", seq=0, ts=1.7e9, code=code)


def test_put_stamps_gapless_sequence_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        a = box.put([scan("a"), scan("b")])
        b = box.put([scan("c")])
        assert [e.seq for e in a + b] == [1, 2, 3]
    with Outbox(path) as box:
        rows = box.pending()
        assert [r.seq for r in rows] == [1, 2, 3]
        assert [decode_event(r.body).code for r in rows] == ["a", "b", "c"]
        assert box.put([scan("d")])[0].seq == 4  # never reused after restart
        assert box.check() == "ok"


def test_ack_removes_only_answered_events_and_ignores_unknown_ids(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        evs = box.put([scan(str(i)) for i in range(5)])
        assert box.ack([evs[1].id, evs[3].id, uuid7()]) == 2
        assert [r.id for r in box.pending()] == [evs[0].id, evs[2].id, evs[4].id]
        assert box.ack([evs[1].id]) == 0  # a duplicate result changes nothing
        assert box.depth == 3
        assert [r.seq for r in box.pending(limit=1, after_seq=1)] == [3]


def test_duplicate_id_is_refused_and_nothing_of_the_batch_is_stored(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        e = box.put([scan()])[0]
        with pytest.raises(DuplicateEvent):
            box.put([scan("new"), msgspec.structs.replace(e, seq=0)])
        assert box.depth == 1
        assert box.put([scan()])[0].seq == 2  # the refused batch used no sequence numbers


def test_size_limit_raises_a_clear_alarm_and_never_drops(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_events=3) as box:
        kept = box.put([scan("1"), scan("2"), scan("3")])
        assert box.stats().warn
        with pytest.raises(OutboxFull, match="upload queue full"):
            box.put([scan("4")])
        assert "upload queue full" in box.alarm
        assert [r.id for r in box.pending()] == [e.id for e in kept]
        box.ack([kept[0].id])
        assert box.alarm == ""
        box.put([scan("4")])


def test_byte_limit(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_bytes=600) as box:
        box.put([scan("x" * 100)])
        with pytest.raises(OutboxFull, match="kB"):
            box.put([scan("y" * 500)])
        assert box.depth == 1


def test_full_disk_refuses_new_work_and_keeps_what_it_has(tmp_path: Path) -> None:
    """PRAGMA max_page_count makes SQLite report SQLITE_FULL exactly as a full disk does."""
    path = tmp_path / "o.db"
    box = Outbox(path)
    box.put([scan("seed")])
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box.close()
    box = Outbox(path, max_page_count=pages + 2)
    stored: list[str] = []
    with pytest.raises(OutboxFull, match="storage full") as err:
        for i in range(10_000):
            stored += [e.id for e in box.put([scan("z" * 400 + str(i))])]
    assert "new work refused" in str(err.value)
    assert "storage full" in box.alarm
    assert box.check() == "ok"
    ids = [r.id for r in box.pending(limit=100_000)]
    assert ids[1:] == stored  # everything acknowledged to the caller is still there
    box.close()
    # Space comes back (bigger card): the unit takes work again, nothing was lost.
    with Outbox(path) as box:
        assert [r.id for r in box.pending(limit=100_000)] == ids
        box.put([scan("after")])
        assert box.alarm == ""


def test_session_counter_is_durable(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert box.bump("session") == 1
        assert box.bump("session") == 2
    with Outbox(tmp_path / "o.db") as box:
        assert box.counter("session") == 2
        assert box.bump("session") == 3


def test_journal_keeps_corrections(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.journal("correction", "id-1", {"local": "PASS", "hub": "FAIL"}, now=100.0)
        box.journal("undo", "id-2", {"why": "wrong tube"}, now=200.0)
        assert [j["kind"] for j in box.journal_entries()] == ["correction", "undo"]
        assert box.journal_entries("undo")[0]["detail"] == {"why": "wrong tube"}
        box.journal_keep_s = 50
        assert box.purge_journal(now=210.0) == 1


def test_survives_sigkill_at_any_instant(tmp_path: Path) -> None:
    """A writer is SIGKILLed 25 times at random moments; after each kill the file must
    hold every event whose commit was announced (unless its ack was started), nothing
    that was never announced, no duplicates, and sequence numbers in announcement order."""
    path = tmp_path / "kill.db"
    rnd = random.Random(6)
    announced_put: list[str] = []  # "P" lines, in order
    attempted_put: set[str] = set()  # "p" lines
    started_ack: set[str] = set()
    done_ack: set[str] = set()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    kills = 0
    for round_ in range(25):
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "_writer.py"), str(path), str(round_)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        stop_after = rnd.randint(1, 400)
        for lines, line in enumerate(proc.stdout, 1):
            tag, _, eid = line.strip().partition(" ")
            {"p": attempted_put.add, "a": started_ack.add, "A": done_ack.add}.get(
                tag, lambda i: announced_put.append(i)
            )(eid)
            if lines >= stop_after:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills += 1
        # What the writer announced before it died but we had not read yet still counts.
        for line in proc.stdout.read().splitlines():
            tag, _, eid = line.strip().partition(" ")
            if eid:
                {"p": attempted_put.add, "a": started_ack.add, "A": done_ack.add}.get(
                    tag, lambda i: announced_put.append(i)
                )(eid)
        proc.stdout.close()
        with Outbox(path) as box:
            rows = box.pending(limit=1_000_000)
            assert box.check() == "ok"
        ids = [r.id for r in rows]
        assert len(ids) == len(set(ids)), "duplicate event in the outbox"
        must_have = [i for i in announced_put if i not in started_ack]
        assert set(must_have) <= set(ids), "an announced event was lost"
        assert set(ids) <= attempted_put - done_ack, "an event appeared from nowhere"
        order = {eid: n for n, eid in enumerate(announced_put)}
        seen = [order[i] for i in ids if i in order]
        assert seen == sorted(seen), "replay order differs from write order"
        seqs = [r.seq for r in rows]
        assert seqs == sorted(seqs)
    assert kills == 25
    print(
        f"\noutbox kill -9: {kills} kills, {len(announced_put)} events committed, "
        f"{len(done_ack)} acknowledged, 0 lost, 0 duplicated"
    )


class OutboxMachine(RuleBasedStateMachine):
    """The outbox against a list model: put, ack (known, unknown, twice), reopen, limit."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "m.db"
        self.limit = 12
        self.box = Outbox(self.path, max_events=self.limit)
        self.model: list[tuple[int, str]] = []
        self.seq = 0
        self.refused = False  # the alarm stays up from a refusal until the next put or ack

    ids = Bundle("ids")

    @rule(target=ids, n=st.integers(1, 4))
    def put(self, n: int) -> list[str]:
        evs = [scan(f"c{self.seq + i}") for i in range(n)]
        if len(self.model) + n > self.limit:
            with pytest.raises(OutboxFull):
                self.box.put(evs)
            assert self.box.alarm
            self.refused = True
            return []
        self.refused = False
        out = self.box.put(evs)
        for e in out:
            self.seq += 1
            assert e.seq == self.seq
            self.model.append((e.seq, e.id))
        return [e.id for e in out]

    @rule(batch=ids, data=st.data())
    def ack(self, batch: list[str], data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(batch), max_size=3)) if batch else []
        chosen = [*chosen, uuid7()]
        want = len({c for c in chosen if any(c == m[1] for m in self.model)})
        assert self.box.ack(chosen) == want
        self.refused = False
        self.model = [m for m in self.model if m[1] not in chosen]

    @rule()
    def reopen(self) -> None:
        self.box.close()
        self.box = Outbox(self.path, max_events=self.limit)
        self.refused = False

    @precondition(lambda self: len(self.model) > 0)
    @rule(k=st.integers(0, 5))
    def replay_from(self, k: int) -> None:
        after = self.model[min(k, len(self.model) - 1)][0]
        got = [(p.seq, p.id) for p in self.box.pending(limit=3, after_seq=after)]
        assert got == [m for m in self.model if m[0] > after][:3]

    @invariant()
    def matches_model(self) -> None:
        assert [(p.seq, p.id) for p in self.box.pending(limit=100)] == self.model
        assert self.box.depth == len(self.model)
        if len(self.model) < self.limit and not self.refused:
            assert self.box.alarm == ""

    def teardown(self) -> None:
        self.box.close()
        self.dir.cleanup()


OutboxMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_outbox_model = OutboxMachine.TestCase
