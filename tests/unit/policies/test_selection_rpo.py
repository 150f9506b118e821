"""Selection of volumes (names, hosts, labels on the volume or a container, Compose
project), conflicts between policies, and RPO freshness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.policies.rpo import default_rpo, freshness
from common.policies.schedule import parse_schedule
from common.policies.selection import (
    VolumeRef,
    check_selection,
    claims,
    select,
    volume_ref,
)

INV = [
    VolumeRef("a", "pg", labels={"volkeeper.policy": "nightly"}),
    VolumeRef("a", "redis", container_labels=({"volkeeper.policy": "nightly"},)),
    VolumeRef("b", "pg", labels={"com.docker.compose.project": "shop"}),
    VolumeRef("b", "cache", container_labels=({"com.docker.compose.project": "shop"},
                                              {"volkeeper.policy": "hourly"})),
    VolumeRef("b", "other"),
]


def names(sel: object) -> list[str]:
    return [f"{v.host}/{v.name}" for v in select(sel, INV)]  # type: ignore[arg-type]


def test_a_selector_matches_a_label_on_the_volume_or_a_container_using_it() -> None:
    assert names(check_selection(selector="volkeeper.policy=nightly")) == ["a/pg", "a/redis"]


def test_a_compose_project_matches_volume_or_container_labels() -> None:
    assert names(check_selection(project="shop")) == ["b/cache", "b/pg"]


def test_criteria_combine_and_hosts_alone_mean_all_their_volumes() -> None:
    assert names(check_selection(volumes=["pg"])) == ["a/pg", "b/pg"]
    assert names(check_selection(volumes=["pg"], hosts=["b"])) == ["b/pg"]
    assert names(check_selection(hosts=["b"])) == ["b/cache", "b/other", "b/pg"]


def test_an_empty_or_malformed_selection_is_refused() -> None:
    with pytest.raises(ValueError, match="selects no volume"):
        check_selection()
    for bad in ("nolabel", "=x", "a b=c"):
        with pytest.raises(ValueError, match="invalid selector"):
            check_selection(selector=bad)


def test_a_volume_matched_by_two_policies_is_claimed_by_both_first_by_name_owns() -> None:
    got = claims({"nightly": check_selection(selector="volkeeper.policy=nightly"),
                  "all-a": check_selection(hosts=["a"]),
                  "hourly": check_selection(selector="volkeeper.policy=hourly")}, INV)
    assert got == {("a", "pg"): ["all-a", "nightly"], ("a", "redis"): ["all-a", "nightly"],
                   ("b", "cache"): ["hourly"]}


def test_inventory_rows_carry_container_labels() -> None:
    v = volume_ref("h", "v", {"x": "1"}, {"items": [{"id": "c", "name": "n", "state": "up",
                                                       "labels": {"k": "v"}}, {"id": "d"}]})
    assert v.labels == {"x": "1"} and v.container_labels == ({"k": "v"}, {})


def test_default_rpo_is_twice_the_interval_and_overdue_follows_the_newest_good_backup() -> None:
    assert default_rpo(parse_schedule("0 2 * * *", "Europe/Berlin")) == timedelta(hours=48)
    assert default_rpo(parse_schedule("@every 6h")) == timedelta(hours=12)
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    created = now - timedelta(days=30)
    rpo = timedelta(hours=26)
    fresh = freshness(now - timedelta(hours=25), rpo, now, created)
    assert not fresh.overdue and fresh.age == timedelta(hours=25)
    assert freshness(now - timedelta(hours=27), rpo, now, created).overdue
    # never backed up: overdue once the policy is older than its RPO
    assert freshness(None, rpo, now, created).overdue
    assert not freshness(None, rpo, now, now - timedelta(hours=1)).overdue


def test_the_index_selects_exactly_what_matching_each_volume_would() -> None:
    import random

    from common.policies.selection import Inventory, Selection, matches

    rnd = random.Random(7)
    keys, values = ["volkeeper.policy", "com.docker.compose.project", "x"], ["a", "b", "c"]

    def labels() -> dict[str, str]:
        return {rnd.choice(keys): rnd.choice(values) for _ in range(rnd.randint(0, 2))}

    refs = [VolumeRef(rnd.choice(["h1", "h2", "h3"]), f"v{k}", labels(),
                      tuple(labels() for _ in range(rnd.randint(0, 2)))) for k in range(300)]
    inv = Inventory(refs)
    for _ in range(300):
        sel = Selection(
            volumes=tuple(rnd.sample([f"v{k}" for k in range(320)], rnd.randint(0, 3))),
            hosts=tuple(rnd.sample(["h1", "h2", "h3", "h4"], rnd.randint(0, 2))),
            selector=rnd.choice([None, f"{rnd.choice(keys)}={rnd.choice(values)}"]),
            project=rnd.choice([None, rnd.choice(values)]))
        expected = [v for v in sorted(refs, key=lambda v: v.key) if matches(sel, v)] if (
            sel.volumes or sel.hosts or sel.selector or sel.project) else []
        assert inv.select(sel) == expected
