"""RoomPresence: joins and leaves counted per connection, and resync after a reconnect."""

from __future__ import annotations

from botkit.protocol.types import ClientInfo
from botkit.runtime.presence import RoomPresence


def conn(user: str, client: str) -> ClientInfo:
    return ClientInfo(user=user, client=client)


def _held(room: RoomPresence) -> dict[str, set[str]]:
    return {user: room.connections(user) for user in room.users()}


def test_a_user_joins_with_the_first_connection_and_leaves_with_the_last() -> None:
    room = RoomPresence()
    assert room.join(conn("alice", "c1")) is True
    assert room.join(conn("alice", "c2")) is False  # a second tab
    assert room.join(conn("bob", "c3")) is True
    assert room.users() == {"alice", "bob"}
    assert room.leave(conn("alice", "c1")) is False
    assert room.users() == {"alice", "bob"}
    assert room.leave(conn("alice", "c2")) is True
    assert room.users() == {"bob"}
    assert _held(room) == {"bob": {"c3"}}


def test_repeated_and_unknown_pushes_change_nothing() -> None:
    room = RoomPresence()
    assert room.join(conn("alice", "c1")) is True
    assert room.join(conn("alice", "c1")) is False  # the same connection again
    assert room.leave(conn("alice", "c9")) is False  # a connection we never saw
    assert room.leave(conn("zed", "c1")) is False  # a user we never saw
    assert room.users() == {"alice"}
    assert room.leave(conn("alice", "c1")) is True
    assert room.leave(conn("alice", "c1")) is False  # left already
    assert room.users() == set()
    assert room.join(conn("alice", "c4")) is True  # back again: a new join


def test_resync_reports_who_came_and_went_meanwhile() -> None:
    room = RoomPresence()
    for user, client in [("alice", "c1"), ("alice", "c2"), ("bob", "c3"), ("dan", "c6")]:
        room.join(conn(user, client))
    present = [conn("alice", "c2"), conn("carol", "c4"), conn("carol", "c5"), conn("dan", "c7")]
    joined, left = room.resync(present)
    assert joined == [conn("carol", "c4")]  # once per user, her first connection
    assert left == ["bob"]
    # alice lost a tab and dan swapped connections: both stayed, neither is reported.
    assert _held(room) == {"alice": {"c2"}, "carol": {"c4", "c5"}, "dan": {"c7"}}
    # The state now follows the server's: later pushes count from it.
    assert room.leave(conn("alice", "c1")) is False
    assert room.leave(conn("alice", "c2")) is True
    assert room.leave(conn("carol", "c4")) is False
    assert room.join(conn("bob", "c8")) is True


def test_resync_from_and_to_an_empty_room() -> None:
    room = RoomPresence()
    assert room.resync([]) == ([], [])
    assert room.resync([conn("alice", "c1")]) == ([conn("alice", "c1")], [])
    assert room.resync([conn("alice", "c1")]) == ([], [])
    assert room.resync([]) == ([], ["alice"])
    assert room.users() == set()


def test_a_user_back_to_one_connection_still_leaves_with_it() -> None:
    # One connection is held as its id, several as a set: the way back from a set to one id
    # must keep counting right.
    room = RoomPresence()
    room.join(conn("alice", "c1"))
    room.join(conn("alice", "c2"))
    room.join(conn("alice", "c3"))
    assert room.leave(conn("alice", "c2")) is False
    assert room.leave(conn("alice", "c1")) is False
    assert room.connections("alice") == {"c3"}
    assert room.join(conn("alice", "c3")) is False  # the same connection again
    assert room.leave(conn("alice", "c9")) is False
    assert room.leave(conn("alice", "c3")) is True
    assert room.connections("alice") == set()
    room.restore(["bob"])
    assert room.connections("bob") == {"restored"}
