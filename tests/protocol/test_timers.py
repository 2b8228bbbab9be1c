"""The client's timers, data in and data out: ``now`` is always a plain number given by the test,
never a clock. Deadlines are checked exactly, and each fires once."""

from __future__ import annotations

import pytest

from botkit.protocol import (
    ClientProtocol,
    ConnectTimedOut,
    ErrorReply,
    LivenessLost,
    MalformedReply,
    ProtocolState,
    RefreshDue,
    Reply,
    ResubscribeDue,
    Subscribed,
    SubscribeTimedOut,
    TimerPolicy,
    Timers,
    refresh_delay,
)
from tests.protocol.helpers import connect_reply, frame, sent, subscribe_reply

POLICY = TimerPolicy(connect_timeout=5.0, command_timeout=3.0, ping_grace=2.0,
                     refresh_margin=30.0, refresh_retry=1.0)


def _connected(now: float = 100.0, **result: object) -> ClientProtocol:
    protocol = ClientProtocol(timers=POLICY)
    protocol.connect("t", now=now - 1)
    protocol.receive(connect_reply(**{"ping": 25, **result}), now)
    protocol.data_to_send()
    return protocol


# -- connect ----------------------------------------------------------------------------------


def test_connect_and_its_subscribes_go_out_in_one_message() -> None:
    protocol = ClientProtocol(timers=POLICY)
    assert protocol.connect("jwt", now=10.0) == 1
    assert protocol.subscribe("chat:a", "sa", now=10.0) == 2
    assert protocol.subscribe("chat:b", now=10.0) == 3
    assert protocol.data_to_send() == [
        '{"id":1,"connect":{"token":"jwt","name":"botkit"}}\n'
        '{"id":2,"subscribe":{"channel":"chat:a","token":"sa","recoverable":true,'
        '"positioned":true}}\n'
        '{"id":3,"subscribe":{"channel":"chat:b","recoverable":true,"positioned":true}}']
    # The connect reply is due first; the subscribes' deadline is the command timeout.
    assert protocol.next_deadline() == 13.0
    events = protocol.receive(connect_reply(ping=0) + "\n" + subscribe_reply(2) + "\n"
                              + subscribe_reply(3), 11.0)
    assert [type(e) for e in events] == [type(events[0]), Subscribed, Subscribed]
    assert protocol.state is ProtocolState.CONNECTED
    assert protocol.next_deadline() is None


def test_no_reply_to_connect_times_out_once() -> None:
    protocol = ClientProtocol(timers=POLICY)
    protocol.connect("t", now=10.0)
    assert protocol.next_deadline() == 15.0
    assert protocol.fire_timers(14.9) == []
    assert protocol.fire_timers(15.0) == [ConnectTimedOut()]
    assert protocol.fire_timers(16.0) == []
    assert protocol.next_deadline() is None


@pytest.mark.parametrize("reply", [
    frame({"id": 1, "error": {"code": 100, "message": "internal", "temporary": True}}),
    frame({"id": 1, "connect": {"client": 5}}),
])
def test_a_failed_connect_clears_every_deadline_of_its_socket(reply: str) -> None:
    protocol = ClientProtocol(timers=POLICY)
    protocol.connect("t", now=0.0)
    protocol.subscribe("chat:a", now=0.0)
    [event] = protocol.receive(reply, 1.0)
    assert isinstance(event, ErrorReply | MalformedReply)
    assert protocol.state is ProtocolState.DISCONNECTED
    assert protocol.next_deadline() is None
    assert protocol.fire_timers(100.0) == []


# -- liveness ---------------------------------------------------------------------------------


def test_silence_past_the_ping_interval_and_grace_is_liveness_lost() -> None:
    protocol = _connected(now=100.0)
    assert protocol.next_deadline() == 127.0  # 25 s ping + 2 s grace
    assert protocol.receive("{}", 120.0)  # a ping: heard
    assert protocol.next_deadline() == 147.0
    assert protocol.fire_timers(146.0) == []
    assert protocol.fire_timers(147.5) == [LivenessLost(27.5)]
    # Reported once: the transport ends the socket.
    assert protocol.fire_timers(200.0) == []
    assert protocol.next_deadline() is None


def test_a_server_that_does_not_ping_has_no_liveness_deadline() -> None:
    protocol = _connected(now=100.0, ping=0)
    assert protocol.next_deadline() is None
    assert protocol.fire_timers(10_000.0) == []


# -- token refresh ----------------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "delay"), [(600.0, 570.0), (10.0, 8.0), (0.6, 0.5),
                                            (1.2, 0.5), (100.0, 80.0)])
def test_refresh_delay(ttl: float, delay: float) -> None:
    assert refresh_delay(ttl, 30.0) == delay


def test_the_connection_token_is_refreshed_before_it_expires() -> None:
    protocol = _connected(now=100.0, ping=0, expires=True, ttl=600)
    assert protocol.next_deadline() == 670.0
    assert protocol.fire_timers(670.0) == [RefreshDue("")]
    # Until a reply says otherwise, it is tried again a second later.
    assert protocol.next_deadline() == 671.0
    command_id = protocol.refresh("new")
    assert sent(protocol) == [{"id": command_id, "refresh": {"token": "new"}}]
    assert protocol.receive(frame({"id": command_id, "refresh": {"expires": True, "ttl": 600}}),
                            670.5) == [Reply(command_id, "refresh", {"expires": True, "ttl": 600})]
    assert protocol.next_deadline() == 1240.5


def test_a_refresh_error_leaves_the_retry_in_place() -> None:
    protocol = _connected(now=0.0, ping=0, expires=True, ttl=600)
    assert protocol.fire_timers(570.0) == [RefreshDue("")]
    command_id = protocol.refresh("new")
    [event] = protocol.receive(frame({"id": command_id, "error": {"code": 100}}), 570.2)
    assert isinstance(event, ErrorReply)
    assert protocol.fire_timers(571.0) == [RefreshDue("")]


