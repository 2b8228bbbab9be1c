"""The hub's outbox bound: a backlog behind a write in progress, never one message alone."""

from __future__ import annotations

from botkit.dev.hub.outbox import Outbox


def test_one_message_larger_than_the_bound_always_fits() -> None:
    outbox = Outbox(100)
    assert outbox.put("x" * 1000)  # the writer is idle: on its way out, whatever its size
    assert outbox.put("y")  # e.g. the join push right after a big subscribe reply
    assert outbox.take() == "x" * 1000 + "\ny"
    assert outbox.backlog == 0
    assert outbox.put("z" * 1000)  # behind a write in progress, but alone: it fits too


def test_a_backlog_behind_a_busy_writer_is_bounded() -> None:
    outbox = Outbox(100)
    outbox.put("a")
    assert outbox.take() == "a"  # the writer is busy until it comes back empty-handed
    assert outbox.put("b" * 60)
    assert outbox.put("c" * 40)
    assert outbox.backlog == 100
    assert not outbox.put("d")  # past the bound: the connection is slow
    assert outbox.take() == "b" * 60 + "\n" + "c" * 40
    assert outbox.backlog == 0
    assert outbox.take() is None  # idle again: nothing counts until the next take
    assert outbox.put("e" * 500)
    assert outbox.put("f" * 500)
    assert (outbox.backlog, outbox.size) == (0, 1000)


def test_clear_forgets_everything() -> None:
    outbox = Outbox(10)
    outbox.take()
    outbox.put("x" * 50)
    outbox.clear()
    assert (len(outbox), outbox.size, outbox.backlog) == (0, 0, 0)
