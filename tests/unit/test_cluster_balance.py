"""The share of units each replica aims at (issue 12): everything covered, no flapping."""

from __future__ import annotations

from botkit.runtime.cluster.balance import share, surplus, to_take
from botkit.runtime.cluster.keys import ClusterKeys, Unit

UNITS = [Unit("echo", f"room{index}") for index in range(6)]


def test_shares_cover_every_unit_whatever_the_replica_count() -> None:
    for replicas in range(1, 9):
        assert share(6, replicas) * replicas >= 6
    assert share(6, 2) == 3
    assert share(6, 4) == 2
    assert share(6, 0) == 6  # a replica always counts itself


def test_a_replica_takes_up_to_its_share_and_gives_back_one_unit_at_a_time() -> None:
    assert to_take(UNITS, held=1, target=3) == UNITS[:2]
    assert to_take(UNITS, held=3, target=3) == []
    assert surplus(UNITS, target=3) == UNITS[-1]
    assert surplus(UNITS[:3], target=3) is None


def test_unit_names_round_trip_through_their_lease_keys() -> None:
    keys = ClusterKeys("proj_x")
    unit = Unit("echo", "room_1")
    assert keys.lease(unit) == "botkit:proj_x:lease:echo/room_1"
    assert keys.unit_of_lease(keys.lease(unit)) == unit
