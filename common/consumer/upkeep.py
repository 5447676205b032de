"""The claim pass's upkeep of each stream: trim what every group acknowledged, expire idle
consumers that hold nothing, and update the lag, pending and consumer gauges."""

from __future__ import annotations

from structlog.typing import FilteringBoundLogger

from lull.common.consumer.config import ConsumerConfig
from lull.common.consumer.metrics import ConsumerMetrics
from lull.common.redis_conn import RedisClient
from lull.common.store.streams import group_info, remove_idle_consumers, trim_acknowledged


async def upkeep(
    client: RedisClient,
    config: ConsumerConfig,
    metrics: ConsumerMetrics,
    log: FilteringBoundLogger,
    stream: str,
) -> None:
    """Trim what every group acknowledged, expire idle empty consumers, update the gauges."""
    if config.trim:
        trimmed = await trim_acknowledged(client, stream)
        if trimmed:
            log.debug("trimmed acknowledged entries", stream=stream, entries=trimmed)
    removed = await remove_idle_consumers(
        client, stream, config.group, idle_ms=config.consumer_expire_ms, keep=config.consumer
    )
    for name in removed:
        log.info("removed idle consumer", stream=stream, removed=name)
    info = await group_info(client, stream, config.group)
    if info is not None:
        lag = float("nan") if info.lag is None else float(info.lag)
        metrics.lag.labels(stream, config.group).set(lag)
        metrics.pending.labels(stream, config.group).set(info.pending)
        metrics.consumers.labels(stream, config.group).set(info.consumers)
