"""The private Redis and PostgreSQL servers start, answer and survive a restart."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

from tests.fixtures.servers import PostgresServer, RedisServer

pytestmark = pytest.mark.integration


def test_redis_answers_set_and_get(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("volkeeper:smoke", b"\x00payload\xff")
        assert client.get("volkeeper:smoke") == b"\x00payload\xff"
    finally:
        client.close()


def test_redis_comes_back_on_the_same_url_after_a_restart(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.set("volkeeper:before-restart", "1")
        redis_server.restart()
        assert client.ping()
        # No persistence: a restarted broker has forgotten everything.
        assert client.get("volkeeper:before-restart") is None
        client.set("volkeeper:after-restart", "2")
        assert client.get("volkeeper:after-restart") == b"2"
    finally:
        client.close()


def test_redis_refuses_connections_while_killed_and_serves_again_after_start(
    redis_server: RedisServer,
) -> None:
    redis_server.kill()
    try:
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(redis_server.url, socket_connect_timeout=1).ping()
    finally:
        redis_server.start()
    assert redis.Redis.from_url(redis_server.url).ping()


def test_a_test_may_leave_redis_killed(redis_server: RedisServer) -> None:
    redis_server.kill()
    assert not redis_server.running


def test_redis_left_killed_by_the_previous_test_is_up_again(redis_server: RedisServer) -> None:
    # Relies on running after the test above: the autouse fixture restarts the server.
    assert redis.Redis.from_url(redis_server.url).ping()


def test_postgres_answers_select_1_through_sqlalchemy(postgres_server: PostgresServer) -> None:
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            assert conn.execute(sa.text("select current_database()")).scalar_one() == "volkeeper"
            version = conn.execute(sa.text("show server_version_num")).scalar_one()
            assert int(version) // 10000 == 15
    finally:
        engine.dispose()


def test_postgres_creates_a_fresh_empty_database_per_request(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database("smoke_fresh")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table t (x int)"))
        engine.dispose()
        again = postgres_server.create_database("smoke_fresh")
        assert again == url
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("select count(*) from pg_tables where schemaname = 'public'")
            ).scalar_one()
        assert tables == 0
    finally:
        engine.dispose()


def test_postgres_keeps_committed_rows_across_a_restart(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("smoke_restart")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("create table t (x int)"))
            conn.execute(sa.text("insert into t values (42)"))
        engine.dispose()
        postgres_server.restart()
        with engine.connect() as conn:
            assert conn.execute(sa.text("select x from t")).scalar_one() == 42
    finally:
        engine.dispose()


def test_create_database_rejects_a_name_that_is_not_a_plain_identifier(
    postgres_server: PostgresServer,
) -> None:
    with pytest.raises(ValueError, match="must match"):
        postgres_server.create_database('x"; drop database volkeeper; --')
