"""parse never crashes: it returns well-typed Events or raises MalformedBody, whatever arrives."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lull.common.conversation import PLATFORMS
from lull.common.events import Event, MalformedBody, Parsed
from lull.common.platforms import parse
from tests.common.test_platforms import PAGE, item, page_body, wa_body, wa_msg
from tests.conftest import FIXTURES

FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

FIXTURE_DOCS: list[Any] = [orjson.loads(p.read_bytes()) for p in sorted(FIXTURES.glob("*/*.json"))]

# Field names and values Meta uses, so random documents reach deep into the parsers.
KEYS = (  # noqa: SIM905  (a word list reads best as words)
    "object entry id time messaging standby changes field value sender recipient timestamp "
    "message mid text attachments type payload url title sticker_id quick_reply reply_to story "
    "is_echo is_deleted is_unsupported postback reaction action message_edit num_edit referral "
    "read delivery optin metadata phone_number_id messages statuses errors from image caption "
    "filename location name address interactive button_reply body button edit revoke "
    "original_message_id"
).split()
WORDS = (  # noqa: SIM905  (as above)
    "page instagram whatsapp_business_account messages text image edit revoke interactive "
    "button_reply story_mention 1763800000"
).split()

INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
SCALARS = (
    st.none()
    | st.booleans()
    | INTS
    | st.integers(min_value=0, max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(WORDS)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6)
    ),
    max_leaves=40,
)


def nested(depth: int) -> Any:
    """A list nested depth levels deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


MISSING = object()
WRONG = (
    st.just(MISSING)
    | SCALARS
    | st.just("x" * 100_000)
    | st.just(nested(300))
    | st.sampled_from([[], {}, [None], {"id": None}])
    | JSON
)


