"""What happens to a reply after the Send API accepted it.

WhatsApp may accept a message and report minutes later, in a webhook `statuses` item with
`status: "failed"`, that it could not be delivered (Meta's "Status messages webhook
reference"). To tie that report to a conversation, the sender remembers each WhatsApp
message id it sent (SentMessage, written by sender/sent_ids.py) and the processor looks
the failed id up (processor/failures.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """A `statuses` item with status "failed": a message of ours that did not arrive."""

    platform: str
    account_id: str
    """The business phone number id the message was sent from."""
    message_id: str
    """The wamid the Send API answered for the message."""
    time_ms: int
    """When Meta reported the failure (the status timestamp, seconds resolution)."""
    recipient: str | None
    """`recipient_id` (phone number) or `recipient_user_id` (BSUID), when Meta gives one."""
    code: int | None
    """errors[0].code; None when Meta gave no error."""
    title: str = ""
    message: str = ""
    details: str = ""
    """errors[0].error_data.details."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The platform's own statuses[] item, untouched."""


@dataclass(frozen=True, slots=True)
class SentMessage:
    """The batch that sent a message (its conversation and seq), stored under the message's
    id for a while. Kept this small on purpose: one is stored per WhatsApp message sent."""

    conversation: str
    seq: int

    def encode(self) -> bytes:
        """The stored value."""
        return orjson.dumps({"c": self.conversation, "s": self.seq})

    @classmethod
    def decode(cls, raw: bytes) -> SentMessage | None:
        """The stored value read back; None when it is not one (never raises)."""
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        conversation, seq = value.get("c"), value.get("s")
        if not isinstance(conversation, str) or type(seq) is not int:
            return None
        return cls(conversation, seq)
