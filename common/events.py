"""The normalised event: what the platform parsers produce and the window scripts consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lull.common.conversation import Conversation
from lull.common.delivery import DeliveryFailure

# Kinds that change an earlier message instead of adding one.
EDIT = "edit"
UNSEND = "unsend"
# Taps, one vocabulary on every platform (docs/windows.md, "Message kinds").
QUICK_REPLY = "quick_reply"
POSTBACK = "postback"
FLOW_REPLY = "flow_reply"


@dataclass(frozen=True, slots=True)
class Event:
    """One user action that belongs in a conversation's window.

    kind is one of: text, attachment, quick_reply, postback, flow_reply, reaction, referral,
    location, contacts, interactive, order, story_reply, story_mention, unsupported, system,
    edit, unsend (a platform may add others; unknown kinds are still windowed as messages).
    """

    platform: str
    account_id: str
    """Page id (Messenger), Instagram account id, or WhatsApp phone_number_id."""
    user_id: str
    """PSID, IGSID, or for WhatsApp the phone number (wa_id), or the business-scoped user id
    (BSUID, e.g. US.13491208655302741918) of a user whose phone number Meta withholds."""
    mid: str
    """Unique per action: the dedupe key (an edit or unsend gets a derived id of its own)."""
    event_time_ms: int
    kind: str
    text: str = ""
    attachments: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    """The platform's own item (messaging[] entry or WhatsApp message), untouched."""
    target_mid: str | None = None
    """For edit and unsend: the mid of the message they change."""

    @property
    def conversation(self) -> str:
        """platform:account_id:user_id, the window key."""
        return Conversation(self.platform, self.account_id, self.user_id).key


# Turn kinds: what a party other than the user did in a conversation (see Turn).
ECHO = "echo"
"""A Messenger or Instagram message echo: the Page sent it, through some app."""
SMB_ECHO = "smb_echo"
"""A WhatsApp coexistence number's message sent from the WhatsApp Business app."""
THREAD_PASSED = "pass_thread_control"
THREAD_TAKEN = "take_thread_control"
STANDBY = "standby"
"""An item in entry[].standby[]: another app owns the thread."""


@dataclass(frozen=True, slots=True)
class Turn:
    """Something the business side did in a conversation: a message that lull may or may not
    have sent (echo, smb_echo), a change of thread owner (pass/take thread control), or a
    sign that another app owns the thread (standby). The processor decides what it means
    (processor/human_turns.py): a human turn, a hold, a release, or lull's own reply."""

    platform: str
    account_id: str
    user_id: str
    kind: str
    time_ms: int
    mid: str = ""
    """The message's id (echo, smb_echo); "" for handover and standby signals."""
    text: str = ""
    app_id: str = ""
    """echo: the app that sent it (Meta's `app_id`); handover: the thread's new owner."""
    previous_app_id: str = ""
    """handover: the app the thread was passed or taken from."""

    @property
    def conversation(self) -> str:
        """platform:account_id:user_id, as Event.conversation."""
        return Conversation(self.platform, self.account_id, self.user_id).key


@dataclass(slots=True)
class Parsed:
    """Everything one webhook body held."""

    events: list[Event] = field(default_factory=list)
    """User messages, in body order."""
    ignored: list[tuple[str, str]] = field(default_factory=list)
    """(platform, kind) of items that are not user input: echo, read, delivery, status, error,
    standby, change, unknown object or kind. Counted in a metric, never windowed."""
    failures: list[DeliveryFailure] = field(default_factory=list)
    """Reports that a message of ours could not be delivered (WhatsApp `failed` statuses).
    Never windowed: matched to the conversation that sent the message."""
    turns: list[Turn] = field(default_factory=list)
    """What the business side did (echoes, handovers, standby), in body order. Never
    windowed: they pause, hold or release the conversation (processor/human_turns.py)."""


class MalformedBody(ValueError):
    """The body is not JSON at all, or not an object: a dead letter, not a crash."""
