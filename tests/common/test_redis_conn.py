"""The Redis client that connect() builds, on the event loop the services run (uvloop)."""

from __future__ import annotations

import asyncio
import inspect

import pytest
import uvloop
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from lull.common.redis_conn import connect


async def checkout(client: Redis) -> Connection:
    """A connection of the client's pool, as a command takes one. redis-py 5.0 wants a
    command name, 8 warns when given one."""
    get = client.connection_pool.get_connection
    parameter = inspect.signature(get).parameters.get("command_name")
    named = parameter is not None and parameter.default is inspect.Parameter.empty
    # redis-py leaves get_connection unannotated.
    connection = await (get("PING") if named else get())  # type: ignore[no-untyped-call]
    assert isinstance(connection, Connection)
    return connection


def test_a_write_to_a_transport_the_peer_closed_is_a_connection_error(redis_url: str) -> None:
    async def scenario() -> None:
        client = connect(redis_url, timeout_s=2)
        try:
            connection = await checkout(client)
            assert connection._writer is not None
            # As when Redis resets the socket just after connect: uvloop closes the
            # transport, and a write to it raised RuntimeError, which no caller retries.
            connection._writer.transport.abort()
            await asyncio.sleep(0)  # let the loop close the handle
            # A connection error, whatever redis-py's wording: what callers retry.
            with pytest.raises(RedisConnectionError):
                await connection.send_command("PING")
            await client.connection_pool.release(connection)
            assert await client.ping()  # the next command connects anew
        finally:
            await client.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
