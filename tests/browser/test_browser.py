"""The chat page in a real browser: headless Chromium (Debian's ``chromium``, driven by
Playwright with that executable; Playwright's own browser downloads are never used) against
``botkit dev`` with the example welcome and commands bots.

A person opens the page, joins the lobby, is greeted by the welcome bot, sends ``/ping`` and sees
``pong``. The page is saved as a screenshot: to ``docs/chat-page.png`` with
``BOTKIT_SCREENSHOT=1`` (the picture the README shows), else to the test's tmp folder. Without
Chromium or Playwright the test is skipped locally and fails in CI (``CI`` set).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from botkit.dev.hub.backend import user_id_for_name
from tests.support.dev import ROOT, dev_process, dev_yaml

if TYPE_CHECKING:
    from playwright.async_api import Browser

pytestmark = pytest.mark.browser

SCREENSHOT = ROOT / "docs" / "chat-page.png"
VIEWPORT = {"width": 1100, "height": 750}
WAIT_MS = 15_000  # every browser-side wait; the bots answer within milliseconds locally
CLOSE_TIMEOUT = 15.0
KEY = "browser-test-key-" + "k" * 32


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        # CI must run the browser test; a missing browser fails the run, never skips it.
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _chromium() -> str:
    path = os.environ.get("BOTKIT_CHROMIUM") or shutil.which("chromium")
    if not path:
        _unavailable("the browser test needs Debian's chromium and none is on PATH: "
                     "apt-get install chromium (scripts/test does it when run as root)")
    assert path is not None
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = _chromium()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the browser test needs Playwright: pip install -e '.[dev]'")
        raise
    async with async_playwright() as playwright:
        # Playwright runs Chromium without its sandbox by default, which root needs anyway.
        browser = await playwright.chromium.launch(executable_path=executable, headless=True,
                                                   timeout=WAIT_MS * 2)
        try:
            yield browser
        finally:
            # Playwright kills the browser's process group on close; bounded all the same.
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await browser.close()


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


async def test_person_joins_is_greeted_and_gets_pong(browser: Browser, tmp_path: Path) -> None:
    from playwright.async_api import expect

    config = tmp_path / "bots.yaml"
    config.write_text(dev_yaml(project_id="proj_browser"))
    env = {**os.environ, "TEST_KEY": KEY}
    async with dev_process(config, env=env, log=tmp_path / "dev.log") as dev:
        context = await browser.new_context(viewport=VIEWPORT, device_scale_factor=1,
                                            locale="en-GB", timezone_id="UTC")
        page = await context.new_page()
        page.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        page.on("console", lambda message: errors.append(f"console: {message.text}")
                if message.type == "error" else None)
        page.on("response", lambda response: errors.append(
            f"HTTP {response.status}: {response.url}") if response.status >= 400 else None)

        await page.goto(dev.page_url)
        await expect(page.locator("#status")).to_have_text("Not connected")
        await page.fill("#name", "Ada")
        await page.fill("#room", "lobby")
        await page.click("#join")
        await expect(page.locator("#status")).to_have_text("Connected", timeout=WAIT_MS)

        user_id = user_id_for_name("Ada")
        messages = page.locator("[data-testid=message]")
        greeting = page.locator('[data-testid=message][data-sender-id="bot_welcome"]')
        await expect(greeting).to_have_count(1, timeout=WAIT_MS)
        await expect(greeting.locator("[data-testid=text]")).to_have_text(
            "Welcome, Ada! Say /help to see what the bots can do.")  # by the token's name
        await expect(greeting.locator("[data-testid=sender]")).to_have_text("bot_welcome")
        await expect(greeting).to_have_class("message bot")

        online = page.locator("#online [data-testid=online-user]")
        await expect(page.locator(f'#online [data-user-id="{user_id}"]')).to_have_text(
            "Ada (you)")
        await expect(online).to_have_count(3)  # Ada and the two bots, subscribed to the lobby
        await expect(page.locator("#online-count")).to_have_text("(3)")

        await page.fill("#text", "/ping")
        await page.click("#send")
        mine = page.locator(f'[data-testid=message][data-sender-id="{user_id}"]')
        await expect(mine.locator("[data-testid=text]")).to_have_text("/ping")
        await expect(mine.locator("[data-testid=sender]")).to_have_text("Ada")
        pong = page.locator('[data-testid=message][data-sender-id="bot_commands"]')
        await expect(pong.locator("[data-testid=text]")).to_have_text("pong")
        await expect(pong.locator("[data-testid=sender]")).to_have_text("bot_commands")
        await expect(page.locator("#text")).to_have_value("")  # sent, so cleared
        await expect(page.locator("#send-error")).to_be_hidden()

        # In stream order: the greeting, the question, the answer.
        await expect(messages.locator("[data-testid=text]")).to_have_text(
            ["Welcome, Ada! Say /help to see what the bots can do.", "/ping", "pong"])
        assert errors == []

        shot = SCREENSHOT if os.environ.get("BOTKIT_SCREENSHOT") == "1" else (
            tmp_path / "chat-page.png")
        await page.locator("#text").blur()  # no caret or focus ring in the picture
        await page.screenshot(path=str(shot), animations="disabled", caret="hide")
        assert _png_size(shot) == (VIEWPORT["width"], VIEWPORT["height"])

        # A graceful stop with the page still open: the page is told (3001 "shutdown") and
        # shows that it is reconnecting, and botkit dev exits 0 without waiting on it.
        started = asyncio.get_running_loop().time()
        assert await dev.stop() == 0
        assert asyncio.get_running_loop().time() - started < 10
        await expect(page.locator("#status")).to_contain_text("Connection lost")
        await context.close()
