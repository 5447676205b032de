"""Rate limiters shared by every sender replica: one GCRA state per limiter, on the Redis
clock (lua/rate_limit.lua), the log of each limiter's last uses (lua/rate_use.lua), and
the names of the limiters a delivery counts against. What the rates are, and what a caller
does when refused, is the sender's (sender/rates/rate.py)."""

from __future__ import annotations

from lull.common.redis_conn import RedisClient
from lull.common.store.keys import Keys
from lull.common.store.scripts import CLOCK_PRELUDE, LuaScript


class Limiters:
    """The limiter (its key) of each scope a send or a batch counts against."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def user(self, conversation: str) -> str:
        """Batches to one user (LULL_RATE_PER_USER)."""
        return self._keys.user_rate(conversation)

    def user_sends(self, conversation: str) -> str:
        """Messages to one user (LULL_SEND_RATE_PER_USER)."""
        return self._keys.user_send_rate(conversation)

    def account(self, account_id: str) -> str:
        """Calls of one sending account (LULL_RATE_GLOBAL)."""
        return self._keys.account_rate(account_id)


class RateLimitStore:
    """Takes units of a limiter in one atomic step."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._script = LuaScript.read("rate_limit")
        self._use = LuaScript.read("rate_use", preludes=CLOCK_PRELUDE)

    async def load_scripts(self) -> None:
        """Register the scripts with Redis (SCRIPT LOAD is idempotent)."""
        await self._script.load(self._client)
        await self._use.load(self._client)

    async def take(
        self,
        limiter: str,
        *,
        interval_us: int,
        burst: int,
        cost: int,
        now_ms: int | str,
        horizon_us: int,
    ) -> tuple[bool, int]:
        """(taken, wait_ms): cost units now or at a reserved slot within horizon_us, or how
        long until they could be taken (now_ms "" is the Redis clock)."""
        args = (interval_us, burst, cost, now_ms, horizon_us)
        taken, wait_ms = await self._script.call(self._client, (limiter,), args)
        return int(taken) == 1, int(wait_ms)

    async def use(self, limiter: str, *, most: int, span_ms: int, now_ms: int | str) -> int:
        """Record a use of limiter's units now, 0; or, when its last `most` uses all fall
        within span_ms, the ms until one would fit (nothing recorded). now_ms "" is the
        Redis clock."""
        keys = (Keys.rate_uses(limiter),)
        wait_ms = await self._use.call(self._client, keys, (most, span_ms, now_ms))
        return int(wait_ms)
