"""The consumer-group loop that processor and sender share; import it from here only.

- handler.py: the handler contract (Entry in; None, RetryLater, Permanent or Running out)
- config.py: ConsumerConfig, every field documented
- loop.py: Consumer, one step at a time (claim, retries, read, handle, settle)
- read.py: XREADGROUP, one per hash slot on a cluster
- retries.py: local retry timers for held entries
- settle.py: what an outcome does to its entry (ack, hold, dead-letter, follow)
- claim.py: XAUTOCLAIM of abandoned entries; upkeep.py: trim, consumer expiry, gauges
- metrics.py: the loop's Prometheus series
"""

from lull.common.consumer.config import ConsumerConfig, default_consumer_name
from lull.common.consumer.handler import (
    Decided,
    Entry,
    EntryHandler,
    HandlerContractError,
    Outcome,
    Permanent,
    RetryLater,
    Running,
    blames_the_entry,
)
from lull.common.consumer.loop import Consumer
from lull.common.consumer.metrics import ConsumerMetrics
from lull.common.consumer.settle import dead_letter_fields

__all__ = [
    "Consumer",
    "ConsumerConfig",
    "ConsumerMetrics",
    "Decided",
    "Entry",
    "EntryHandler",
    "HandlerContractError",
    "Outcome",
    "Permanent",
    "RetryLater",
    "Running",
    "blames_the_entry",
    "dead_letter_fields",
    "default_consumer_name",
]
