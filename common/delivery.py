"""What happens to a reply after the Send API accepted it.

WhatsApp may accept a message and report minutes later, in a webhook `statuses` item with
`status: "failed"`, that it could not be delivered (Meta's "Status messages webhook
reference"). To tie that report to a conversation, the sender remembers each WhatsApp
message id it sent (common/store/sent.py) and the processor looks
the failed id up (common/store/failures.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from lull.common.outside_text import MAX_DETAIL_CHARS, cut

MAX_ID_CHARS: Final = 256
"""A wamid is about 60 characters; a longer id is no id Meta gave lull (it matches none)."""
MAX_TITLE_CHARS: Final = 200


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
    """The platform's own statuses[] item, untouched (stored nowhere)."""

    def __post_init__(self) -> None:
        # Every text above comes from the webhook body and is stored (the recent failures of
        # `lull stats`, the history the bot receives) and logged: bounded here, for them all.
        # An id is cut short without a mark (it is a key); a text says how much was left out.
        for name in ("account_id", "message_id"):
            value = getattr(self, name)
            if len(value) > MAX_ID_CHARS:
                object.__setattr__(self, name, value[:MAX_ID_CHARS])
        if self.recipient is not None and len(self.recipient) > MAX_ID_CHARS:
            object.__setattr__(self, "recipient", self.recipient[:MAX_ID_CHARS])
        object.__setattr__(self, "title", cut(self.title, MAX_TITLE_CHARS))
        object.__setattr__(self, "message", cut(self.message, MAX_DETAIL_CHARS))
        object.__setattr__(self, "details", cut(self.details, MAX_DETAIL_CHARS))
