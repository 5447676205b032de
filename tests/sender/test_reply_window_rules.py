"""The 24-hour window's rules alone (sender/reply_window.py): which request may go when, and
in what shape. The same rules through a real sender: test_reply_window.py."""

from __future__ import annotations

import pytest

from lull.common.graph_request import GraphRequest
from lull.sender.reply_window import ready_to_send, sendable, window_ends_at_ms

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
NOW_MS = 1_800_000_000_000
TEXT = {"recipient": {"id": "u1"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}}
WA_TEXT = {"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "x"}}
WA_TEMPLATE = {"messaging_product": "whatsapp", "to": "1555", "type": "template",
               "template": {"name": "t", "language": {"code": "en"}}}  # fmt: skip


def _request(platform: str, tag: str = "") -> GraphRequest:
    payload = WA_TEXT if platform == "whatsapp" else TEXT
    return GraphRequest("a1", "/v23.0/a1/messages", payload, platform, tag)


@pytest.mark.parametrize(
    ("platform", "tag", "age_ms", "sent_with"),
    [
        ("messenger", "", DAY_MS - 1, "RESPONSE"),
        ("messenger", "HUMAN_AGENT", DAY_MS - 1, "RESPONSE"),  # in the window: no tag
        ("messenger", "", DAY_MS, None),
        ("messenger", "HUMAN_AGENT", DAY_MS, "HUMAN_AGENT"),
        ("messenger", "HUMAN_AGENT", 7 * DAY_MS - 1, "HUMAN_AGENT"),
        ("messenger", "HUMAN_AGENT", 7 * DAY_MS, None),
        ("messenger", "ACCOUNT_UPDATE", 30 * DAY_MS, "ACCOUNT_UPDATE"),
        ("messenger", "CONFIRMED_EVENT_UPDATE", 30 * DAY_MS, "CONFIRMED_EVENT_UPDATE"),
        ("messenger", "POST_PURCHASE_UPDATE", 30 * DAY_MS, "POST_PURCHASE_UPDATE"),
        ("instagram", "HUMAN_AGENT", 2 * DAY_MS, "HUMAN_AGENT"),
        ("instagram", "HUMAN_AGENT", 8 * DAY_MS, None),
        ("instagram", "ACCOUNT_UPDATE", 2 * DAY_MS, None),
        ("instagram", "", 2 * DAY_MS, None),
    ],
)
def test_messenger_and_instagram_after_the_window_need_an_allowed_tag(
    platform: str, tag: str, age_ms: int, sent_with: str | None
) -> None:
    ready = sendable(_request(platform, tag), NOW_MS - age_ms, NOW_MS)
    if sent_with is None:
        assert ready is None
    elif sent_with == "RESPONSE":
        assert ready is not None and ready.payload == TEXT
    else:
        assert ready is not None
        assert ready.payload == {**TEXT, "messaging_type": "MESSAGE_TAG", "tag": sent_with}


def test_whatsapp_after_the_window_takes_only_a_template() -> None:
    late_ms = NOW_MS - 25 * HOUR_MS
    template = GraphRequest("a1", "/v23.0/a1/messages", WA_TEMPLATE, "whatsapp")
    assert sendable(template, late_ms, NOW_MS) == template
    assert sendable(_request("whatsapp"), late_ms, NOW_MS) is None
    assert sendable(_request("whatsapp", "HUMAN_AGENT"), late_ms, NOW_MS) is None
    assert sendable(_request("whatsapp"), NOW_MS - HOUR_MS, NOW_MS) == _request("whatsapp")


def test_a_user_never_seen_writing_is_left_to_metas_answer() -> None:
    assert sendable(_request("messenger"), 0, NOW_MS) == _request("messenger")


def test_a_send_state_from_before_platforms_is_judged_by_its_shape() -> None:
    old = GraphRequest("a1", "/v23.0/a1/messages", WA_TEMPLATE)
    assert sendable(old, NOW_MS - 2 * DAY_MS, NOW_MS) == old


def test_replies_go_whole_or_not_at_all_and_thread_control_is_no_reply() -> None:
    late_ms = NOW_MS - 2 * DAY_MS
    tagged = _request("messenger", "HUMAN_AGENT")
    handoff = GraphRequest("a1", "/v23.0/a1/pass_thread_control", {"recipient": {"id": "u1"}})
    ready = ready_to_send([tagged, handoff], late_ms, NOW_MS)
    assert ready is not None
    assert [r.payload.get("tag") for r in ready] == ["HUMAN_AGENT", None]
    assert ready_to_send([tagged, _request("messenger"), handoff], late_ms, NOW_MS) is None
    assert window_ends_at_ms(late_ms) == late_ms + DAY_MS
