"""Every webhook fixture parses to exactly the expected events and ignored items."""

from __future__ import annotations

import orjson
import pytest

from lull.common.events import Parsed
from lull.common.platforms import parse
from tests.conftest import FIXTURES

PAGE, PSID, PSID_2 = "106000000000001", "7000000000000001", "7000000000000002"
IG_ACCOUNT, IGSID = "17841400000000001", "6000000000000001"
PHONE_ID, WA_ID, WA_ID_2 = "106540352242922", "16315551234", "16315555678"
BSUID = "US.13491208655302741918"  # the business-scoped user id of WA_ID's user

# (kind, mid, user_id, account_id, event_time_ms, text, target_mid)
Row = tuple[str, str, str, str, int, str, str | None]


T = 1763800000000
S = 1763800000


def m(kind: str, mid: str, dt_ms: int, text: str = "", target: str | None = None) -> Row:
    """A Messenger row from the fixtures' first user to their Page, dt_ms after T."""
    return (kind, mid, PSID, PAGE, T + dt_ms, text, target)


def ig(kind: str, mid: str, dt_ms: int, text: str = "", target: str | None = None) -> Row:
    """An Instagram row, dt_ms after T."""
    return (kind, mid, IGSID, IG_ACCOUNT, T + dt_ms, text, target)


def wa(kind: str, mid: str, dt_s: int, text: str = "", target: str | None = None) -> Row:
    """A WhatsApp row from the fixtures' first user, dt_s seconds after S."""
    return (kind, mid, WA_ID, PHONE_ID, (S + dt_s) * 1000, text, target)


EVENTS: dict[str, list[Row]] = {
    # Another app holds the thread: the user's message is still windowed (TURNS: a hold).
    "messenger/standby": [m("text", "m_standby_1", 10_000, "is anyone there?")],
    "messenger/text": [m("text", "m_text_1", 0, "hello, world!")],
    "messenger/attachments_image": [m("attachment", "m_attachments_image_1", 1000)],
    "messenger/quick_reply": [m("quick_reply", "m_quick_reply_1", 2000, "Red")],
    "messenger/postback": [m("postback", "m_postback_1", 3000, "Get Started")],
    "messenger/reaction": [m("reaction", f"reaction:m_reaction_target_1:react:{T + 4000}", 4000)],
    "messenger/message_edit": [
        m("edit", "m_message_edit_1#edit1", 5000, "hello, world! (edited)", "m_message_edit_1")
    ],
    "messenger/reply_to": [m("text", "m_reply_to_1", 6000, "yes, that one")],
    "messenger/referral": [m("referral", f"referral:{PSID}:{T + 9000}", 9000)],
    "messenger/multi_entry": [
        m("text", "m_multi_entry_1", 11000, "café ☕ — naïve question"),
        m("text", "m_multi_entry_2", 12000, "do you open on sundays?"),
        ("text", "m_multi_entry_3", PSID_2, PAGE, T + 11500, "hi there 👋😊", None),
        ("text", "m_multi_entry_4", PSID_2, PAGE, T + 13000, "I'd like to book a table", None),
    ],
    "instagram/text": [ig("text", "ig_text_1", 0, "hi! is this still available?")],
    "instagram/attachments_image": [ig("attachment", "ig_attachments_image_1", 1000)],
    "instagram/story_reply": [ig("story_reply", "ig_story_reply_1", 2000, "love this look 😍")],
    "instagram/story_mention": [ig("story_mention", "ig_story_mention_1", 3000)],
    "instagram/is_deleted": [ig("unsend", "ig_is_deleted_1#deleted", 4000, "", "ig_is_deleted_1")],
    "instagram/is_unsupported": [ig("unsupported", "ig_is_unsupported_1", 5000)],
    "instagram/reaction": [ig("reaction", f"reaction:ig_reaction_target_1:react:{T + 6000}", 6000)],
    "instagram/postback": [ig("postback", "ig_postback_1", 7000, "What are your opening hours?")],
    "instagram/quick_reply": [ig("quick_reply", "ig_quick_reply_1", 8000, "Size M")],
    "whatsapp/text": [wa("text", "wamid.text_1", 0, "Does it come in another color?")],
    "whatsapp/image": [wa("attachment", "wamid.image_1", 1, "this one, in blue")],
    "whatsapp/audio": [wa("attachment", "wamid.audio_1", 2)],
    "whatsapp/video": [wa("attachment", "wamid.video_1", 3, "it arrived damaged")],
    "whatsapp/document": [wa("attachment", "wamid.document_1", 4, "my invoice")],
    "whatsapp/sticker": [wa("attachment", "wamid.sticker_1", 5)],
    "whatsapp/location": [
        wa("location", "wamid.location_1", 6, "Main office, 1 Hacker Way, Menlo Park, CA 94025")
    ],
    "whatsapp/contacts": [wa("contacts", "wamid.contacts_1", 7)],
    "whatsapp/interactive_button_reply": [
        wa("quick_reply", "wamid.interactive_button_reply_1", 8, "Change")
    ],
    "whatsapp/interactive_list_reply": [
        wa("postback", "wamid.interactive_list_reply_1", 9, "Priority Mail Express")
    ],
    "whatsapp/interactive_nfm_reply": [
        wa("flow_reply", "wamid.interactive_nfm_reply_1", 10, "Sent")
    ],
    "whatsapp/button": [wa("quick_reply", "wamid.button_1", 11, "Unsubscribe from Promos")],
    "whatsapp/reaction": [wa("reaction", "wamid.reaction_1", 12)],
    "whatsapp/order": [wa("order", "wamid.order_1", 13, "please deliver before friday")],
    "whatsapp/system": [wa("system", "wamid.system_1", 14)],
    "whatsapp/unsupported": [wa("unsupported", "wamid.unsupported_1", 15)],
    "whatsapp/edit": [
        wa("edit", "wamid.edit_1", 16, "Does it come in another colour?", "wamid.edit_original_1")
    ],
    "whatsapp/revoke": [wa("unsend", "wamid.revoke_1", 17, "", "wamid.revoke_original_1")],
    # A username adopter whose phone number Meta withholds: keyed by the BSUID.
    "whatsapp/text_username": [
        (
            "text",
            "wamid.text_username_1",
            BSUID,
            PHONE_ID,
            (S + 40) * 1000,
            "Does it come in another color?",
            None,
        )
    ],
    # Phone number and BSUID both given: the phone number stays the key.
    "whatsapp/text_bsuid_and_phone": [
        wa("text", "wamid.text_bsuid_and_phone_1", 41, "and in size M?")
    ],
    "whatsapp/multi": [
        wa("text", "wamid.multi_1", 30, "hi"),
        wa("text", "wamid.multi_2", 31, "I ordered yesterday"),
        wa("text", "wamid.multi_3", 32, "where is my package? 📦"),
        (
            "text",
            "wamid.multi_4",
            WA_ID_2,
            PHONE_ID,
            (S + 33) * 1000,
            "Olá, ainda têm mesa às 20h?",
            None,
        ),
    ],
}

