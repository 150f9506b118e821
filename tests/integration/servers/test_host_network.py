"""Private dockerds leave the host's network alone: each runs in its own network namespace,
while the servers the tests start on the host (S3, Redis, PostgreSQL) stay reachable on
127.0.0.1 beside them."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import docker
import pytest
import redis
import sqlalchemy as sa

from tests.fixtures.dockerd import DockerdFactory, PrivateDockerd, busybox_image
from tests.fixtures.hostnet import describe_change, host_interfaces
from tests.fixtures.s3 import S3Server
from tests.fixtures.servers import PostgresServer, RedisServer
from tests.fixtures.util import require_binary, unavailable

pytestmark = pytest.mark.integration


def _netns(pid: int | str) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


@contextlib.contextmanager
def _a_docker0_bridge() -> Iterator[bool]:
    """A ``docker0`` on the host: the host engine's, or a bridge made here (True) and
    removed afterwards. ``--bridge=none`` makes dockerd delete the docker0 it can see."""
    ip = require_binary("ip")
    if "docker0" in host_interfaces():
        yield False
        return
    res = subprocess.run([ip, "link", "add", "docker0", "type", "bridge"],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        unavailable(f"cannot create a docker0 bridge on the host: {res.stderr.strip()}")
    try:
        yield True
    finally:
        subprocess.run([ip, "link", "delete", "docker0"], capture_output=True, check=False)


def test_starting_and_stopping_a_private_dockerd_leaves_the_host_interfaces_alone() -> None:
    with _a_docker0_bridge():
        before = host_interfaces()
        assert "docker0" in before
        factory = DockerdFactory()
        try:
            instance = factory.start("netns-probe")
            during = host_interfaces()
            assert during == before, describe_change(before, during)
            assert _netns(instance.process.pid) != _netns("self"), \
                "the private dockerd shares the host's network namespace"
            _run_a_container(instance)
        finally:
            factory.stop_all()
        after = host_interfaces()
        assert after == before, describe_change(before, after)
        assert "docker0" in after


def _run_a_container(instance: PrivateDockerd) -> None:
    """An image made by ``docker import`` runs (without a network) in the moved daemon."""
    client = instance.client()
    out = client.containers.run(busybox_image(instance), ["echo", "inside"],
                                network_mode="none", remove=True)
    assert out.strip() == b"inside"
    with pytest.raises(docker.errors.APIError):  # nothing can be pulled: no network there
        client.images.pull("busybox", tag="latest")


def test_servers_on_the_host_loopback_stay_reachable_beside_a_private_dockerd(
    docker_host_a: PrivateDockerd, redis_server: RedisServer,
    postgres_server: PostgresServer, s3_server: S3Server,
) -> None:
    assert _netns(docker_host_a.process.pid) != _netns("self")
    assert docker_host_a.client().ping()
    assert redis.Redis.from_url(redis_server.url, socket_connect_timeout=5).ping()
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
    finally:
        engine.dispose()
    assert "Buckets" in s3_server.client().list_buckets()
