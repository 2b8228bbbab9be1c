"""The dev chat backend of ``botkit dev``: the dev login and the moderated send.

Most tests mount ``backend_routes`` in a bare Starlette app and drive it over ASGI with a
recording publisher; the last one publishes through the real server API to a real subscriber.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from botkit.config import DevConfig, parse_config
from botkit.dev.hub.backend import (
    SEND_PATH,
    TOKEN_PATH,
    DevSettings,
    backend_routes,
    user_id_for_name,
)
from botkit.dev.hub.moderation import RateLimiter, WordFilter
from botkit.dev.localserver import LocalCentrifugo
from botkit.envelope import ChatMessage, parse_envelope
from botkit.errors import ApiUnavailableError
from botkit.protocol import Publication
from botkit.realtime import RealtimeClient
from botkit.serverapi.client import PublishResult, ServerApi
from botkit.tokens import connection_token, subscription_token
from botkit.ulid import is_ulid

SECRET = "test-secret-" + "k" * 64  # long enough for HS512 too (pyjwt warns otherwise)
PROJECT = "proj_test"
ENVELOPE_KEYS = {"type", "id", "roomId", "senderId", "text", "sentAt"}


class RecordingPublisher:
    """Records what the backend publishes. Unlike the server it does not deduplicate by
    idempotency key, so a backend that published a retry twice would be caught."""

    def __init__(self) -> None:
        self.published: list[tuple[str, Any, str | None]] = []
        self.failures = 0  # how many of the next publishes fail
        self.gate: asyncio.Event | None = None  # when set, publishes wait for it

    async def publish(self, channel: str, data: Any, *,
                      idempotency_key: str | None = None) -> PublishResult:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise ApiUnavailableError("publish: the server API kept failing")
        self.published.append((channel, data, idempotency_key))
        return PublishResult(len(self.published), "epoch1")

    @property
    def texts(self) -> list[str]:
        return [data["text"] for _, data, _ in self.published]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def chat(dev: DevConfig | None = None, publisher: Any = None, clock: Any = None,
               secret: str = SECRET, ttl: float = 600.0) -> AsyncIterator[httpx.AsyncClient]:
    settings = DevSettings(project_id=PROJECT, secret=secret, token_ttl=ttl,
                           dev=dev or DevConfig())
    routes = backend_routes(settings, publisher or RecordingPublisher(),
                            clock=clock or time.monotonic)
    app = Starlette(routes=routes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://hub.test") as client:
        yield client


async def login(http: httpx.AsyncClient, name: str = "Alice", room: str | None = None) -> Any:
    body = {"name": name} if room is None else {"name": name, "room": room}
    response = await http.post(TOKEN_PATH, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def send(http: httpx.AsyncClient, token: str, text: str = "hello", room: str = "lobby",
               **extra: Any) -> httpx.Response:
    return await http.post(SEND_PATH, json={"roomId": room, "text": text, **extra},
                           headers={"Authorization": f"Bearer {token}"})


# --- the dev login ----------------------------------------------------------------------------

async def test_login_issues_a_connection_token_for_a_stable_user() -> None:
    async with chat(ttl=900) as http:
        answer = await login(http, "  Alice  ")
        claims = jwt.decode(answer["token"], SECRET, algorithms=["HS256"])
        assert claims["sub"] == answer["userId"] == user_id_for_name("Alice")
        assert answer["userId"].startswith("user_alice_")
        assert claims["info"] == {"name": "Alice"}  # trimmed: shown in presence and joins
        assert claims["exp"] - claims["iat"] == answer["expiresIn"] == 900
        assert "channel" not in claims
        assert "subscriptionToken" not in answer
        # The same name in another letter case is the same user; another name is not.
        assert (await login(http, "ALICE"))["userId"] == answer["userId"]
        assert (await login(http, "Alicia"))["userId"] != answer["userId"]


async def test_login_with_a_room_adds_a_subscription_token() -> None:
    async with chat() as http:
        answer = await login(http, "Bob", room="lobby")
        claims = jwt.decode(answer["subscriptionToken"], SECRET, algorithms=["HS256"])
        assert claims["sub"] == answer["userId"]
        assert claims["channel"] == answer["channel"] == f"chat:{PROJECT}:lobby"
        assert answer["room"] == "lobby"


def test_user_ids_are_valid_ids_and_never_look_like_bots() -> None:
    names = ["Zoë", "Zoe!", "Зоя", "bot_welcome", "a" * 32, "x y"]
    ids = [user_id_for_name(name) for name in names]
    assert len(set(ids)) == len(ids)  # names that slug alike stay apart
    for user_id in ids:
        assert user_id.startswith("user_")
        assert len(user_id) <= 40
        assert user_id.replace("_", "").isalnum()
        assert user_id.isascii()


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"name": ""}, 422, "invalid_name"),
    ({"name": "   "}, 422, "invalid_name"),
    ({"name": "x" * 33}, 422, "invalid_name"),
    ({"name": "bell\x07"}, 422, "invalid_name"),
    ({"name": "two\nlines"}, 422, "invalid_name"),
    ({"name": "Alice", "room": "no spaces"}, 422, "invalid_room"),
    ({"name": "Alice", "room": "chat:other"}, 422, "invalid_room"),
    ({"name": 42}, 400, "bad_request"),
    ({}, 400, "bad_request"),
    ({"name": "Alice", "room": ["lobby"]}, 400, "bad_request"),
    (["Alice"], 400, "bad_request"),
])
async def test_bad_login_is_refused(body: Any, status: int, code: str) -> None:
    async with chat() as http:
        response = await http.post(TOKEN_PATH, json=body)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert response.json()["message"]


async def test_longest_name_and_unicode_names_are_fine() -> None:
    async with chat() as http:
        assert (await login(http, "x" * 32))["name"] == "x" * 32
        assert (await login(http, "Zoë Ø"))["name"] == "Zoë Ø"


async def test_login_needs_a_json_post() -> None:
    async with chat() as http:
        assert (await http.get(TOKEN_PATH)).status_code == 405
        form = await http.post(TOKEN_PATH, data={"name": "Alice"})
        assert (form.status_code, form.json()["error"]) == (415, "unsupported_media_type")
        broken = await http.post(TOKEN_PATH, content=b"{name",
                                 headers={"Content-Type": "application/json"})
        assert (broken.status_code, broken.json()["error"]) == (400, "bad_request")
        huge = await http.post(TOKEN_PATH, json={"name": "A", "pad": "x" * 10_000})
        assert (huge.status_code, huge.json()["error"]) == (413, "payload_too_large")


# --- sending ------------------------------------------------------------------------------------

async def test_send_publishes_a_seed_shaped_envelope() -> None:
    publisher = RecordingPublisher()
    async with chat(publisher=publisher) as http:
        alice = await login(http, "Alice")
        response = await send(http, alice["token"], "  hello there \n")
    assert response.status_code == 200, response.text
    [(channel, data, key)] = publisher.published
    assert channel == f"chat:{PROJECT}:lobby"
    assert set(data) == ENVELOPE_KEYS
    assert data["type"] == "chat.message"
    assert data["roomId"] == "lobby"
    assert data["senderId"] == alice["userId"]
    assert data["text"] == "hello there"
    assert is_ulid(data["id"])
    assert data["sentAt"].endswith("Z")
    assert abs(parse_envelope(data).sent_at.timestamp() - time.time()) < 5
    assert isinstance(parse_envelope(data), ChatMessage)
    assert key is None  # no clientMessageId: the publisher makes up its own key
    answer = response.json()
    assert answer == {"id": data["id"], "message": data, "offset": 1, "epoch": "epoch1"}


async def test_the_sender_is_the_token_never_the_body() -> None:
    publisher = RecordingPublisher()
    async with chat(publisher=publisher) as http:
        mallory = await login(http, "Mallory")
        response = await send(http, mallory["token"], "I am the admin",
                              senderId="bot_admin", sender_id="user_alice", userId="bot_admin")
    assert response.status_code == 200
    assert publisher.published[0][1]["senderId"] == mallory["userId"]


@pytest.mark.parametrize("auth", [
    None,
    "Basic dXNlcjpwYXNz",
    "Bearer",
    "Bearer not-a-jwt",
    "Bearer " + connection_token("another-secret-" + "x" * 24, "user_alice"),
    "Bearer " + connection_token(SECRET, "user_alice", ttl=60, now=time.time() - 3600),
    # A subscription token is signed with the same key but is no proof of identity.
    "Bearer " + subscription_token(SECRET, "user_alice", f"chat:{PROJECT}:lobby"),
    "Bearer " + jwt.encode({"sub": "user_alice"}, SECRET, algorithm="HS256"),  # no exp
    "Bearer " + jwt.encode({"sub": "", "exp": int(time.time()) + 60}, SECRET,
                           algorithm="HS256"),
    "Bearer " + jwt.encode({"sub": "user_alice", "exp": int(time.time()) + 60}, SECRET,
                           algorithm="HS512"),
])
async def test_bad_token_is_401(auth: str | None) -> None:
    publisher = RecordingPublisher()
    headers = {} if auth is None else {"Authorization": auth}
    async with chat(publisher=publisher) as http:
        response = await http.post(SEND_PATH, json={"roomId": "lobby", "text": "hi"},
                                   headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert publisher.published == []


async def test_expired_token_says_so() -> None:
    async with chat() as http:
        token = connection_token(SECRET, "user_alice", ttl=60, now=time.time() - 3600)
        response = await send(http, token)
    assert "expired" in response.json()["message"]


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"roomId": "lobby", "text": ""}, 422, "invalid_text"),
    ({"roomId": "lobby", "text": " \n\t "}, 422, "invalid_text"),
    ({"roomId": "lobby", "text": "x" * 101}, 422, "text_too_long"),
    ({"roomId": "lobby", "text": "nul\x00byte"}, 422, "invalid_text"),
    ({"roomId": "bad room", "text": "hi"}, 422, "invalid_room"),
    ({"roomId": "", "text": "hi"}, 422, "invalid_room"),
    ({"roomId": "lobby", "text": "hi", "clientMessageId": "has space"}, 422,
     "invalid_client_message_id"),
    ({"roomId": "lobby"}, 400, "bad_request"),
    ({"text": "hi"}, 400, "bad_request"),
    ({"roomId": "lobby", "text": 5}, 400, "bad_request"),
    ({"roomId": "lobby", "text": "hi", "clientMessageId": 7}, 400, "bad_request"),
])
async def test_invalid_send_is_refused(body: Any, status: int, code: str) -> None:
    publisher = RecordingPublisher()
    async with chat(DevConfig(max_text_length=100), publisher) as http:
        token = (await login(http))["token"]
        response = await http.post(SEND_PATH, json=body,
                                   headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert publisher.published == []


async def test_text_at_the_limit_and_multiline_text_pass() -> None:
    publisher = RecordingPublisher()
    async with chat(DevConfig(max_text_length=100), publisher) as http:
        token = (await login(http))["token"]
        assert (await send(http, token, "x" * 100)).status_code == 200
        assert (await send(http, token, "line 1\n\tline 2")).status_code == 200
    assert publisher.texts == ["x" * 100, "line 1\n\tline 2"]


# --- moderation -----------------------------------------------------------------------------

async def test_rate_limit_then_allowed_after_the_window() -> None:
    clock = FakeClock()
    publisher = RecordingPublisher()
    dev = DevConfig(rate_limit={"messages": 3, "per": 10})  # type: ignore[arg-type]
    async with chat(dev, publisher, clock) as http:
        alice, bob = (await login(http, "Alice"))["token"], (await login(http, "Bob"))["token"]
        for index in range(3):
            clock.now += 1
            assert (await send(http, alice, f"m{index}")).status_code == 200
        clock.now += 1  # 3 s after the first message
        limited = await send(http, alice, "too fast")
        assert limited.status_code == 429
        assert limited.json()["error"] == "rate_limited"
        assert limited.json()["retryAfter"] == pytest.approx(7.0)
        assert limited.headers["Retry-After"] == "7"
        # Per sender: Bob is not slowed down by Alice.
        assert (await send(http, bob, "bob here")).status_code == 200
        clock.now += 6.5  # still inside the window of the first message
        assert (await send(http, alice, "still fast")).status_code == 429
        clock.now += 0.5  # the first message left the window: one slot is free
        assert (await send(http, alice, "m3")).status_code == 200
        assert (await send(http, alice, "m4")).status_code == 429
    assert publisher.texts == ["m0", "m1", "m2", "bob here", "m3"]


async def test_failed_publish_is_502_and_does_not_count() -> None:
    publisher = RecordingPublisher()
    dev = DevConfig(rate_limit={"messages": 1, "per": 60})  # type: ignore[arg-type]
    async with chat(dev, publisher, FakeClock()) as http:
        token = (await login(http))["token"]
        publisher.failures = 1
        failed = await send(http, token, "first try")
        assert (failed.status_code, failed.json()["error"]) == (502, "publish_failed")
        assert (await send(http, token, "second try")).status_code == 200
    assert publisher.texts == ["second try"]


@pytest.mark.parametrize(("text", "word"), [
    ("buy SPAM now", "spam"),
    ("Spam!", "spam"),
    ("this is a Scam.", "Scam"),
    ("please buy\n   NOW", "buy now"),
    ("\uff33\uff30\uff21\uff2d", "spam"),  # fullwidth SPAM is the same word after NFKC
])
async def test_blocked_words_are_422_with_the_reason(text: str, word: str) -> None:
    publisher = RecordingPublisher()
    async with chat(DevConfig(blocked_words=["spam", "Scam", "buy now"]), publisher) as http:
        response = await send(http, (await login(http))["token"], text)
    assert response.status_code == 422
    assert response.json()["error"] == "blocked_word"
    assert response.json()["word"] == word
    assert repr(word) in response.json()["message"]
    assert publisher.published == []


@pytest.mark.parametrize("text", ["spammer", "antispam", "scampi", "buy it now", "hello"])
async def test_only_whole_blocked_words_count(text: str) -> None:
    publisher = RecordingPublisher()
    async with chat(DevConfig(blocked_words=["spam", "scam", "buy now"]), publisher) as http:
        response = await send(http, (await login(http))["token"], text)
    assert response.status_code == 200
    assert publisher.texts == [text]


def test_word_filter_and_rate_limiter_on_their_own() -> None:
    assert WordFilter([]).find("anything") is None
    assert WordFilter(["c++"]).find("I like C++ a lot") == "c++"
    assert WordFilter(["buy", "buy now"]).find("buy now!") == "buy now"
    clock = FakeClock()
    limiter = RateLimiter(2, 5.0, clock=clock)
    assert [limiter.acquire("a"), limiter.acquire("a")] == [0.0, 0.0]
    assert limiter.acquire("a") == 5.0
    limiter.refund("a")
    assert limiter.acquire("a") == 0.0
    clock.now += 5
    assert limiter.acquire("a") == 0.0


# --- idempotency ----------------------------------------------------------------------------

async def test_retried_send_is_published_once() -> None:
    publisher = RecordingPublisher()
    async with chat(publisher=publisher) as http:
        alice, bob = (await login(http, "Alice"))["token"], (await login(http, "Bob"))["token"]
        first = await send(http, alice, "once", clientMessageId="c-1")
        retry = await send(http, alice, "once", clientMessageId="c-1")
        # Another user's (or another room's) message with the same client id is its own.
        other_user = await send(http, bob, "bob's", clientMessageId="c-1")
        other_room = await send(http, alice, "elsewhere", room="garden", clientMessageId="c-1")
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    assert publisher.texts == ["once", "bob's", "elsewhere"]
    keys = [key for _, _, key in publisher.published]
    assert all(keys)  # the server deduplicates by these, too
    assert len(set(keys)) == 3
    assert other_user.json()["id"] != first.json()["id"] != other_room.json()["id"]


async def test_double_click_while_the_first_is_in_flight_publishes_once() -> None:
    publisher = RecordingPublisher()
    publisher.gate = asyncio.Event()
    async with chat(publisher=publisher) as http:
        token = (await login(http))["token"]
        both = asyncio.gather(send(http, token, "dbl", clientMessageId="c-2"),
                              send(http, token, "dbl", clientMessageId="c-2"))
        await asyncio.sleep(0.05)
        publisher.gate.set()
        first, second = await both
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert publisher.texts == ["dbl"]


async def test_refused_send_is_not_remembered() -> None:
    clock = FakeClock()
    publisher = RecordingPublisher()
    dev = DevConfig(rate_limit={"messages": 1, "per": 10})  # type: ignore[arg-type]
    async with chat(dev, publisher, clock) as http:
        token = (await login(http))["token"]
        assert (await send(http, token, "a", clientMessageId="c-a")).status_code == 200
        assert (await send(http, token, "b", clientMessageId="c-b")).status_code == 429
        clock.now += 10
        # The retry of the refused message goes through once the window allows it.
        assert (await send(http, token, "b", clientMessageId="c-b")).status_code == 200
    assert publisher.texts == ["a", "b"]


def test_settings_from_bots_yaml() -> None:
    config = parse_config(
        "xshathra:\n  project_id: proj_9\n  realtime_url: ws://localhost:3001/x\n"
        "  api_url: http://localhost:3001/api/realtime\n  server_api_key: k3y-Value-12345\n"
        "  token_ttl: 5m\nbots: []\ndev: {blocked_words: [spam]}\n")
    settings = DevSettings.from_config(config)
    assert (settings.project_id, settings.secret, settings.token_ttl) == (
        "proj_9", "k3y-Value-12345", 300.0)
    assert settings.dev.blocked_words == ["spam"]
    assert "k3y" not in repr(settings)


# --- against the real server ------------------------------------------------------------------

async def next_publication(client: RealtimeClient, timeout: float = 5.0) -> Publication:
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event()
            if isinstance(event, Publication):
                return event


@pytest.mark.server
async def test_sent_message_reaches_a_subscriber_through_the_real_server(
        centrifugo: LocalCentrifugo) -> None:
    room = f"room_{secrets.token_hex(4)}"
    settings = DevSettings(project_id=PROJECT, secret=centrifugo.api_key)
    async with ServerApi(centrifugo.api_url, centrifugo.api_key) as api:
        app = Starlette(routes=backend_routes(settings, api))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://hub.test") as http:
            alice = await login(http, "Alice", room=room)
            bob = await login(http, "Bob", room=room)
            # Bob connects and subscribes (the room is locked) with what the login gave him.
            async with RealtimeClient(centrifugo.ws_url, lambda: bob["token"],
                                      lambda channel: bob["subscriptionToken"]) as client:
                await client.subscribe(bob["channel"])
                presence = await api.presence(bob["channel"])
                assert [info.conn_info for info in presence.values()] == [{"name": "Bob"}]
                sent = await send(http, alice["token"], "hi Bob", room=room,
                                  clientMessageId="m-1")
                assert sent.status_code == 200, sent.text
                publication = await next_publication(client)
                assert publication.data == sent.json()["message"]
                assert publication.data["senderId"] == alice["userId"]
                assert publication.offset == sent.json()["offset"] == 1
                assert publication.info is None  # published by the backend, not a client
                # A retried send publishes nothing new.
                assert (await send(http, alice["token"], "hi Bob", room=room,
                                   clientMessageId="m-1")).json() == sent.json()
                history = await api.history(bob["channel"], limit=10)
                assert [p.data["text"] for p in history.publications] == ["hi Bob"]
