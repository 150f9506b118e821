"""The Docker adapter against real private dockerd instances (see tests/fixtures/dockerd.py)."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.types import Mount

from common.docker import HELPER_IMAGE, HELPER_LABEL, DockerHost
from common.docker.archive_api import OWNER_LABEL, VOLUME_LABEL, owner_tag
from common.docker.helper_image import IMAGE_LABEL, ensure_helper_image, image_archive
from common.errors import Conflict, DockerError, NotFound
from tests.fixtures.dockerd import PrivateDockerd

pytestmark = pytest.mark.integration


@pytest.fixture
def host_a(docker_host_a: PrivateDockerd) -> Iterator[DockerHost]:
    host = DockerHost(docker_host_a.url)
    yield host
    host.close()


@pytest.fixture
def host_b(docker_host_b: PrivateDockerd) -> Iterator[DockerHost]:
    host = DockerHost(docker_host_b.url)
    yield host
    host.close()


def helpers_left(host: DockerHost) -> list[str]:
    found = host.client.api.containers(all=True, filters={"label": f"{HELPER_LABEL}=1"})
    return [c["Id"] for c in found]


def user_container(host: DockerHost, volume: str, name: str) -> str:
    """Create (not start) a plain container that mounts ``volume``, as a user would."""
    api = host.client.api
    ensure_helper_image(api)
    config = api.create_host_config(mounts=[Mount("/data", volume)], network_mode="none")
    return str(api.create_container(HELPER_IMAGE, name=name, host_config=config)["Id"])


def populate(root: Path) -> None:
    """Files with distinct owners, modes and mtimes, a symlink, a hardlink, nested dirs."""
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "readme.txt").write_bytes(b"hello volkeeper\n")
    (root / "docs" / "deep" / "blob.bin").write_bytes(os.urandom(300_000))
    (root / "empty").write_bytes(b"")
    (root / "secret").write_bytes(b"\x00\xffkey")
    os.chown(root / "secret", 999, 998)
    os.chmod(root / "secret", 0o600)
    os.chmod(root / "docs" / "deep" / "blob.bin", 0o4750)
    os.chown(root / "docs", 1001, 1002)
    os.chmod(root / "docs", 0o2770)
    os.symlink("docs/readme.txt", root / "link-to-readme")
    os.symlink("/nowhere/at/all", root / "dangling")
    os.lchown(root / "dangling", 7, 8)
    os.link(root / "docs" / "readme.txt", root / "hardlink")
    os.utime(root / "docs" / "readme.txt", (1_600_000_000, 1_600_000_000))
    os.utime(root / "secret", (1_500_000_000, 1_500_000_000))
    os.utime(root / "docs" / "deep", (1_400_000_000, 1_400_000_000))
    os.utime(root / "link-to-readme", (1_300_000_000, 1_300_000_000), follow_symlinks=False)
    os.chown(root, 70, 70)
    os.chmod(root, 0o750)
    os.utime(root, (1_200_000_000, 1_200_000_000))


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Path → (type+mode, uid, gid, whole-second mtime, content or link target)."""
    out: dict[str, tuple[object, ...]] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            payload: object = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            payload = path.read_bytes()
        else:
            payload = None
        out[rel] = (st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), payload)
    return out


def copy_through_archive_api(host: DockerHost, source: str, target: str) -> None:
    with host.archive_source(source) as stream:
        host.archive_sink(target, stream)


