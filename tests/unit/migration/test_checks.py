"""A migration's validation refuses volumes whose data would not persist or whose files
the worker cannot reach, with a message naming why and what to use instead: a ``local``
source or destination of ``type=tmpfs`` (memory only), a destination of ``type=nfs`` (a
network mount the cut-over cannot sync in place), a driver the host does not have, an
image missing on the host that is to run the recreated containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.config import Settings
from common.docker.models import VolumeInfo
from common.engine.migrate import check_destination, check_source
from common.errors import NotFound


class Host:
    """The few ``DockerHost`` calls the checks make, over a dict of volumes."""

    def __init__(self, root: Path, volumes: dict[str, VolumeInfo]) -> None:
        self.root, self.volumes = root, volumes
        self.created: list[str] = []

    def volume(self, name: str) -> VolumeInfo:
        if name not in self.volumes:
            raise NotFound("volume", name)
        return self.volumes[name]

    def volume_drivers(self) -> list[str]:
        return ["local"]

    def root_dir(self) -> Path:
        return self.root

    def local_path(self, name: str) -> Path | None:
        return None

    def create_volume(self, name: str, **kw: Any) -> None:
        self.created.append(name)

    def is_empty(self, name: str) -> bool:
        return True

    def remove_volume(self, name: str) -> None:
        pass

    @property
    def client(self) -> Any:
        return self

    @property
    def images(self) -> Any:
        return self

    def get(self, image: str) -> str:
        if image != "app:1":
            raise NotFound("image", image)
        return image


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", host_name="a")


def _info(name: str, opts: dict[str, str]) -> VolumeInfo:
    return VolumeInfo(name=name, driver="local", mountpoint=None, labels={},
                      created_at=None, size_bytes=None, containers=(), options=opts)


def _failed(out: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in out["checks"] if not c["ok"]}


def _host(tmp_path: Path, **volumes: VolumeInfo) -> Host:
    (tmp_path / "volumes").mkdir(exist_ok=True)
    return Host(tmp_path, volumes)


def test_a_tmpfs_source_is_refused_because_the_cut_over_would_lose_it(tmp_path: Path
                                                                      ) -> None:
    host = _host(tmp_path, mem=_info("mem", {"type": "tmpfs", "device": "tmpfs"}))
    bad = _failed(check_source(host, "mem", _settings(tmp_path)))  # type: ignore[arg-type]
    assert list(bad) == ["source persists"]
    assert "type=tmpfs" in bad["source persists"] and "in memory" in bad["source persists"]


def test_a_tmpfs_destination_is_refused_without_a_probe(tmp_path: Path) -> None:
    host = _host(tmp_path)
    out = check_destination(host, "new", "local",  # type: ignore[arg-type]
                            {"type": "tmpfs", "device": "tmpfs"}, 10, _settings(tmp_path))
    bad = _failed(out)
    assert "destination persists" in bad and "would vanish" in bad["destination persists"]
    assert host.created == []  # no probe volume for options that are refused anyway


def test_an_nfs_destination_is_refused_naming_the_network_mount(tmp_path: Path) -> None:
    host = _host(tmp_path)
    out = check_destination(host, "new", "local",  # type: ignore[arg-type]
                            {"type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/export"},
                            10, _settings(tmp_path))
    bad = _failed(out)
    assert list(bad) == ["file access"], out
    assert "nfs mount (type=nfs)" in bad["file access"]
    assert "mount the export on the host" in bad["file access"]


def test_a_driver_the_host_lacks_is_refused_naming_the_ones_it_has(tmp_path: Path
                                                                    ) -> None:
    bad = _failed(check_destination(_host(tmp_path), "new", "rexray/ebs",  # type: ignore[arg-type]
                                    {}, 10, _settings(tmp_path)))
    assert "'rexray/ebs' is not available" in bad["driver"] and "local" in bad["driver"]
    assert "'rexray/ebs' volume" in bad["file access"]


def test_a_plain_or_bound_local_destination_passes(tmp_path: Path) -> None:
    device = tmp_path / "dir"
    device.mkdir()
    host = _host(tmp_path)
    for opts in ({}, {"type": "none", "o": "bind", "device": str(device)}):
        out = check_destination(host, "new", "local", opts, 10,  # type: ignore[arg-type]
                                _settings(tmp_path))
        assert _failed(out) == {}, out


def test_a_bound_destination_whose_directory_holds_files_is_refused(tmp_path: Path
                                                                     ) -> None:
    """The restore would overwrite the directory's files and the cut-over's sync delete
    the rest: the user's files there are refused, not migrated over."""
    device = tmp_path / "dir"
    device.mkdir()
    (device / "mine.txt").write_text("precious")
    opts = {"type": "none", "o": "bind", "device": str(device)}
    bad = _failed(check_destination(_host(tmp_path), "new", "local",  # type: ignore[arg-type]
                                    opts, 10, _settings(tmp_path)))
    assert list(bad) == ["destination volume"]
    assert f"device directory {device}" in bad["destination volume"]
    assert "'mine.txt'" in bad["destination volume"] and "not empty" in bad["destination volume"]
    assert (device / "mine.txt").read_text() == "precious"


def test_containers_to_recreate_need_their_images_on_the_destination(tmp_path: Path
                                                                     ) -> None:
    host = _host(tmp_path)
    ok = check_destination(host, "new", "local", {}, 10,  # type: ignore[arg-type]
                           _settings(tmp_path), images=["app:1"])
    assert _failed(ok) == {} and any(c["name"] == "images" for c in ok["checks"])
    bad = _failed(check_destination(host, "new", "local", {}, 10,  # type: ignore[arg-type]
                                    _settings(tmp_path), images=["app:1", "db:2"]))
    assert list(bad) == ["images"] and "db:2" in bad["images"]
    assert "app:1" not in bad["images"] and "pull or load" in bad["images"]


def test_a_bound_destination_inside_docker_s_volumes_is_refused(tmp_path: Path) -> None:
    """An empty directory in the source volume's own files passed the "empty" check:
    the migration then wrote its copy into the source (which it must only read)."""
    inner = tmp_path / "volumes" / "pgdata" / "_data" / "new"
    inner.mkdir(parents=True)
    opts = {"type": "none", "o": "bind", "device": str(inner)}
    bad = _failed(check_destination(_host(tmp_path), "new", "local",  # type: ignore[arg-type]
                                    opts, 10, _settings(tmp_path)))
    assert "inside Docker's volumes directory" in bad["destination volume"], bad
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ok = check_destination(_host(tmp_path), "new", "local",  # type: ignore[arg-type]
                           {**opts, "device": str(outside)}, 10, _settings(tmp_path))
    assert "destination volume" not in _failed(ok), ok
