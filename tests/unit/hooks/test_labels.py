"""The labels of hooks and stop windows, and the order containers stop in."""

from __future__ import annotations

from common.docker import ContainerRef
from common.docker.models import VolumeInfo
from common.hooks.around import should_stop
from common.hooks.labels import hook_of
from common.hooks.stopping import stop_order


def ref(name: str, service: str | None = None, depends: str | None = None,
        project: str = "shop", **extra: str) -> ContainerRef:
    labels = dict(extra)
    if service:
        labels |= {"com.docker.compose.project": project,
                   "com.docker.compose.service": service}
    if depends:
        labels["com.docker.compose.depends_on"] = depends
    return ContainerRef(id=f"id-{name}", name=name, state="running", labels=labels)


def test_compose_dependents_stop_before_what_they_depend_on() -> None:
    db = ref("shop-db-1", "db")
    cache = ref("shop-cache-1", "cache")
    app = ref("shop-app-1", "app", "db:service_started:false,cache:service_healthy:true")
    web = ref("shop-web-1", "web", "app:service_started:false")
    order = [c.name for c in stop_order([db, cache, web, app])]
    assert order.index("shop-web-1") < order.index("shop-app-1") < order.index("shop-db-1")
    assert order.index("shop-app-1") < order.index("shop-cache-1")


def test_depends_on_counts_within_one_compose_project_only() -> None:
    db = ref("a-db", "db", project="other")
    app = ref("b-app", "app", "db:service_started:false", project="shop")
    assert [c.name for c in stop_order([db, app])] == ["a-db", "b-app"]  # by name


def test_hook_options_come_from_labels_with_defaults_per_phase() -> None:
    labels = {"volkeeper.pre-backup": "pg_dump x", "volkeeper.post-backup": "echo ok",
              "volkeeper.hook-timeout": "12", "volkeeper.hook-user": "postgres"}
    pre, post = hook_of(labels, "pre", "backup"), hook_of(labels, "post", "backup")
    assert pre is not None and post is not None
    assert (pre.command, pre.timeout, pre.user, pre.on_error) == (
        "pg_dump x", 12.0, "postgres", "fail")
    assert post.on_error == "warn"
    assert hook_of(labels, "pre", "restore") is None
    odd = hook_of({"volkeeper.pre-backup": "x", "volkeeper.hook-timeout": "soon",
                   "volkeeper.hook-on-error": "warn"}, "pre", "backup")
    assert odd is not None and (odd.timeout, odd.on_error) == (300.0, "warn")


def test_a_label_on_the_volume_or_any_container_using_it_stops_them() -> None:
    def vol(labels: dict[str, str], *containers: ContainerRef) -> VolumeInfo:
        return VolumeInfo("v", "local", None, labels, None, None, containers)

    plain = ref("plain")
    assert not should_stop(vol({}, plain), False)
    assert should_stop(vol({}, plain), True)
    assert should_stop(vol({"volkeeper.stop-during-backup": "true"}, plain), False)
    labelled = ref("db", **{"volkeeper.stop-during-backup": "TRUE"})
    assert should_stop(vol({}, plain, labelled), False)
    assert not should_stop(vol({"volkeeper.stop-during-backup": "no"}, plain), False)


def test_a_dependency_cycle_still_stops_every_container_once() -> None:
    a = ref("a", "a", "b:service_started:false")
    b = ref("b", "b", "a:service_started:false")
    assert sorted(c.name for c in stop_order([a, b])) == ["a", "b"]


def test_a_hook_keeps_only_the_end_of_its_output() -> None:
    from common.docker.execs import _Tail

    tail = _Tail(8)
    for chunk in (b"first line\n", b"the end\n"):
        tail.add(chunk)
    assert tail.text() == "[…] the end\n"
    short = _Tail(8)
    short.add(b"ok\n")
    assert short.text() == "ok\n"


def test_a_pid_that_is_not_visibly_the_container_s_is_never_killed() -> None:
    import os
    import subprocess

    from common.docker.execs import in_container, kill_tree

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert not in_container(child.pid, "0" * 64)
        assert kill_tree(child.pid, "0" * 64) is False
        assert child.poll() is None and not in_container(os.getpid(), "short")
    finally:
        child.kill()
        child.wait()


