"""The invariant checker itself: it must see every kind of violation it claims to check."""

from __future__ import annotations

from dataclasses import replace

from tests.chaos.bot import Receipt
from tests.chaos.observe import Emitted
from tests.chaos.verdict import GAP_MS, RESUME_STEP_MS, DeadLetter, Evidence, Send, judge

CONV = "messenger:p1:u1"
T0 = 1_000_000


def _batch(seq: int, mids: tuple[str, ...], conv: str = CONV, open_ms: int = 500) -> Emitted:
    at = T0 + seq * 10_000
    return Emitted("out", f"{seq}-0", f"{conv}:{seq}", seq, conv, mids, at, at + open_ms)


def _receipt(b: Emitted, at_ms: int) -> Receipt:
    return Receipt(b.batch_id, b.seq, b.conversation, b.mids, at_ms)


def _clean() -> Evidence:
    one, two = _batch(1, ("a", "b")), _batch(2, ("c",))
    return Evidence(
        accepted={"a", "b", "c"},
        posted={"a", "b", "c", "x"},
        emitted=[one, two],
        receipts=[_receipt(one, T0 + 20_000), _receipt(two, T0 + 30_000)],
        sends=[Send(0, one.batch_id, T0 + 20_001), Send(1, two.batch_id, T0 + 30_001)],
        dead=[],
        sender_kills=[],
        outages_ms=[],
        max_open_ms=3000,
        recovery_ms=1000,
    )


def test_a_clean_run_has_no_problems_and_counts_right() -> None:
    v = judge(_clean())
    assert v.problems == []
    assert v.summary_line() == (
        "accepted=3 batches=2 delivered=2 duplicates=0 lost=0 dead=0 paused=0 paused_answered=0"
    )


def test_a_message_in_two_batches_is_a_duplicate() -> None:
    ev = _clean()
    again = _batch(3, ("c",))
    ev = replace(ev, emitted=[*ev.emitted, again],
                 receipts=[*ev.receipts, _receipt(again, T0 + 40_000)],
                 sends=[*ev.sends, Send(0, again.batch_id, T0 + 40_001)])  # fmt: skip
    v = judge(ev)
    assert v.duplicates == 1
    assert any("two batches" in p for p in v.problems)


def test_an_accepted_message_in_no_batch_is_lost() -> None:
    v = judge(replace(_clean(), accepted={"a", "b", "c", "d"}))
    assert v.lost == 1
    assert any("in no batch" in p for p in v.problems)


def test_a_batch_never_answered_is_lost_unless_dead_lettered() -> None:
    ev = _clean()
    unanswered = replace(ev, sends=ev.sends[:1])
    assert judge(unanswered).lost == 1
    dead = judge(replace(unanswered, dead=[DeadLetter("sender", ev.emitted[1].batch_id, "x")]))
    assert dead.lost == 0
    assert dead.dead == 1
    assert any("dead letters" in p for p in dead.problems)