# A fixture not listed here ignores nothing.
IGNORED: dict[str, list[tuple[str, str]]] = {
    "messenger/delivery": [("messenger", "delivery")],
    "messenger/read": [("messenger", "read")],
    "messenger/request_thread_control": [("messenger", "request_thread_control")],
    "instagram/read": [("instagram", "read")],
    "instagram/comments_change": [("instagram", "change:comments")],
    "whatsapp/statuses_sent": [("whatsapp", "status")],
    "whatsapp/statuses_delivered": [("whatsapp", "status")],
    "whatsapp/statuses_read": [("whatsapp", "status")],
    "whatsapp/errors": [("whatsapp", "error")],
    "whatsapp/multi": [("whatsapp", "status")],
}
# Failed statuses: (message_id, account_id, time_ms, recipient, code, title).
Failure = tuple[str, str, int, str | None, int | None, str]
UNDELIVERABLE = "Message undeliverable"
FAILURES: dict[str, list[Failure]] = {
    "whatsapp/statuses_failed": [
        ("wamid.statuses_failed_1", PHONE_ID, (S + 23) * 1000, WA_ID, 131047,
         "Re-engagement message"),
    ],
    "whatsapp/statuses_failed_undeliverable": [
        ("wamid.statuses_failed_undeliverable_1", PHONE_ID, (S + 360) * 1000, WA_ID, 131026,
         UNDELIVERABLE),
    ],
    # Sent to a business-scoped user id: Meta names the recipient by recipient_user_id only.
    "whatsapp/statuses_failed_bsuid": [
        ("wamid.statuses_failed_bsuid_1", PHONE_ID, (S + 365) * 1000, BSUID, 131026,
         UNDELIVERABLE),
    ],
}  # fmt: skip
# Business-side turns: (kind, conversation, mid, app_id, previous_app_id, text).
TurnRow = tuple[str, str, str, str, str, str]
LULL_APP, INBOX = "1517776481860111", "263902037430900"
MSG, IGC = f"messenger:{PAGE}:{PSID}", f"instagram:{IG_ACCOUNT}:{IGSID}"
TURNS: dict[str, list[TurnRow]] = {
    "messenger/echo": [
        ("echo", MSG, "m_echo_1", LULL_APP, "", "Thanks! Which colour would you like?")
    ],
    "messenger/echo_page_inbox": [
        ("echo", MSG, "m_echo_page_inbox_1", INBOX, "",
         "Hi, this is Ana from support. Let me check your order."),
    ],
    "instagram/echo": [("echo", IGC, "ig_echo_1", "", "", "Yes it is! Which size?")],
    "instagram/echo_inbox": [
        ("echo", IGC, "ig_echo_app_1", INBOX, "", "Our team will reply here shortly.")
    ],
    "messenger/take_thread_control": [
        ("take_thread_control", MSG, "", INBOX, LULL_APP, "")
    ],
    "messenger/pass_thread_control": [
        ("pass_thread_control", MSG, "", LULL_APP, INBOX, "")
    ],
    # A user's message in standby: windowed (EVENTS) and a hold.
    "messenger/standby": [("standby", MSG, "", "", "", "")],
    # Another app's echo in standby: a hold and a human turn.
    "messenger/standby_echo": [
        ("standby", MSG, "", "", "", ""),
        ("echo", MSG, "m_standby_echo_1", INBOX, "", "I'm here, how can I help?"),
    ],
    "whatsapp/smb_message_echoes": [
        ("smb_echo", f"whatsapp:{PHONE_ID}:{WA_ID}", "wamid.smb_message_echoes_1", "", "",
         "Hi Sheena, it's Marco from the shop. Blue is back in stock."),
    ],
}  # fmt: skip
ALL = sorted(EVENTS.keys() | IGNORED.keys() | FAILURES.keys() | TURNS.keys())