def test_a_created_volume_is_listed_and_inspected_with_its_labels(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    created = host_a.create_volume(fresh_volume_name, labels={"team": "db"})
    assert created.name == fresh_volume_name
    assert created.driver == "local"
    assert created.labels == {"team": "db"}
    assert created.mountpoint and created.created_at
    assert created.containers == ()
    listed = {v.name: v for v in host_a.list_volumes()}
    assert listed[fresh_volume_name].labels == {"team": "db"}
    assert host_a.volume(fresh_volume_name).mountpoint == created.mountpoint


def test_creating_a_volume_that_exists_is_a_conflict(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    with pytest.raises(Conflict, match=fresh_volume_name):
        host_a.create_volume(fresh_volume_name)


def test_a_removed_volume_is_gone(host_a: DockerHost, fresh_volume_name: str) -> None:
    host_a.create_volume(fresh_volume_name)
    host_a.remove_volume(fresh_volume_name)
    assert fresh_volume_name not in {v.name for v in host_a.list_volumes()}
    with pytest.raises(NotFound):
        host_a.remove_volume(fresh_volume_name)


def test_an_unknown_volume_is_not_found_and_the_error_names_it(host_a: DockerHost) -> None:
    with pytest.raises(NotFound) as caught:
        host_a.volume("no-such-volume-here")
    assert caught.value.kind == "volume"
    assert caught.value.name == "no-such-volume-here"
    assert "no-such-volume-here" in str(caught.value)
    assert caught.value.hint and "on host" in caught.value.hint


def test_reading_an_unknown_volume_is_not_found_and_does_not_create_it(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    with pytest.raises(NotFound), host_a.archive_source(fresh_volume_name):
        pass
    with pytest.raises(NotFound):
        host_a.archive_sink(fresh_volume_name, io.BytesIO(b""))
    assert fresh_volume_name not in {v.name for v in host_a.list_volumes()}


def test_containers_using_a_volume_are_listed_but_helpers_are_not(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    container_id = user_container(host_a, fresh_volume_name, f"{fresh_volume_name}-app")
    with host_a.archive_source(fresh_volume_name):  # a helper exists during this block
        users = host_a.volume(fresh_volume_name).containers
        listed = {v.name: v for v in host_a.list_volumes()}[fresh_volume_name].containers
    assert [(c.id, c.name, c.state) for c in users] == [
        (container_id, f"{fresh_volume_name}-app", "created")
    ]
    assert listed == users


def test_volume_sizes_are_reported_only_when_asked(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    path = host_a.local_path(fresh_volume_name)
    assert path is not None
    (path / "data").write_bytes(b"x" * 200_000)
    assert {v.name: v for v in host_a.list_volumes()}[fresh_volume_name].size_bytes is None
    sized = {v.name: v for v in host_a.list_volumes(with_sizes=True)}[fresh_volume_name]
    assert sized.size_bytes is not None and sized.size_bytes >= 200_000


def test_local_path_is_the_writable_mountpoint_of_a_plain_local_volume(
    host_a: DockerHost, docker_host_a: PrivateDockerd, fresh_volume_name: str
) -> None:
    info = host_a.create_volume(fresh_volume_name)
    path = host_a.local_path(fresh_volume_name)
    assert path == Path(str(info.mountpoint))
    assert path.is_relative_to(docker_host_a.data_root)
    (path / "probe").write_text("direct")
    with (
        host_a.archive_source(fresh_volume_name) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        assert "./probe" in [m.name for m in tar]


def test_local_path_is_none_for_a_volume_mounted_only_while_in_use(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(
        fresh_volume_name, driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    )
    assert host_a.local_path(fresh_volume_name) is None


def test_a_volume_mounted_only_while_in_use_is_read_and_written_through_dockerd(
    host_a: DockerHost, fresh_volume_name: str, tmp_path: Path
) -> None:
    device = tmp_path / "device"
    device.mkdir()
    (device / "kept.txt").write_bytes(b"behind a bind-mounted volume")
    opts = {"type": "none", "o": "bind", "device": str(device)}
    host_a.create_volume(fresh_volume_name, driver_opts=opts)
    assert host_a.local_path(fresh_volume_name) is None
    assert not host_a.is_empty(fresh_volume_name)
    with (
        host_a.archive_source(fresh_volume_name) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        names = [m.name for m in tar]
    assert "./kept.txt" in names
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("./written.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
    buf.seek(0)
    host_a.archive_sink(fresh_volume_name, buf)
    assert (device / "written.txt").read_bytes() == b"ok"


def test_is_empty_tells_an_empty_volume_from_a_used_one_both_ways(
    host_a: DockerHost, fresh_volume_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host_a.create_volume(fresh_volume_name)
    assert host_a.is_empty(fresh_volume_name)
    path = host_a.local_path(fresh_volume_name)
    assert path is not None
    (path / "sub").mkdir()
    assert not host_a.is_empty(fresh_volume_name)
    monkeypatch.setattr(host_a, "local_path", lambda name: None)  # force the archive API
    assert not host_a.is_empty(fresh_volume_name)
    (path / "sub").rmdir()
    assert host_a.is_empty(fresh_volume_name)


def test_archive_source_members_are_relative_to_the_volume_root(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    path = host_a.local_path(fresh_volume_name)
    assert path is not None
    populate(path)
    with (
        host_a.archive_source(fresh_volume_name) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        names = [m.name for m in tar]
    assert names[0] == "."
    assert all(n.startswith("./") for n in names[1:])
    assert "./docs/deep/blob.bin" in names


def test_a_round_trip_through_the_archive_api_keeps_bytes_modes_owners_mtimes_and_links(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    source, target = fresh_volume_name, f"{fresh_volume_name}-copy"
    host_a.create_volume(source)
    host_a.create_volume(target)
    src_path, dst_path = host_a.local_path(source), host_a.local_path(target)
    assert src_path is not None and dst_path is not None
    populate(src_path)

    copy_through_archive_api(host_a, source, target)

    before, after = snapshot(src_path), snapshot(dst_path)
    assert after.keys() == before.keys()
    for rel, (mode, uid, gid, mtime, payload) in before.items():
        got = after[rel]
        assert got[0] == mode, f"mode of {rel}"
        assert (got[1], got[2]) == (uid, gid), f"owner of {rel}"
        assert got[4] == payload, f"content or link target of {rel}"
        assert got[3] == mtime, f"mtime of {rel}"
    assert after["."][:4] == (stat.S_IFDIR | 0o750, 70, 70, 1_200_000_000)
    assert after["secret"][:3] == (stat.S_IFREG | 0o600, 999, 998)
    assert after["dangling"][1:3] == (7, 8)
    assert os.readlink(dst_path / "link-to-readme") == "docs/readme.txt"
    hard, original = (dst_path / "hardlink").stat(), (dst_path / "docs" / "readme.txt").stat()
    assert hard.st_ino == original.st_ino and hard.st_nlink == 2


def test_a_volume_streams_into_another_daemon(
    host_a: DockerHost, host_b: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    host_b.create_volume(fresh_volume_name)
    src = host_a.local_path(fresh_volume_name)
    assert src is not None
    populate(src)
    with host_a.archive_source(fresh_volume_name) as stream:
        host_b.archive_sink(fresh_volume_name, stream)
    dst = host_b.local_path(fresh_volume_name)
    assert dst is not None and dst != src
    assert snapshot(dst) == snapshot(src)


def test_archive_sink_accepts_bare_member_names_without_a_root_member(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("dir/plain.txt")
        info.size, info.uid, info.gid, info.mode = 3, 1234, 4321, 0o640
        info.mtime = 1_234_567_890.5
        tar.addfile(info, io.BytesIO(b"abc"))
    buf.seek(0)
    host_a.archive_sink(fresh_volume_name, buf)
    path = host_a.local_path(fresh_volume_name)
    assert path is not None
    st = (path / "dir" / "plain.txt").stat()
    assert (path / "dir" / "plain.txt").read_bytes() == b"abc"
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 4321, 0o640)
    assert st.st_mtime == 1_234_567_890.5


def test_helper_containers_are_gone_after_use_and_after_an_error(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    with host_a.archive_source(fresh_volume_name) as stream:
        assert len(helpers_left(host_a)) == 1
        stream.read()
    assert helpers_left(host_a) == []

    with pytest.raises(RuntimeError, match="boom"), host_a.archive_source(fresh_volume_name):
        raise RuntimeError("boom")
    assert helpers_left(host_a) == []

    with pytest.raises(DockerError):
        host_a.archive_sink(fresh_volume_name, io.BytesIO(b"this is not a tar archive" * 40))
    assert helpers_left(host_a) == []


def test_leftover_helpers_are_swept_but_young_ones_stay(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    with host_a.archive_source(fresh_volume_name):
        (helper,) = helpers_left(host_a)
        assert host_a.sweep_helpers(older_than_seconds=3600) == []
        assert host_a.sweep_helpers(older_than_seconds=0) == [helper]
    assert helpers_left(host_a) == []


def test_a_helper_whose_worker_process_died_is_swept_at_once(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    dead = subprocess.Popen(["true"])
    dead.wait()
    mount = Mount("/volume", fresh_volume_name, type="volume", no_copy=True)
    api = host_a.client.api
    orphan = api.create_container(
        HELPER_IMAGE, labels={HELPER_LABEL: "1", OWNER_LABEL: owner_tag(dead.pid)},
        host_config=api.create_host_config(mounts=[mount], network_mode="none"))["Id"]
    elsewhere = api.create_container(  # made by a worker on another machine: age decides
        HELPER_IMAGE, labels={HELPER_LABEL: "1", OWNER_LABEL: f"other-machine/{dead.pid}"},
        host_config=api.create_host_config(mounts=[mount], network_mode="none"))["Id"]
    with host_a.archive_source(fresh_volume_name):  # ours, alive: stays
        assert host_a.sweep_helpers(older_than_seconds=3600) == [orphan]
        assert len(helpers_left(host_a)) == 2
    assert helpers_left(host_a) == [elsewhere]
    assert host_a.sweep_helpers(older_than_seconds=0) == [elsewhere]


def test_the_helper_image_is_generated_locally_with_a_stable_id(host_a: DockerHost) -> None:
    api = host_a.client.api
    first = ensure_helper_image(api)
    assert ensure_helper_image(api) == first
    assert first == image_archive(api.version()["Arch"])[1]
    assert api.inspect_image(HELPER_IMAGE)["Config"]["Labels"][IMAGE_LABEL] == "helper"


def test_ping_on_a_dead_socket_is_a_docker_error_with_a_hint(tmp_path: Path) -> None:
    host = DockerHost(f"unix://{tmp_path}/nothing.sock", timeout=5)
    with pytest.raises(DockerError) as caught:
        host.ping()
    assert "cannot reach the Docker engine" in caught.value.message
    assert caught.value.hint and "dockerd" in caught.value.hint


def test_reads_on_a_dead_socket_are_docker_errors_with_a_hint_and_load_no_sdk(
        tmp_path: Path) -> None:
    """version and list_volumes read the socket with the standard library (engine_http):
    the same error as through the SDK, and the SDK stays unloaded (a fresh interpreter)."""
    host = DockerHost(f"unix://{tmp_path}/nothing.sock", timeout=5)
    for read in (host.version, host.list_volumes):
        with pytest.raises(DockerError) as caught:
            read()
        assert "cannot reach the Docker engine" in caught.value.message
        assert caught.value.hint and "dockerd" in caught.value.hint
    code = ("import sys\nfrom common.docker import DockerHost\n"
            "from common.errors import DockerError\n"
            f"try:\n    DockerHost({host.base_url!r}, timeout=5).list_volumes()\n"
            "except DockerError:\n    pass\n"
            "print(sorted(m for m in ('docker', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[3]).stdout
    assert out.strip() == "[]"


def test_a_volume_is_created_and_inspected_on_a_socket_without_loading_the_sdk(
        host_a: DockerHost, fresh_volume_name: str) -> None:
    """What a backup or restore asks of the engine (create, inspect, its directory, its
    users) goes over the socket with the standard library: the SDK (~8-10 MiB, requests,
    urllib3) stays unloaded; errors are the same as through the SDK (a fresh interpreter)."""
    code = (
        "import sys\nfrom common.docker import DockerHost\n"
        "from common.errors import Conflict, NotFound\n"
        f"host = DockerHost({host_a.base_url!r}, timeout=30)\n"
        f"name = {fresh_volume_name!r}\n"
        "info = host.create_volume(name, labels={'volkeeper.test': 'yes'})\n"
        "assert info.name == name and info.driver == 'local', info\n"
        "assert info.labels == {'volkeeper.test': 'yes'}, info.labels\n"
        "assert host.local_path(name) is not None and host.is_empty(name)\n"
        "assert host.volume(name).containers == ()\n"
        "try:\n    host.create_volume(name)\nexcept Conflict:\n    pass\n"
        "else:\n    raise SystemExit('no Conflict for an existing volume')\n"
        "try:\n    host.volume(name + '-missing')\nexcept NotFound as e:\n"
        "    assert 'volume' in e.message, e.message\n"
        "else:\n    raise SystemExit('no NotFound for a missing volume')\n"
        "host.root_dir()\n"
        "assert 'local' in host.volume_drivers()\n"
        "print(sorted(m for m in ('docker', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert host_a.volume(fresh_volume_name).labels == {"volkeeper.test": "yes"}


def test_volume_events_are_reported_and_helper_events_are_not(
    host_a: DockerHost, fresh_volume_name: str
) -> None:
    started = time.time() - 1
    host_a.create_volume(fresh_volume_name)
    with host_a.archive_source(fresh_volume_name):
        pass
    events = list(host_a.events(["volume", "container"], since=started, until=time.time() + 1))
    creates = [e for e in events if e.get("Type") == "volume" and e.get("Action") == "create"]
    assert fresh_volume_name in [e["Actor"]["ID"] for e in creates]
    ours = [e for e in events if e["Actor"]["Attributes"].get(VOLUME_LABEL) == fresh_volume_name]
    assert ours == []  # the helper container's create/destroy are not reported


def test_ping_and_version_answer_on_a_live_daemon(host_a: DockerHost) -> None:
    host_a.ping()
    assert host_a.version()[:2].isdigit()


def test_two_private_daemons_are_separate(
    host_a: DockerHost, host_b: DockerHost, fresh_volume_name: str
) -> None:
    host_a.create_volume(fresh_volume_name)
    assert fresh_volume_name not in {v.name for v in host_b.list_volumes()}
    with pytest.raises(NotFound):
        host_b.volume(fresh_volume_name)


def test_a_stream_fed_to_a_command_that_ends_early_gives_its_exit_code_at_once(
    docker_host_a: PrivateDockerd,
) -> None:
    """A loader that refuses before reading its input (a database that exists) ends; the
    rest of a large stream is not written into a connection nobody reads (it blocked
    until the client's timeout: an internal error instead of the loader's refusal). A
    command that reads it all still gets every byte."""
    from tests.fixtures.dockerd import busybox_image

    client = docker_host_a.client()
    ctr = client.containers.run(busybox_image(docker_host_a), ["sh", "-c", "sleep 3600"],
                                detach=True, network_mode="none")
    host = DockerHost(docker_host_a.url, timeout=10)
    try:
        started = time.monotonic()
        r = host.exec_feed(ctr.id, ["sh", "-c", "echo refused >&2; exit 17"],
                           io.BytesIO(b"x" * 8_000_000))
        assert (r.exit_code, r.output) == (17, "refused\n")
        assert time.monotonic() - started < 5
        r = host.exec_feed(ctr.id, ["sh", "-c", "wc -c"], io.BytesIO(b"y" * 8_000_000))
        assert (r.exit_code, r.output.strip()) == (0, "8000000")
    finally:
        host.close()
        ctr.remove(force=True)
