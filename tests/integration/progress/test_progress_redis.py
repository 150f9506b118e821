"""The Redis progress bus against a real redis-server: last value and pub/sub."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from common.progress import RedisProgressBus

pytestmark = pytest.mark.integration


def test_the_last_snapshot_is_kept_and_every_snapshot_is_published(redis_server: Any) -> None:
    bus = RedisProgressBus(redis_server.url)
    sub = redis.Redis.from_url(redis_server.url).pubsub()
    sub.subscribe(RedisProgressBus.key("job1"))
    assert sub.get_message(timeout=2)["type"] == "subscribe"  # type: ignore[index]
    bus.publish("job1", {"phase": "backing up", "bytes_done": 1})
    bus.publish("job1", {"phase": "backing up", "bytes_done": 2})
    got = [json.loads(sub.get_message(timeout=2)["data"]) for _ in range(2)]  # type: ignore[index]
    assert [g["bytes_done"] for g in got] == [1, 2]
    assert bus.latest("job1") == {"phase": "backing up", "bytes_done": 2}
    assert bus.latest("other") is None
    assert redis.Redis.from_url(redis_server.url).ttl(RedisProgressBus.key("job1")) > 0


def test_a_subscription_is_woken_by_each_snapshot_and_times_out_when_quiet(
    redis_server: Any,
) -> None:
    bus = RedisProgressBus(redis_server.url)
    sub = bus.subscribe("job2")
    try:
        while sub.next(0.05) is not None:  # drain the subscribe confirmation
            pass
        bus.publish("job2", {"bytes_done": 7})
        bus.publish("other", {"bytes_done": 8})
        assert sub.next(2) == {"bytes_done": 7}
        assert sub.next(0.2) is None
    finally:
        sub.close()


def test_a_job_s_end_is_announced_on_the_job_ends_channel(redis_server: Any) -> None:
    bus = RedisProgressBus(redis_server.url)
    ends = bus.subscribe_ended()
    try:
        while ends.next(0.05) is not None:  # drain the subscribe confirmation
            pass
        bus.publish("job3", {"bytes_done": 7})  # progress: not an end
        bus.publish("job3", {"phase": "done", "state": "succeeded"})
        assert ends.next(2) == {"job_id": "job3", "state": "succeeded"}
        assert ends.next(0.2) is None
    finally:
        ends.close()
