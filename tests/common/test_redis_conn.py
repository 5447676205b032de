"""The Redis client that connect() builds, on the event loop the services run (uvloop)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop
from redis.exceptions import ConnectionError as RedisConnectionError

from lull.common.redis_conn import connect


def test_a_write_to_a_transport_the_peer_closed_is_a_connection_error(redis_url: str) -> None:
    async def scenario() -> None:
        client = connect(redis_url, timeout_s=2)
        try:
            # redis-py leaves get_connection unannotated.
            connection = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
            assert connection._writer is not None
            # As when Redis resets the socket just after connect: uvloop closes the
            # transport, and a write to it raised RuntimeError, which no caller retries.
            connection._writer.transport.abort()
            await asyncio.sleep(0)  # let the loop close the handle
            with pytest.raises(RedisConnectionError, match="handler is closed"):
                await connection.send_command("PING")
            await client.connection_pool.release(connection)
            assert await client.ping()  # the next command connects anew
        finally:
            await client.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
