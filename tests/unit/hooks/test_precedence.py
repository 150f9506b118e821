"""A policy's options under the labels: a container's label wins, then the volume's, then
the policy, then the default; a container labelled to dump makes it a dump backup."""

from __future__ import annotations

from common.docker import ContainerRef, VolumeInfo
from common.hooks.precedence import Decided, policy_options, stop_by_labels
from tests.unit.hooks.test_labels import ref

STOP = "volkeeper.stop-during-backup"


def vol(labels: dict[str, str], *containers: ContainerRef) -> VolumeInfo:
    return VolumeInfo("v", "local", None, labels, None, None, containers)


def test_the_container_label_wins_then_the_volume_then_the_policy() -> None:
    plain, keep = ref("plain"), ref("db", **{STOP: "false"})
    assert stop_by_labels(vol({}, plain)) is None
    assert policy_options(vol({}, plain), True, None, None).stop
    assert not policy_options(vol({}, plain), False, None, None).stop
    assert not policy_options(vol({STOP: "true"}, plain, keep), True, None, None).stop
    assert policy_options(vol({STOP: "true"}, plain), False, None, None).stop
    assert not policy_options(vol({STOP: "no"}, plain), True, None, None).stop
    assert policy_options(vol({}, keep, ref("web", **{STOP: "yes"})), False, None,
                          None).stop


def test_a_snapshot_or_dump_label_overrides_the_policys() -> None:
    assert policy_options(vol({"volkeeper.snapshot": "zfs"}, ref("a")), False, "btrfs",
                          None).snapshot is None  # the label decides (snapshot_source)
    assert policy_options(vol({}, ref("a")), False, "auto", None).snapshot == "auto"
    pg = ref("pg", **{"volkeeper.dump": "postgres"})
    assert policy_options(vol({}, pg), True, "auto", "redis") == Decided(False, None, None)
    assert policy_options(vol({}, ref("a")), False, None, "redis").dump == "redis"
