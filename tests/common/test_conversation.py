"""The conversation key: one format, one parse, hostile ids refused where they enter."""

from __future__ import annotations

import pytest

from lull.common.conversation import MAX_ID_CHARS, BadConversation, Conversation
from lull.common.events import Event, Turn


@pytest.mark.parametrize(
    "key",
    ["messenger:106000000000001:7250311000002", "instagram:17841400000000000:ig1",
     "whatsapp:106540352242922:16315551234", "whatsapp:106540352242922:US.13491208655302741918",
     "messenger:page-1:user_1"],
)  # fmt: skip
def test_a_key_parses_into_its_parts_and_formats_back(key: str) -> None:
    conversation = Conversation.parse(key)
    assert conversation.key == str(conversation) == key
    assert Conversation(*key.split(":")) == conversation


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("messenger:p1:u1:2", "user_id: 1 to"),
        ("messenger:p1:u 1", "user_id: 1 to"),
        ("messenger:p1:u1\n", "user_id: 1 to"),
        ("messenger:p*:u1", "account_id: 1 to"),
        ("messenger:.p1:u1", "account_id: 1 to"),
        (f"messenger:p1:{'1' * (MAX_ID_CHARS + 1)}", "user_id: 1 to"),
        ("messenger::u1", "expected platform:account_id:user_id"),
        ("telegram:p1:u1", "expected platform:account_id:user_id"),
        ("", "expected platform:account_id:user_id"),
    ],
)
def test_a_hostile_or_mistyped_key_is_refused_saying_what_is_expected(key: str, says: str) -> None:
    with pytest.raises(BadConversation, match=says):
        Conversation.parse(key)


def test_ids_that_would_not_split_back_are_refused_but_a_user_may_be_anything() -> None:
    with pytest.raises(BadConversation, match="holds ':'"):
        Conversation.of("messenger", "p:1", "u1")
    assert Conversation.of("messenger", "p1", "u:1").key == "messenger:p1:u:1"


def test_events_turns_and_stream_fields_use_the_one_format() -> None:
    event = Event("whatsapp", "wa1", "15550001111", "m1", 0, "text")
    turn = Turn("whatsapp", "wa1", "15550001111", "echo", 0)
    conversation = Conversation("whatsapp", "wa1", "15550001111")
    assert event.conversation == turn.conversation == conversation.key
    fields = {name.encode(): value.encode() for name, value in conversation.fields().items()}
    assert Conversation.from_fields(fields) == conversation
    assert Conversation.from_fields({b"platform": b"whatsapp"}) is None
