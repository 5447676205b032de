"""How a WhatsApp user is addressed: by phone number (`to`) or by business-scoped user id
(`recipient`).

Meta's "Business-scoped user IDs" page (developers.facebook.com/documentation/
business-messaging/whatsapp/business-scoped-user-ids, version of 6 Feb 2026): a user who
adopts a username may reach a business without a phone number; webhooks then name them by
their BSUID only (`from_user_id`). A Send API request takes the phone number in `to` and a
BSUID (or parent BSUID) in the new `recipient` field; with both, `to` wins. A BSUID is the
user's two-letter ISO 3166 country code, a period, and up to 128 alphanumeric characters
(`US.13491208655302741918`); a parent BSUID has `ENT.` after the country code.

An earlier version of the page (late 2025) had `to` accept BSUIDs too; the newer one adds
`recipient` and shows `to` as the phone number only. lull follows the newer one.
"""

from __future__ import annotations

import re
from typing import Final

# wa_id and `from` are phone numbers in international format without the "+" (Meta's
# examples: "16505551234"); the Send API's own `input` example also shows a leading "+".
PHONE: Final = re.compile(r"\+?[0-9]{5,20}")
BSUID: Final = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


def is_phone_number(user_id: str) -> bool:
    """A WhatsApp phone number (wa_id), as webhooks give it."""
    return PHONE.fullmatch(user_id) is not None


def is_bsuid(user_id: str) -> bool:
    """A business-scoped user id or parent BSUID, in the format Meta documents."""
    return BSUID.fullmatch(user_id) is not None


def recipient_fields(user_id: str) -> dict[str, str]:
    """The Send API field that addresses user_id: `to` for a phone number, else `recipient`.

    Decided by the phone number's shape, not the BSUID's: a phone number is digits in every
    version of Meta's pages, while the BSUID format changed between drafts."""
    return {"to": user_id} if is_phone_number(user_id) else {"recipient": user_id}
