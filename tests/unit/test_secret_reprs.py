"""The settings of the local servers never show their key: not in a repr, so not in a log line
or an error that shows the settings."""

from __future__ import annotations

import logging

from botkit.cli.logs import JsonFormatter
from botkit.dev.hub.settings import HubSettings
from botkit.dev.localserver import ServerSettings

KEY = "k3y-" + "s" * 28


def test_server_and_hub_settings_hide_the_key() -> None:
    for settings in (ServerSettings(api_key=KEY), HubSettings(api_key=KEY)):
        assert KEY not in repr(settings)
        assert KEY not in str(settings)
        assert "port=" in repr(settings)  # the rest is still shown
        assert settings.api_key == KEY
    config = HubSettings(api_key=KEY).config()
    assert KEY not in repr(config)
    assert config.api_key == KEY


def test_settings_passed_to_a_json_log_line_hide_the_key() -> None:
    record = logging.makeLogRecord({"msg": "hub %s", "args": (HubSettings(api_key=KEY),),
                                    "settings": HubSettings(api_key=KEY).config()})
    line = JsonFormatter().format(record)
    assert "port=" in line
    assert KEY not in line