def test_a_resend_is_a_duplicate_unless_its_sender_slot_was_killed_right_after_sending() -> None:
    ev = _clean()
    first = ev.sends[0]
    resend = Send(1, first.batch_id, first.at_ms + 5000)
    twice = replace(ev, sends=[*ev.sends, resend])
    v = judge(twice)
    assert (v.duplicates, v.gap_resends) == (1, 0)
    killed = judge(replace(twice, sender_kills=[(first.slot, first.at_ms + GAP_MS // 2)]))
    assert (killed.duplicates, killed.gap_resends) == (0, 1)
    late_kill = judge(replace(twice, sender_kills=[(first.slot, first.at_ms + GAP_MS + 1)]))
    assert late_kill.duplicates == 1
    early_kill = judge(replace(twice, sender_kills=[(first.slot, first.at_ms - 1000)]))
    assert early_kill.duplicates == 1
    other_slot = judge(replace(twice, sender_kills=[(1 - first.slot, first.at_ms + 1)]))
    assert other_slot.duplicates == 1


def test_batches_out_of_seq_order_are_reported() -> None:
    ev = _clean()
    late = replace(ev, receipts=list(reversed(ev.receipts)))
    assert any("after a later seq" in p for p in judge(late).problems)
    one, two = ev.sends
    swapped = replace(ev, sends=[replace(one, at_ms=two.at_ms + 5), two])
    assert any("after a later seq" in p for p in judge(swapped).problems)


def test_a_seq_gap_is_reported() -> None:
    # A life's seqs start at a base from the clock, so a gap is seen between two batches; a
    # missing first batch shows as its messages lost.
    ev = _clean()
    third = _batch(4, ("d",))
    ev = replace(ev, emitted=[*ev.emitted, third], accepted={"a", "b", "c", "d"},
                 receipts=[*ev.receipts, _receipt(third, T0 + 50_000)],
                 sends=[*ev.sends, Send(0, third.batch_id, T0 + 50_001)])  # fmt: skip
    v = judge(ev)
    assert any("not consecutive" in p for p in v.problems)


def test_a_window_open_too_long_is_reported_except_across_a_redis_outage() -> None:
    ev = _clean()
    slow = _batch(3, ("d",), open_ms=5000)
    ev = replace(ev, accepted={"a", "b", "c", "d"}, posted={"a", "b", "c", "d"},
                 emitted=[*ev.emitted, slow],
                 receipts=[*ev.receipts, _receipt(slow, T0 + 40_000)],
                 sends=[*ev.sends, Send(0, slow.batch_id, T0 + 40_001)])  # fmt: skip
    assert any("open longer" in p for p in judge(ev).problems)
    outage = (slow.first_received_ms + 100, slow.first_received_ms + 900)
    excused = judge(replace(ev, outages_ms=[outage]))
    assert excused.problems == []
    assert excused.checked_windows == 2


def test_a_window_opened_once_closers_resumed_after_an_outage_is_judged() -> None:
    ev = _clean()
    slow = _batch(3, ("d",), open_ms=5000)
    ev = replace(ev, accepted={"a", "b", "c", "d"}, posted={"a", "b", "c", "d"},
                 emitted=[*ev.emitted, slow],
                 receipts=[*ev.receipts, _receipt(slow, T0 + 40_000)],
                 sends=[*ev.sends, Send(0, slow.batch_id, T0 + 40_001)],
                 recovery_ms=12_000)  # fmt: skip
    down_ms = 500
    # Closers resume within one outage length (plus a step) after Redis is back, long
    # before the 12 s backoff cap: a window opened after that is judged.
    resumed = slow.first_received_ms - 1
    up = resumed - down_ms - RESUME_STEP_MS
    judged = judge(replace(ev, outages_ms=[(up - down_ms, up)]))
    assert any("open longer" in p for p in judged.problems)
    assert judged.checked_windows == 3
    excused = judge(replace(ev, outages_ms=[(up - down_ms + 2, up + 2)]))
    assert excused.problems == []
    assert excused.checked_windows == 2


def test_the_bot_getting_other_messages_than_emitted_is_reported() -> None:
    ev = _clean()
    wrong = replace(ev.receipts[0], mids=("a",))
    v = judge(replace(ev, receipts=[wrong, ev.receipts[1]]))
    assert any("other than the one emitted" in p for p in v.problems)


def test_a_resend_after_a_redis_outage_is_a_duplicate_named_for_its_cause() -> None:
    ev = _clean()
    first = ev.sends[0]
    resend = Send(first.slot, first.batch_id, first.at_ms + 3000)
    v = judge(replace(ev, sends=[*ev.sends, resend],
                      outages_ms=[(first.at_ms + 2, first.at_ms + 1500)]))  # fmt: skip
    assert v.duplicates == 1
    assert any("Redis failed between the send and its mark" in p for p in v.problems)


def test_a_kill_while_redis_was_down_after_the_send_is_still_the_send_then_crash_gap() -> None:
    ev = _clean()
    first = ev.sends[0]
    resend = Send(1 - first.slot, first.batch_id, first.at_ms + 9000)
    outage = (first.at_ms + 2, first.at_ms + 1500)
    kill = (first.slot, first.at_ms + 2500)
    v = judge(replace(ev, sends=[*ev.sends, resend], outages_ms=[outage], sender_kills=[kill]))
    assert (v.duplicates, v.gap_resends) == (0, 1)
    late = (first.slot, outage[1] + ev.recovery_ms + 1)
    v = judge(replace(ev, sends=[*ev.sends, resend], outages_ms=[outage], sender_kills=[late]))
    assert v.duplicates == 1


def test_a_stamped_batch_finished_unanswered_is_paused_not_lost() -> None:
    ev = _clean()
    two = replace(ev.emitted[1], paused=True)
    ev = replace(ev, emitted=[ev.emitted[0], two], receipts=ev.receipts[:1], sends=ev.sends[:1],
                 finished={CONV: 2})  # fmt: skip
    v = judge(ev)
    assert v.problems == []
    assert (v.paused, v.paused_answered, v.lost, v.delivered) == (1, 0, 0, 1)


def test_a_stamped_batch_the_bot_got_breaks_the_takeover_invariant() -> None:
    ev = _clean()
    two = replace(ev.emitted[1], paused=True)
    v = judge(replace(ev, emitted=[ev.emitted[0], two], finished={CONV: 2}))
    assert v.paused_answered == 1
    assert any("closed during a pause answered" in p for p in v.problems)


def test_an_unstamped_batch_unanswered_needs_a_human_in_its_conversation() -> None:
    ev = replace(_clean(), receipts=_clean().receipts[:1], sends=_clean().sends[:1],
                 finished={CONV: 2})  # fmt: skip
    v = judge(ev)
    assert any("no human wrote in" in p for p in v.problems)
    assert v.lost == 1
    v = judge(replace(ev, human_conversations=frozenset({CONV})))
    assert v.problems == [] and v.paused == 1


def test_a_stamped_batch_not_finished_is_lost() -> None:
    ev = _clean()
    two = replace(ev.emitted[1], paused=True)
    ev = replace(ev, emitted=[ev.emitted[0], two], receipts=ev.receipts[:1], sends=ev.sends[:1],
                 finished={CONV: 1})  # fmt: skip
    v = judge(ev)
    assert v.lost == 1 and v.paused == 0


def _with_api_message(ev: Evidence, *sends: Send) -> Evidence:
    """An API message between the two batches (seq 3 after them), key k1, accepted."""
    at = T0 + 35_000
    message = Emitted("out", "3-0", "api:0-aa", 3, CONV, (), at, at, api=True)
    return replace(ev, emitted=[*ev.emitted, message], sends=[*ev.sends, *sends],
                   api_accepted=frozenset({"k1"}))  # fmt: skip


def test_send_api_messages_are_sent_once_and_take_their_seq() -> None:
    clean = judge(_with_api_message(_clean(), Send(0, "apikey:k1", T0 + 36_000)))
    assert clean.problems == [] and clean.api_sent == 1
    never = judge(_with_api_message(_clean()))
    assert any("accepted and never sent" in p for p in never.problems)
    twice = judge(
        _with_api_message(
            _clean(), Send(0, "apikey:k1", T0 + 36_000), Send(1, "apikey:k1", T0 + 46_000)
        )
    )
    assert twice.duplicates == 1
    # Without the API message's seq 3, a later batch's seq 4 would be a gap.
    later = _batch(4, ("d",))
    ev = _with_api_message(_clean(), Send(0, "apikey:k1", T0 + 36_000))
    ev = replace(ev, accepted={*ev.accepted, "d"}, posted={*ev.posted, "d"},
                 emitted=[*ev.emitted, later],
                 receipts=[*ev.receipts, _receipt(later, T0 + 50_000)],
                 sends=[*ev.sends, Send(0, later.batch_id, T0 + 50_001)])  # fmt: skip
    assert judge(ev).problems == []
