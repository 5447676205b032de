"""The admin app with the send API on, built once for the tests, the examples' tests and the
send API bench."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry

from lull.common.conversation_control import ConversationControl
from lull.common.redis_conn import RedisClient
from lull.common.store.api_messages import ApiMessageStore
from lull.common.store.keys import Keys
from lull.common.store.pauses import PauseSettings, PauseStore
from lull.ingest.admin_api import AdminMetrics, AdminSettings, create_admin_app
from lull.ingest.send_api import ApiSettings, SendApi

ADMIN_TOKEN = "0123456789abcdef0123456789abcdef"
API_TOKEN = "fedcba9876543210fedcba9876543210"
PAUSE = PauseSettings(quiet_ms=60_000, cap_ms=3_600_000)


def send_api_app(
    redis: RedisClient,
    keys: Keys,
    accounts: Iterable[str],
    *,
    token: str | None = API_TOKEN,
    pause: PauseSettings = PAUSE,
) -> web.Application:
    """The admin app (ADMIN_TOKEN) with the send API (token, None: off) for these accounts."""
    api = SendApi(
        ApiSettings(token=token, accounts=frozenset(accounts)),
        keys,
        ApiMessageStore(redis, keys),
        PauseStore(redis, keys, pause),
    )
    return create_admin_app(
        AdminSettings(token=ADMIN_TOKEN),
        ConversationControl(redis, keys, pause),
        AdminMetrics(CollectorRegistry()),
        api,
    )