def test_a_malformed_refresh_reply_fails_and_leaves_the_retry_in_place() -> None:
    protocol = _connected(now=0.0, ping=0, expires=True, ttl=600)
    protocol.fire_timers(570.0)
    command_id = protocol.refresh("new")
    assert protocol.receive(frame({"id": command_id, "refresh": {"expires": "yes"}}), 570.1) == [
        MalformedReply(command_id, "refresh", "field 'expires' should be bool, got str")]
    assert protocol.next_deadline() == 571.0


def test_a_token_that_stops_expiring_needs_no_refresh() -> None:
    protocol = _connected(now=0.0, ping=0, expires=True, ttl=600)
    protocol.fire_timers(570.0)
    command_id = protocol.refresh("new")
    protocol.receive(frame({"id": command_id, "refresh": {}}), 570.1)
    assert protocol.next_deadline() is None


def test_each_subscription_token_is_refreshed_on_its_own() -> None:
    protocol = _connected(now=0.0, ping=0)
    a = protocol.subscribe("chat:a", "ta", now=0.0)
    b = protocol.subscribe("chat:b", "tb", now=0.0)
    protocol.receive(subscribe_reply(a, expires=True, ttl=100) + "\n"
                     + subscribe_reply(b, expires=True, ttl=200), 1.0)
    assert protocol.next_deadline() == 81.0
    assert protocol.fire_timers(81.0) == [RefreshDue("chat:a")]
    command_id = protocol.sub_refresh("chat:a", "ta2")
    protocol.receive(frame({"id": command_id, "sub_refresh": {"expires": True, "ttl": 100}}),
                     81.5)
    assert protocol.next_deadline() == 161.5  # chat:b's is due at 171
    assert protocol.fire_timers(171.0) == [RefreshDue("chat:a"), RefreshDue("chat:b")]
    assert protocol.next_deadline() == 172.0
    # An unsubscribed channel's token is refreshed no more.
    protocol.unsubscribe("chat:a")
    assert protocol.timers.fire(172.0) == [RefreshDue("chat:b")]
    protocol.forget("chat:b")
    assert protocol.next_deadline() is None


def test_a_sub_refresh_reply_for_a_channel_left_meanwhile_schedules_nothing() -> None:
    protocol = _connected(now=0.0, ping=0)
    command_id = protocol.sub_refresh("chat:gone", "t")
    protocol.receive(frame({"id": command_id, "sub_refresh": {"expires": True, "ttl": 60}}), 1.0)
    assert protocol.next_deadline() is None


def test_a_subscribe_answered_after_unsubscribing_schedules_no_refresh() -> None:
    protocol = _connected(now=0.0, ping=0)
    command_id = protocol.subscribe("chat:a", now=0.0)
    protocol.forget("chat:a")
    [event] = protocol.receive(subscribe_reply(command_id, expires=True, ttl=60), 1.0)
    assert isinstance(event, Subscribed)
    assert protocol.next_deadline() is None


# -- subscribe deadlines ----------------------------------------------------------------------


def test_subscribes_sent_together_time_out_together() -> None:
    protocol = _connected(now=0.0, ping=0)
    ids = [protocol.subscribe(f"chat:{n}", now=1.0) for n in range(4)]
    later = protocol.subscribe("chat:late", now=2.0)
    protocol.receive(subscribe_reply(ids[1]), 1.5)
    protocol.receive(frame({"id": ids[2], "error": {"code": 100, "temporary": True}}), 1.5)
    assert protocol.next_deadline() == 4.0
    assert protocol.fire_timers(3.9) == []
    assert protocol.fire_timers(4.0) == [SubscribeTimedOut(("chat:0", "chat:3"))]
    assert protocol.next_deadline() == 5.0
    protocol.receive(frame({"id": later, "subscribe": {"recoverable": 1}}), 4.5)  # malformed
    assert protocol.next_deadline() is None


def test_five_hundred_subscribes_share_one_deadline() -> None:
    protocol = _connected(now=0.0, ping=0)
    for n in range(500):
        protocol.subscribe(f"chat:{n}", now=1.0)
    assert protocol.fire_timers(4.0) == [
        SubscribeTimedOut(tuple(f"chat:{n}" for n in range(500)))]


def test_retries_after_a_transient_refusal_are_due_together() -> None:
    timers = Timers(POLICY)
    timers.resubscribe_at("chat:a", 3.0)
    timers.resubscribe_at("chat:b", 2.5)
    timers.resubscribe_at("chat:c", 9.0)
    assert timers.next_deadline() == 2.5
    assert timers.fire(3.0) == [ResubscribeDue(("chat:a", "chat:b"))]
    timers.forget("chat:c")
    assert timers.next_deadline() is None


def test_everything_due_at_once_is_reported_in_one_call() -> None:
    protocol = _connected(now=0.0, expires=True, ttl=10)
    protocol.subscribe("chat:a", now=0.0)
    protocol.timers.resubscribe_at("chat:b", 1.0)
    assert protocol.fire_timers(1000.0) == [
        LivenessLost(1000.0), SubscribeTimedOut(("chat:a",)), ResubscribeDue(("chat:b",)),
        RefreshDue("")]


def test_a_lost_connection_takes_its_deadlines_with_it() -> None:
    protocol = _connected(now=0.0, expires=True, ttl=600)
    protocol.subscribe("chat:a", now=0.0)
    protocol.timers.resubscribe_at("chat:b", 1.0)
    protocol.connection_lost()
    assert protocol.next_deadline() is None
    assert protocol.fire_timers(10_000.0) == []
