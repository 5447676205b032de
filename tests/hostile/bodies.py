"""Webhook bodies for hostile-input tests: valid ones per platform, and every kind of garbage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import strategies as st

from tests.common.test_platforms_fuzz import FIXTURE_DOCS, JSON, WRONG, mutated, paths

PAGE = "106000000000001"
IG_ACCOUNT = "17841400000000001"
PHONE_ID = "106540352242922"
PLATFORM_OBJECTS = {
    "messenger": "page",
    "instagram": "instagram",
    "whatsapp": "whatsapp_business_account",
}
ACCOUNTS = {"messenger": PAGE, "instagram": IG_ACCOUNT, "whatsapp": PHONE_ID}


@dataclass(frozen=True)
class Body:
    """A drawn body, printed short: hypothesis refuses to print examples of 100 kB and more."""

    data: bytes

    def __repr__(self) -> str:
        more = "…" if len(self.data) > SHOWN_BYTES else ""
        return f"Body({len(self.data)} bytes: {self.data[:SHOWN_BYTES]!r}{more})"

    def _repr_pretty_(self, printer: Any, _cycle: bool) -> None:
        printer.text(repr(self))


SHOWN_BYTES = 300


def text_item(platform: str, user: str, mid: str, text: Any, t_ms: int) -> dict[str, Any]:
    """One user text as the platform puts it in a body (WhatsApp: whole seconds, a string)."""
    if platform == "whatsapp":
        return {"from": user, "id": mid, "timestamp": str(t_ms // 1000), "type": "text",
                "text": {"body": text}}  # fmt: skip
    return {"sender": {"id": user}, "recipient": {"id": ACCOUNTS[platform]}, "timestamp": t_ms,
            "message": {"mid": mid, "text": text}}  # fmt: skip


def body_of(platform: str, *items: Any) -> dict[str, Any]:
    """A complete webhook document holding items (messaging[] or WhatsApp messages[])."""
    if platform == "whatsapp":
        value = {"messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_ID},
                 "messages": list(items)}  # fmt: skip
        change = {"field": "messages", "value": value}
        return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    return {"object": PLATFORM_OBJECTS[platform],
            "entry": [{"id": ACCOUNTS[platform], "time": 1, "messaging": list(items)}]}  # fmt: skip


def text_body(platform: str, user: str, mid: str, text: str, t_ms: int) -> bytes:
    """One user text, serialised the way Meta does (ASCII, non-ASCII escaped)."""
    return json.dumps(body_of(platform, text_item(platform, user, mid, text, t_ms))).encode()


def nested(depth: int, opener: bytes = b"[") -> bytes:
    """A JSON text nested depth levels deep (closed, so only the depth is wrong)."""
    closer = b"]" if opener == b"[" else b"}"
    inner = b"[" if opener == b"[" else b'{"a":'
    return inner * depth + b"0" + closer * depth


# Text as it appears inside a JSON string in the raw body: escapes are literal backslashes.
UNICODE_EDGES = (
    "\\ud800", "\\udfff", "\\ud83d", "\\ude00\\ud83d",  # lone or swapped surrogates, escaped
    "\\ud83d\\ude00",  # a correct pair (😀), as Meta escapes emoji
    "\\u0000", "a\\u0000b", "\\u001f\\u001e\\u001d",  # NUL and lull's own record separators
    "\u202e\u0645\u0631\u062d\u0628\u0627", "\u200f\u061c",  # RTL override, marks
    "👩\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈", "\u200d",  # emoji ZWJ sequences
    "\ufeff", "\uffff", "\ufffe", "\U0010ffff", "\U000e0001",  # BOM, noncharacters, tags
    "Z" + "\u0301" * 2000, "\u0085\u2028\u2029", "\x7f",  # combining marks, line breaks
    "\\\\", '\\"', "\\/", "\\n\\r\\t\\b\\f",
)  # fmt: skip
# Bytes no UTF-8 decoder may accept.
BAD_UTF8 = (
    b"\xff", b"\xfe\xff", b"\xc3", b"\xc3(", b"\xed\xa0\x80", b"\xed\xbf\xbf",  # CESU surrogates
    b"\xc0\x80", b"\xe0\x80\xaf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x80",
)  # fmt: skip


@st.composite
def unicode_body(draw: st.DrawFn) -> bytes:
    """A valid-looking text message whose text holds Unicode edge cases."""
    platform = draw(st.sampled_from(sorted(PLATFORM_OBJECTS)))
    parts = draw(st.lists(st.sampled_from(UNICODE_EDGES) | st.text(max_size=5), max_size=4))
    body = text_body(platform, "u1", "m1", "@@TEXT@@", 1763800000000)
    return body.replace(b"@@TEXT@@", "".join(parts).encode("utf-8", "surrogatepass"))


@st.composite
def spliced_bytes(draw: st.DrawFn) -> bytes:
    """A fixture body with bytes that are not UTF-8 (or not JSON) put somewhere in it."""
    body = orjson.dumps(draw(st.sampled_from(FIXTURE_DOCS)))
    at = draw(st.integers(min_value=0, max_value=len(body)))
    junk = draw(st.sampled_from(BAD_UTF8) | st.binary(min_size=1, max_size=4))
    return body[:at] + junk + body[at:]


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    """A fixture with a few fields removed or given a value of the wrong type."""
    doc = draw(st.sampled_from(FIXTURE_DOCS))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        doc = mutated(doc, draw(st.sampled_from(paths(doc))), draw(WRONG))
    # The stdlib encoder: orjson.dumps refuses the deeper nestings WRONG holds.
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()


def huge_array(count: int, item: bytes = b"0") -> bytes:
    """An envelope whose entry is an array of count items."""
    return b'{"object":"page","entry":[' + b",".join([item] * count) + b"]}"


DEEP = st.builds(
    nested, st.integers(min_value=900, max_value=100_000), st.sampled_from([b"[", b"{"])
)
ENVELOPE_GARBAGE = st.builds(
    lambda obj, entry: orjson.dumps({"object": obj, "entry": entry}),
    st.sampled_from([*PLATFORM_OBJECTS.values(), "user", ""]) | JSON,
    JSON,
)
HOSTILE_BODIES = st.one_of(
    JSON.map(orjson.dumps),
    ENVELOPE_GARBAGE,
    ENVELOPE_GARBAGE.map(lambda body: b'{"entry":[],' + body[1:]),  # a duplicate key
    mutated_fixture(),
    unicode_body(),
    spliced_bytes(),
    st.binary(max_size=300),
    DEEP,
    st.builds(huge_array, st.integers(min_value=0, max_value=200_000), st.sampled_from(
        [b"0", b"null", b"[]", b"{}", b'"x"', b'{"messaging":[{}]}']
    )),
).map(Body)  # fmt: skip