def turns(parsed: Parsed) -> list[TurnRow]:
    """The compared fields of each business-side turn."""
    return [
        (t.kind, t.conversation, t.mid, t.app_id, t.previous_app_id, t.text) for t in parsed.turns
    ]


def rows(parsed: Parsed) -> list[Row]:
    """The compared fields of each event."""
    return [
        (e.kind, e.mid, e.user_id, e.account_id, e.event_time_ms, e.text, e.target_mid)
        for e in parsed.events
    ]


def failures(parsed: Parsed) -> list[Failure]:
    """The compared fields of each delivery failure."""
    return [
        (f.message_id, f.account_id, f.time_ms, f.recipient, f.code, f.title)
        for f in parsed.failures
    ]


def fixture(name: str) -> bytes:
    """The body of tests/fixtures/<name>.json."""
    return (FIXTURES / f"{name}.json").read_bytes()


def test_every_fixture_has_an_expectation() -> None:
    assert {f"{p.parent.name}/{p.stem}" for p in FIXTURES.glob("*/*.json")} == set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_fixture(name: str) -> None:
    parsed = parse(fixture(name))
    assert rows(parsed) == EVENTS.get(name, [])
    assert parsed.ignored == IGNORED.get(name, [])
    assert failures(parsed) == FAILURES.get(name, [])
    assert turns(parsed) == TURNS.get(name, [])
    platform = name.split("/", maxsplit=1)[0]
    assert all(e.platform == platform for e in parsed.events)


def payload_url(name: str) -> str:
    """The first attachment's payload.url in a Messenger-shaped fixture."""
    item = orjson.loads(fixture(name))["entry"][0]["messaging"][0]
    url: str = item["message"]["attachments"][0]["payload"]["url"]
    return url


