"""The rate limits one Graph send counts against, in the order they are taken."""

from __future__ import annotations

from lull.common.batch import Batch
from lull.common.store.rate_limits import Limiters
from lull.sender.graph.client import GraphRequest
from lull.sender.rates.rate import Rate
from lull.sender.settings import SenderSettings


def send_limits(
    settings: SenderSettings,
    limiters: Limiters,
    batch: Batch,
    request: GraphRequest,
    account_rate: Rate | None,
) -> list[tuple[str, str, Rate]]:
    """(scope, key, rate) of each limit a send takes a unit of: WhatsApp's per-user pair
    limit first (Meta's 131056 counts messages to one user, so LULL_SEND_RATE_PER_USER counts
    sends, where LULL_RATE_PER_USER counts batches), then the account's own (account_rate:
    LULL_RATE_GLOBAL, or the accounts file's rate_global)."""
    limits: list[tuple[str, str, Rate]] = []
    per_user = settings.send_rate_per_user
    if per_user is not None and batch.platform == "whatsapp":
        limits.append(("user_send", limiters.user_sends(batch.conversation), per_user))
    if account_rate is not None:
        limits.append(("account", limiters.account(request.account_id), account_rate))
    return limits
