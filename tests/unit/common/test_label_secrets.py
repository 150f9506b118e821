"""Passwords in labels (hook commands, secret-named labels, URLs) are redacted before the
inventory stores them; names, selectors and ordinary values stay as they are."""

from __future__ import annotations

import pytest

from common.docker.models import ContainerRef, VolumeInfo
from common.jobs.host import volume_row
from common.label_secrets import REDACTED, redact_command, redact_labels


@pytest.mark.parametrize(("command", "secret"), [
    ("mysqldump -uroot -pS3cretPw app > /dump.sql", "S3cretPw"),
    ("pg_dump --password=hunter22 -U app", "hunter22"),
    ("redis-cli --pass 'quoted secret' save", "quoted secret"),
    ("PGPASSWORD=pgsecret pg_dump -p 5432 app", "pgsecret"),
    ("MYSQL_PWD=x9y8z7 mysqldump app", "x9y8z7"),
    ("curl -H 'Authorization: Bearer abcdefgh12345678' http://x", "abcdefgh12345678"),
    ("mongodump --uri mongodb://root:m0ng0pw@db/app", "m0ng0pw"),
    ("sh -c 'API_TOKEN=tok-123456 notify'", "tok-123456"),
])
def test_a_hook_command_keeps_its_shape_but_not_its_secret(command: str, secret: str
                                                           ) -> None:
    shown = redact_command(command)
    assert secret not in shown and REDACTED in shown


def test_ports_options_and_plain_commands_are_left_alone() -> None:
    for plain in ("pg_dump -p 5432 -U app app", "pg_dump --no-password -U app app",
                  "tar -cpf /x.tar /data", "sync"):
        assert redact_command(plain) == plain


def test_labels_named_after_a_secret_lose_their_value_and_selectors_stay() -> None:
    labels = {"volkeeper.policy": "nightly", "com.docker.compose.project": "shop",
              "com.example.db-password": "pw1", "app.api_key": "k2", "token": "t3",
              "volkeeper.pre-backup": "mysqldump -pS3cret app", "tokenizer": "bert",
              "org.opencontainers.image.source": "https://github.com/x/y"}
    out = redact_labels(labels)
    assert out["volkeeper.policy"] == "nightly" and out["com.docker.compose.project"] == "shop"
    assert out["com.example.db-password"] == out["app.api_key"] == out["token"] == REDACTED
    assert out["volkeeper.pre-backup"] == f"mysqldump -p{REDACTED} app"
    assert out["tokenizer"] == "bert"
    assert out["org.opencontainers.image.source"] == "https://github.com/x/y"


def test_the_inventory_row_of_a_volume_holds_no_label_password() -> None:
    c = ContainerRef("c1", "db", "running", labels={
        "volkeeper.pre-backup": "mysqldump -uroot -pRowSecret1 app",
        "volkeeper.policy": "nightly"})
    v = VolumeInfo(name="data", driver="local", mountpoint=None,
                   labels={"backup.password": "RowSecret2"}, created_at=None,
                   size_bytes=None, containers=(c,))
    row = volume_row(v)
    assert "RowSecret" not in repr(row)
    assert row["containers"]["items"][0]["labels"]["volkeeper.policy"] == "nightly"