def test_attachments() -> None:
    (image,) = parse(fixture("messenger/attachments_image")).events
    assert image.attachments == [
        {"type": "image", "url": payload_url("messenger/attachments_image")}
    ]
    (mention,) = parse(fixture("instagram/story_mention")).events
    url = payload_url("instagram/story_mention")
    assert mention.attachments == [{"type": "story_mention", "url": url}]
    (document,) = parse(fixture("whatsapp/document")).events
    assert document.attachments == [
        {
            "type": "document",
            "id": "1003383421387259",
            "mime_type": "application/pdf",
            "caption": "my invoice",
            "filename": "invoice-2025-11.pdf",
        }
    ]
    (audio,) = parse(fixture("whatsapp/audio")).events
    assert audio.attachments == [
        {"type": "audio", "id": "1003383421387257", "mime_type": "audio/ogg; codecs=opus"}
    ]
    (text,) = parse(fixture("messenger/text")).events
    assert text.attachments == []


def test_raw_is_the_platform_item() -> None:
    doc = orjson.loads(fixture("messenger/reply_to"))
    (event,) = parse(fixture("messenger/reply_to")).events
    assert event.raw == doc["entry"][0]["messaging"][0]
    assert event.raw["message"]["reply_to"]["mid"] == "m_reply_to_target_1"
    wa_doc = orjson.loads(fixture("whatsapp/image"))
    (wa_event,) = parse(fixture("whatsapp/image")).events
    assert wa_event.raw == wa_doc["entry"][0]["changes"][0]["value"]["messages"][0]
    (qr,) = parse(fixture("messenger/quick_reply")).events
    assert qr.raw["message"]["quick_reply"] == {"payload": "PICK_RED"}


def test_conversation_key() -> None:
    (event,) = parse(fixture("whatsapp/text")).events
    assert event.conversation == f"whatsapp:{PHONE_ID}:{WA_ID}"


def test_whatsapp_user_without_a_phone_number_is_keyed_by_bsuid() -> None:
    (event,) = parse(fixture("whatsapp/text_username")).events
    assert event.conversation == f"whatsapp:{PHONE_ID}:{BSUID}"
    assert event.raw["from_user_id"] == BSUID
    # Every message of that user lands in one conversation, whatever its type.
    later = wa_msg("image", image={"caption": "this one"})
    del later["from"]
    later["from_user_id"] = BSUID
    (image,) = parse(wa_body(later)).events
    assert image.conversation == event.conversation
    # Meta's first drafts sent the withheld phone number as "".
    (blank,) = parse(wa_body({**later, "from": ""})).events
    assert blank.conversation == event.conversation
    # Neither id: nothing to key the message by.
    del later["from_user_id"]
    assert parse(wa_body(later)).ignored == [("whatsapp", "malformed")]


def page_body(*items: object, obj: str = "page") -> bytes:
    """A Messenger-shaped body holding the given messaging[] items in one entry."""
    return orjson.dumps({"object": obj, "entry": [{"id": PAGE, "messaging": list(items)}]})


def item(**action: object) -> dict[str, object]:
    """A messaging[] item from the fixtures' user to their Page at time T."""
    return {"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": T, **action}


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"postback": {"title": "Menu"}}, m("postback", f"postback:{PSID}:{T}", 0, "Menu")),
        ({"message_edit": {"mid": "m_1", "num_edit": "2"}}, m("edit", "m_1#edit2", 0, "", "m_1")),
        (
            {"reaction": {"mid": "m_1", "action": "unreact"}},
            m("reaction", f"reaction:m_1:unreact:{T}", 0),
        ),
        ({"message": {"mid": "m_1", "text": 5}}, m("unsupported", "m_1", 0)),
        (
            {"message": {"mid": "m_1", "text": "look", "attachments": [{"type": "image"}]}},
            m("attachment", "m_1", 0, "look"),
        ),
        # A story reply only counts on Instagram.
        (
            {"message": {"mid": "m_1", "text": "wow", "reply_to": {"story": {}}}},
            m("text", "m_1", 0, "wow"),
        ),
        ({"optin": {"ref": "x"}}, "optin"),
        ({}, "unknown"),
        ({"message": {"mid": "m_1", "is_echo": True}, "timestamp": None}, "echo"),
    ],
)
def test_messenger_items(action: dict[str, object], expected: Row | str) -> None:
    """Edge cases of the mapping; a str expectation is the kind the item is ignored under."""
    parsed = parse(page_body(item(**action)))
    if isinstance(expected, str):
        assert (parsed.events, parsed.ignored) == ([], [("messenger", expected)])
    else:
        assert (rows(parsed), parsed.ignored) == ([expected], [])