def check(body: bytes) -> Parsed | None:
    """Parse body and assert the result is well typed; None if it was MalformedBody."""
    try:
        parsed = parse(body)
    except MalformedBody:
        return None
    assert isinstance(parsed, Parsed)
    for event in parsed.events:
        assert isinstance(event, Event)
        assert event.platform in PLATFORMS
        for value in (event.account_id, event.user_id, event.mid, event.kind):
            assert isinstance(value, str)
            assert value
        assert type(event.event_time_ms) is int
        assert 0 <= event.event_time_ms < 2**53
        assert isinstance(event.text, str)
        assert all(isinstance(a, dict) and isinstance(a["type"], str) for a in event.attachments)
        assert isinstance(event.raw, dict)
        assert event.target_mid is None or (isinstance(event.target_mid, str) and event.target_mid)
        orjson.dumps(event.attachments)
    for platform, kind in parsed.ignored:
        assert platform in (*PLATFORMS, "unknown")
        assert isinstance(kind, str)
        assert len(kind) <= len("object:") + 64
    return parsed


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths into a parsed JSON value, the root included, as deep as any fixture goes."""
    found = [prefix]
    # Deeper than the fixtures is only ever a nesting WRONG put there: walking it adds nothing.
    if len(prefix) >= 10:
        return found
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutated(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """value with path set to new (removed, for MISSING), copying only the containers on path."""
    if not path:
        return None if new is MISSING else new
    key, rest = path[0], path[1:]
    copied = dict(value) if isinstance(value, dict) else list(value)
    if not rest and new is MISSING:
        del copied[key]
    else:
        copied[key] = mutated(value[key], rest, new)
    return copied


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"\xff\xfe{}", b"[1, 2]", b'"page"', b"null", b"[" * 2000]
)
def test_not_a_json_object_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedBody):
        parse(body)


@pytest.mark.parametrize(
    ("doc", "ignored"),
    [
        ({"object": "user", "entry": []}, [("unknown", "object:user")]),
        ({"object": "x" * 1000}, [("unknown", "object:" + "x" * 64)]),
        ({"entry": []}, [("unknown", "malformed")]),
        ({"object": 7}, [("unknown", "malformed")]),
        ({"object": "page"}, [("messenger", "malformed")]),
        (
            {"object": "page", "entry": [1, {"id": PAGE}]},
            [("messenger", "malformed"), ("messenger", "unknown")],
        ),
        ({"object": "page", "entry": [{"messaging": {}}]}, [("messenger", "malformed")]),
        ({"object": "page", "entry": [{"standby": [{}, {}, {}]}]}, [("messenger", "standby")] * 3),
        (
            {"object": "instagram", "entry": [{"changes": [{"field": "comments"}, {"field": 1}]}]},
            [("instagram", "change:comments"), ("instagram", "malformed")],
        ),
        (
            {"object": "whatsapp_business_account", "entry": [{"id": "1"}]},
            [("whatsapp", "malformed")],
        ),
        (
            {
                "object": "whatsapp_business_account",
                "entry": [{"changes": [{"field": "account_update"}]}],
            },
            [("whatsapp", "change:account_update")],
        ),
    ],
)
def test_bodies_without_events(doc: dict[str, Any], ignored: list[tuple[str, str]]) -> None:
    parsed = check(orjson.dumps(doc))
    assert parsed is not None
    assert (parsed.events, parsed.ignored) == ([], ignored)


@pytest.mark.parametrize(
    "action",
    [
        {"message": {"text": "no mid"}},
        {"message": "hi"},
        {"message": None},
        {"message": {"mid": "m_1"}, "sender": {"id": 7}},
        {"message": {"mid": "m_1"}, "sender": "7"},
        {"message": {"mid": "m_1"}, "recipient": {}},
        {"message": {"mid": "m_1"}, "timestamp": True},
        {"message": {"mid": "m_1"}, "timestamp": 1.5},
        {"message": {"mid": "m_1"}, "timestamp": "1763800000000"},
        {"message": {"mid": "m_1"}, "timestamp": 2**60},
        {"message_edit": {"mid": "m_1"}},
        {"reaction": {"action": "react"}},
        {"postback": []},
    ],
)
def test_malformed_messaging_items(action: dict[str, Any]) -> None:
    parsed = check(page_body(item(**action)))
    assert parsed is not None
    assert (parsed.events, parsed.ignored) == ([], [("messenger", "malformed")])


@pytest.mark.parametrize(
    "message",
    [
        wa_msg("edit", edit={"message": {}}),
        wa_msg("revoke"),
        wa_msg("text", timestamp="17638e5"),
        wa_msg("text", timestamp="1" * 5000),
        wa_msg("text", timestamp="-1"),
        wa_msg("text", timestamp=True),
        wa_msg(""),
        wa_msg("text", id=None),
        wa_msg("text", **{"from": ""}),
        "text",
    ],
)
def test_malformed_whatsapp_messages(message: Any) -> None:
    parsed = check(wa_body(message))
    assert parsed is not None
    assert (parsed.events, parsed.ignored) == ([], [("whatsapp", "malformed")])


def test_whatsapp_without_phone_number_id() -> None:
    parsed = check(wa_body(wa_msg("text"), wa_msg("text"), metadata={"phone_number_id": 1}))
    assert parsed is not None
    assert (parsed.events, parsed.ignored) == ([], [("whatsapp", "malformed")] * 2)


def test_deep_nesting() -> None:
    # orjson.loads stops at 1024 levels; anything shallower is carried in raw untouched.
    body = page_body(item(message={"mid": "m_1", "text": "hi", "extra": "@"}))
    parsed = check(body.replace(b'"@"', b"[" * 1000 + b"]" * 1000))
    assert parsed is not None
    assert [e.kind for e in parsed.events] == ["text"]
    with pytest.raises(MalformedBody):
        parse(body.replace(b'"@"', b"[" * 1100 + b"]" * 1100))


def test_huge_arrays() -> None:
    garbage: list[Any] = [None, 1, "x", [], {}] * 20_000
    parsed = check(page_body(*garbage))
    assert parsed is not None
    assert parsed.events == []
    assert len(parsed.ignored) == len(garbage)
    texts = [wa_msg("text", text={"body": str(i)}) for i in range(20_000)]
    parsed = check(wa_body(*texts))
    assert parsed is not None
    assert [e.text for e in parsed.events] == [str(i) for i in range(20_000)]


@FUZZ
@given(JSON)
def test_any_json_value(value: Any) -> None:
    check(orjson.dumps(value))


@FUZZ
@given(st.sampled_from(["page", "instagram", "whatsapp_business_account"]), JSON)
def test_meta_shaped_documents(obj: str, entry: Any) -> None:
    check(orjson.dumps({"object": obj, "entry": entry}))
    check(orjson.dumps({"object": obj, "entry": [entry]}))


@FUZZ
@given(st.sampled_from(FIXTURE_DOCS), st.data())
def test_mutated_fixtures(doc: Any, data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(paths(doc)))
        doc = mutated(doc, path, data.draw(WRONG))
    # The stdlib encoder, as orjson.dumps refuses the deeper nestings WRONG holds.
    check(json.dumps(doc).encode())


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes(body: bytes) -> None:
    check(body)


@FUZZ
@given(st.sampled_from(FIXTURE_DOCS), st.data())
def test_corrupted_fixture_bytes(doc: Any, data: st.DataObject) -> None:
    body = orjson.dumps(doc)
    at = data.draw(st.integers(min_value=0, max_value=len(body)))
    junk = data.draw(
        st.binary(min_size=1, max_size=4) | st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])
    )
    check(body[:at] + junk + body[at:])