def test_a_snapshot_keeps_its_excludes_and_one_without_is_written_as_before() -> None:
    from common.repository.core.snapshot import Snapshot
    from common.repository.core.tree import Node

    root = Node(name="root", type="dir", subtree=b"\x01" * 32)
    plain = Snapshot(tree=b"\x01" * 32, root=root, host="h", volume="v")
    assert "excludes" not in plain.to_dict()
    with_excludes = Snapshot(tree=b"\x01" * 32, root=root, host="h", volume="v",
                             excludes=["cache/**", "*.tmp"])
    d = with_excludes.to_dict()
    assert d["excludes"] == ["cache/**", "*.tmp"]
    assert Snapshot.from_dict(d, b"\x02" * 32).excludes == ["cache/**", "*.tmp"]
    assert Snapshot.from_dict(plain.to_dict(), b"\x02" * 32).excludes == []


def test_a_label_a_slip_from_a_volkeeper_label_is_reported_and_others_are_not() -> None:
    from common.docker.models import VolumeInfo
    from common.hooks.around import label_notes
    from common.hooks.labels import misspelt

    found = {name: "x" for name in (
        "volkeeper.dupm", "volkeeper.pre-bakup", "volkeeper.stop-during-backups",
        "volkeeper.hook_user", "volkeeper.dump-databases", "volkeper.exclude",
        # read ones, and a policy's selector labels: not reported
        "volkeeper.dump", "volkeeper.pre-backup", "volkeeper.policy", "volkeeper.tier",
        "volkeeper.backup", "volkeeper.team", "com.docker.compose.service")}
    assert misspelt(found) == [
        ("volkeeper.dump-databases", "volkeeper.dump-database"),
        ("volkeeper.dupm", "volkeeper.dump"),
        ("volkeeper.hook_user", "volkeeper.hook-user"),
        ("volkeeper.pre-bakup", "volkeeper.pre-backup"),
        ("volkeeper.stop-during-backups", "volkeeper.stop-during-backup"),
        ("volkeper.exclude", "volkeeper.exclude")]
    info = VolumeInfo(name="pgdata", driver="local", mountpoint=None,
                      labels={"volkeeper.exlude": "*.tmp"}, created_at=None, size_bytes=None,
                      containers=(ref("db", **{"volkeeper.dupm": "postgres"}),))
    assert label_notes(info) == [
        "label volkeeper.exlude on volume pgdata is not a volkeeper label and was ignored: "
        "did you mean volkeeper.exclude?",
        "label volkeeper.dupm on container db is not a volkeeper label and was ignored: "
        "did you mean volkeeper.dump?"]


def test_a_value_read_as_its_default_is_reported() -> None:
    from common.hooks.labels import bad_values

    assert bad_values({"volkeeper.stop-during-backup": "ture", "volkeeper.hook-timeout": "5m",
                       "volkeeper.hook-on-error": "fial", "volkeeper.stop-timeout": "abc"}) == [
        "volkeeper.stop-during-backup='ture' is neither true nor false: read as false "
        "(it stops nothing)",
        "volkeeper.hook-timeout='5m' is not a number of seconds: read as 300",
        "volkeeper.hook-on-error='fial' is neither fail nor warn: read as the default "
        "(fail for pre hooks, warn for post hooks)",
        "volkeeper.stop-timeout='abc' is not a number of seconds from 0 to 3600: read as "
        "the default"]
    assert bad_values({"volkeeper.stop-during-backup": "False", "volkeeper.hook-timeout": "90",
                       "volkeeper.hook-on-error": "Warn", "volkeeper.stop-timeout": "0"}) == []


def test_the_backup_hooks_of_a_dumping_container_are_said_not_to_run() -> None:
    from common.hooks.around import unhooked_notes

    db = ref("db", **{"volkeeper.dump": "postgres", "volkeeper.pre-backup": "echo hi"})
    assert unhooked_notes([db, db, ref("cache")]) == [
        "label volkeeper.pre-backup on container db did not run: a container whose database "
        "is dumped (volkeeper.dump) is not hooked"]