def test_messenger_attachment_fields() -> None:
    attachments = [
        1,
        {"type": "fallback", "url": "https://example.com/a", "title": "A link", "payload": None},
        {
            "type": "image",
            "payload": {"url": "https://example.com/s.png", "sticker_id": 369239263222822},
        },
        {"payload": {"url": 5}},
    ]
    (event,) = parse(page_body(item(message={"mid": "m_1", "attachments": attachments}))).events
    assert event.attachments == [
        {"type": "fallback", "url": "https://example.com/a", "title": "A link"},
        {"type": "image", "url": "https://example.com/s.png", "sticker_id": 369239263222822},
        {"type": "unknown"},
    ]


def wa_body(*messages: object, metadata: object = None) -> bytes:
    """A WhatsApp body holding the given messages[] in one change."""
    value = {"metadata": metadata or {"phone_number_id": PHONE_ID}, "messages": list(messages)}
    change = {"field": "messages", "value": value}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [change]}]})


def wa_msg(kind: str, **fields: object) -> dict[str, object]:
    """A WhatsApp message of the given type from the fixtures' user at second S."""
    return {"from": WA_ID, "id": "wamid.x", "timestamp": str(S), "type": kind, **fields}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (wa_msg("poll", poll={}), wa("poll", "wamid.x", 0)),
        (wa_msg("image"), wa("attachment", "wamid.x", 0)),
        (wa_msg("location", location={"address": "Rua 1"}), wa("location", "wamid.x", 0, "Rua 1")),
        (
            wa_msg("interactive", interactive={"type": "button_reply"}),
            wa("quick_reply", "wamid.x", 0),
        ),
        (wa_msg("text", timestamp=S), wa("text", "wamid.x", 0)),
        (
            wa_msg(
                "edit",
                edit={
                    "original_message_id": "wamid.o",
                    "message": {"type": "image", "image": {"caption": "new"}},
                },
            ),
            wa("edit", "wamid.x", 0, "new", "wamid.o"),
        ),
    ],
)
def test_whatsapp_messages(message: object, expected: Row) -> None:
    parsed = parse(wa_body(message))
    assert (rows(parsed), parsed.ignored) == ([expected], [])


def test_failed_status_keeps_the_error_details_and_the_raw_item() -> None:
    doc = orjson.loads(fixture("whatsapp/statuses_failed_undeliverable"))
    (failure,) = parse(fixture("whatsapp/statuses_failed_undeliverable")).failures
    assert failure.platform == "whatsapp"
    assert failure.message == UNDELIVERABLE
    assert failure.details.startswith("Unable to deliver message.")
    assert failure.raw == doc["entry"][0]["changes"][0]["value"]["statuses"][0]


def wa_statuses(*statuses: object) -> bytes:
    """A WhatsApp body holding the given statuses[] in one change."""
    value = {"metadata": {"phone_number_id": PHONE_ID}, "statuses": list(statuses)}
    change = {"field": "messages", "value": value}
    return orjson.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [change]}]})


def test_failed_status_edge_cases() -> None:
    base = {"id": "wamid.f", "status": "failed", "timestamp": str(S)}
    # No errors array, or a broken one: still a failure, with no code.
    parsed = parse(wa_statuses(base, {**base, "errors": ["x"]}, {**base, "errors": [{}]}))
    assert [(f.code, f.title, f.recipient) for f in parsed.failures] == [(None, "", None)] * 3
    # A failure without an id or time cannot be matched: malformed.
    parsed = parse(
        wa_statuses({"status": "failed", "timestamp": str(S)}, {**base, "timestamp": "x"})
    )
    assert (parsed.failures, parsed.ignored) == ([], [("whatsapp", "malformed")] * 2)
    # A code that is not an integer is no code (orjson reads a huge one as a float).
    odd = [{"code": "131026"}], [{"code": True}], [{"code": 1.5}]
    parsed = parse(wa_statuses(*({**base, "errors": errors} for errors in odd)))
    assert [f.code for f in parsed.failures] == [None] * 3
    (huge,) = parse(
        wa_statuses(base).replace(b'"status"', b'"errors":[{"code":1' + b"0" * 30 + b'}],"status"')
    ).failures
    assert huge.code is None
    # Other statuses are only counted.
    parsed = parse(wa_statuses({**base, "status": "delivered"}, "junk"))
    assert (parsed.failures, parsed.ignored) == ([], [("whatsapp", "status")] * 2)
