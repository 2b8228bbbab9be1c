"""The ``botkit`` command: ``run``, ``dev``, ``check``, ``token``, ``server``, ``schema`` and
``new``.

Exit codes: 0 after a clean run or stop, 1 when the runtime ends on a terminal error (for example
the server banned a bot), 2 when the configuration or a plugin is wrong (the server refusing the
key among them), or when another process runs on the state file. Expected errors are one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from botkit.cli import extras, reload, scaffold
from botkit.cli.logs import configure_logging
from botkit.cli.schema import print_schema
from botkit.cli.status import cluster_status
from botkit.config import BotsConfig, Bounds, OpsConfig, load_config
from botkit.errors import (
    ApiAuthError,
    BotkitError,
    ConfigError,
    PluginError,
    StateFileError,
    StateInUseError,
    TerminalDisconnectError,
)
from botkit.protocol.codes import DISCONNECT_INVALID_TOKEN
from botkit.redact import safe_url
from botkit.runtime.supervisor import Runtime, load_bots
from botkit.tokens import connection_token, subscription_token

__all__ = ["main", "run_main"]

log = logging.getLogger("botkit.cli")
EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
# What the operator must fix before starting (exit 2, one line); not a failure of the run.
_SETUP_ERRORS = (ConfigError, PluginError, StateFileError, StateInUseError)
# A test client's token may be short-lived (to see a refresh), never longer than bots.yaml
# allows; a shutdown may wait for in-flight work, not forever.
TOKEN_TTL = Bounds(1.0, 24 * 3600.0)
GRACE = Bounds(0.0, 3600.0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botkit",
                                     description="Chat bots for Xshathra Realtime rooms.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the bots of bots.yaml in the foreground")
    run.add_argument("-c", "--config", default="bots.yaml", help="path of bots.yaml")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--log-level", default="info",
                     choices=["debug", "info", "warning", "error"])
    run.add_argument("--grace", default="10s",
                     help="how long a shutdown may take to finish in-flight work, at most 1h "
                          "(default 10s)")
    run.add_argument("--reload", action="store_true",
                     help="restart the bots when a .py file or bots.yaml changes (needs "
                          "botkit[hub])")
    _ops_arguments(run)

    dev = commands.add_parser(
        "dev", help="serve the chat page and a local hub on one port, with the bots against it")
    dev.add_argument("-c", "--config", default="bots.yaml", help="path of bots.yaml")
    dev.add_argument("--port", type=_port,
                     help="the port of the page and the hub (default: dev.port of bots.yaml, "
                          "else 3001; 0 picks a free one)")
    dev.add_argument("--log-format", choices=["text", "json"], default="text")
    dev.add_argument("--log-level", default="info",
                     choices=["debug", "info", "warning", "error"])
    dev.add_argument("--grace", default="10s",
                     help="how long a shutdown may take to finish in-flight work, at most 1h "
                          "(default 10s)")
    dev.add_argument("--reload", action="store_true",
                     help="restart the hub and the bots when a .py file or bots.yaml changes")
    _ops_arguments(dev)

    check = commands.add_parser("check", help="validate bots.yaml and import the plugins")
    check.add_argument("-c", "--config", default="bots.yaml", help="path of bots.yaml")

    token = commands.add_parser("token", help="print a token for a test client")
    token.add_argument("--user", required=True, help="the user id (the token's sub)")
    token.add_argument("--channel", help="print a subscription token for this channel instead")
    token.add_argument("--ttl", default="15m",
                       help="lifetime, 1s to 24h, e.g. 30s, 15m, 1h (default 15m)")
    token.add_argument("-c", "--config", default="bots.yaml",
                       help="bots.yaml to read the key from (else XSHATHRA_SERVER_API_KEY)")

    server = commands.add_parser(
        "server", help="run a local Xshathra Realtime (Centrifugo, built once with Go)")
    server.add_argument("--port", type=int, default=3001)

    commands.add_parser("schema", help="print the JSON Schema of bots.yaml (for editors)")

    status = commands.add_parser(
        "status", help="print the replicas and the rooms each serves (needs cluster:)")
    status.add_argument("-c", "--config", default="bots.yaml", help="path of bots.yaml")

    new = commands.add_parser("new", help="write bots/NAME.py and tests/bots/test_NAME.py")
    new.add_argument("name", help="the bot's name, a Python identifier, e.g. dice_roller")
    new.add_argument("--dir", default=".", help="the project folder (default: this one)")
    return parser


def _ops_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ops-port", type=_port,
                        help="serve /healthz, /readyz and /metrics on this port (overrides "
                             "ops.port of bots.yaml; 0 picks a free one)")
    parser.add_argument("--ops-host",
                        help="the address of that endpoint (default: ops.host of bots.yaml, "
                             "else 127.0.0.1)")


def _ops_address(args: argparse.Namespace, config: BotsConfig) -> tuple[str, int] | None:
    """Where the ops endpoint listens: ``ops:`` of bots.yaml, overridden by the options;
    None (no endpoint) when neither asks for it."""
    if config.ops is None and args.ops_port is None and args.ops_host is None:
        return None
    ops = config.ops or OpsConfig()
    if args.ops_host is not None:
        try:
            ops = OpsConfig(host=args.ops_host, port=ops.port)
        except ValueError:
            raise ConfigError(f"--ops-host: {args.ops_host!r} is not a host name or IP "
                              "address, e.g. 127.0.0.1") from None
    return ops.host, ops.port if args.ops_port is None else args.ops_port


def _with_ops(address: tuple[str, int] | None, get_runtime: Callable[[], Runtime | None],
              run: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """``run``, with the ops endpoint serving around it when ``address`` is given."""
    if address is None:
        return run

    async def run_with_ops() -> None:
        from botkit.ops import serve_ops  # prometheus-client only when asked for

        async with serve_ops(*address, get_runtime):
            await run()
    return run_with_ops


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0 to 65535)")
    return port


def _duration(text: str, option: str, bounds: Bounds) -> float:
    """An option's duration, read by bots.yaml's parser; ConfigError (exit 2) if it is wrong."""
    try:
        return bounds.parse(text)
    except ValueError as exc:
        raise ConfigError(str(exc), field=option) from None


def _refused_key(error: BaseException, config: BotsConfig) -> ConfigError | None:
    """A ConfigError at ``xshathra.server_api_key`` if the server refused the key (the bots'
    tokens, or the API's requests), found along ``error``'s causes; else None."""
    pending: list[BaseException] = [error]
    while pending:
        seen = pending.pop()
        what = None
        if isinstance(seen, TerminalDisconnectError) and seen.code == DISCONNECT_INVALID_TOKEN:
            what = "the server refused the bots' tokens signed with it"
        elif isinstance(seen, ApiAuthError):
            what = "the server API refused it"
        if what is not None:
            return config.source.error(("xshathra", "server_api_key"),
                                       f"{what}; set it to the project's server API key")
        if isinstance(seen, BaseExceptionGroup):  # the runner's TaskGroup wraps what failed
            pending.extend(seen.exceptions)
        if seen.__cause__ is not None:
            pending.append(seen.__cause__)
    return None


def _load(path: str) -> BotsConfig:
    return load_config(path)


def _cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    loaded = load_bots(config, search_path=Path(args.config).resolve().parent)
    print(f"{args.config}: OK — project {config.xshathra.project_id}, {len(loaded)} bot(s)")
    for each in loaded:
        plugin = each.config.plugin or "no plugin"
        print(f"\n{each.config.name} ({plugin}) as {each.config.user_id}")
        for room, channel in each.config.channels(config.xshathra.project_id).items():
            print(f"  room {room}: {channel}")
        for route in each.bot.routes:
            label = (route.command.usage if route.command is not None
                     else f"match /{route.pattern.pattern}/" if route.pattern is not None
                     else f"on {route.event_type}")
            print(f"  {label} → {route.name}")
        for index, schedule in enumerate(each.config.schedules):
            when = f"cron {schedule.cron}" if schedule.cron else f"every {schedule.every:g}s"
            print(f"  schedules[{index}]: {when}: {schedule.text!r}")
        for spec in each.bot.schedules:
            print(f"  scheduled {spec.key} ({spec.trigger})")
    disabled = [bot.name for bot in config.bots if not bot.enabled]
    if disabled:
        print(f"\ndisabled: {', '.join(disabled)}")
    return EXIT_OK


def _cmd_token(args: argparse.Namespace) -> int:
    ttl = _duration(args.ttl, "--ttl", TOKEN_TTL)
    secret = os.environ.get("XSHATHRA_SERVER_API_KEY", "")
    if Path(args.config).is_file():
        secret = _load(args.config).xshathra.server_api_key.get_secret_value()
    if not secret:
        raise ConfigError("no key to sign with: set XSHATHRA_SERVER_API_KEY or pass -c "
                          "bots.yaml")
    if args.channel:
        print(subscription_token(secret, args.user, args.channel, ttl=ttl))
    else:
        print(connection_token(secret, args.user, ttl=ttl))
    return EXIT_OK


async def _until_signal(run: Callable[[], Awaitable[None]], stop: Callable[[], None]) -> None:
    """``await run()``, with SIGINT and SIGTERM calling ``stop`` (a graceful stop)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    try:
        await run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _cmd_run(args: argparse.Namespace) -> int:
    grace = _duration(args.grace, "--grace", GRACE)
    if args.reload:
        return _reloading(args, grace)
    configure_logging(fmt=args.log_format, level=args.log_level)
    config = _load(args.config)
    loaded = load_bots(config, search_path=Path(args.config).resolve().parent)
    if not loaded:
        raise ConfigError("no enabled bots to run", path=args.config)
    runtime = Runtime(config, loaded, grace=grace)
    log.debug("running %d bot(s) on %s (server API %s)", len(loaded),
              safe_url(config.xshathra.realtime_url), safe_url(config.xshathra.api_url))
    try:
        asyncio.run(_until_signal(_with_ops(_ops_address(args, config), lambda: runtime,
                                            runtime.run), runtime.stop))
    except _SETUP_ERRORS:
        raise
    except BotkitError as exc:
        refused = _refused_key(exc, config)
        if refused is not None:
            raise refused from None
        log.error("stopped: %s", exc)
        return EXIT_FAILED
    log.info("stopped")
    return EXIT_OK


def _cmd_dev(args: argparse.Namespace) -> int:
    extras.require("botkit dev", ("starlette", "uvicorn"))
    from botkit.dev.command import DevServer, dev_environment  # uvicorn and Starlette only for dev

    grace = _duration(args.grace, "--grace", GRACE)
    if args.reload:
        return _reloading(args, grace)
    configure_logging(fmt=args.log_format, level=args.log_level)
    environ, made_up = dev_environment(os.environ)
    config = load_config(args.config, environ=environ)
    loaded = load_bots(config, search_path=Path(args.config).resolve().parent)
    key = config.xshathra.server_api_key.get_secret_value()
    if made_up is not None and key == made_up:
        # Made up here, so safe to show, and needed for `botkit token` or a second client.
        # A key the user supplied is never printed.
        print(f"XSHATHRA_SERVER_API_KEY is not set; server_api_key for this run: {key}",
              flush=True)
    port = config.dev.port if args.port is None else args.port
    server = DevServer(config, loaded, port=port, grace=grace,
                       log_level=args.log_level)

    def ready(dev: DevServer) -> None:
        print(f"Chat page: {dev.page_url}", flush=True)

    try:
        asyncio.run(_until_signal(_with_ops(_ops_address(args, config),
                                            lambda: server.runtime,
                                            lambda: server.run(on_ready=ready)), server.stop))
    except _SETUP_ERRORS:
        raise
    except BotkitError as exc:
        log.error("stopped: %s", exc)
        return EXIT_FAILED
    log.info("stopped")
    return EXIT_OK


def _reloading(args: argparse.Namespace, grace: float) -> int:
    extras.require("--reload", ("watchfiles",))
    return asyncio.run(reload.supervise(args.command, reload.child_argv(args.argv),
                                        config=Path(args.config), grace=grace))


def _cmd_schema(args: argparse.Namespace) -> int:
    return print_schema()


def _cmd_status(args: argparse.Namespace) -> int:
    return cluster_status(_load(args.config))


def _cmd_new(args: argparse.Namespace) -> int:
    written = scaffold.new_bot(args.name, Path(args.dir))
    for path in written:
        print(f"wrote {path}")
    print(f"\nAdd it to bots.yaml, under bots:\n\n{scaffold.bots_yaml_entry(args.name)}\n"
          f"Then: botkit check, and python -m pytest tests/bots/test_{args.name}.py")
    return EXIT_OK


def _cmd_server(args: argparse.Namespace) -> int:
    from botkit.dev.localserver import LocalCentrifugo, ServerSettings

    configure_logging()
    key = os.environ.get("XSHATHRA_SERVER_API_KEY")
    settings = ServerSettings(port=args.port)
    if key:
        settings = ServerSettings(port=args.port, api_key=key)
    server = LocalCentrifugo(settings)
    server.start()
    print(f"Xshathra Realtime (Centrifugo) on {server.ws_url} and {server.api_url}", flush=True)
    if not key:
        print(f"server_api_key for this run: {settings.api_key}", flush=True)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # sigwait needs them blocked
    try:
        signal.sigwait(stop_signals)
    finally:
        server.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # --reload runs the same command line again, without --reload
    handlers = {"run": _cmd_run, "dev": _cmd_dev, "check": _cmd_check, "token": _cmd_token,
                "server": _cmd_server, "schema": _cmd_schema, "new": _cmd_new,
                "status": _cmd_status}
    try:
        return handlers[args.command](args)
    except _SETUP_ERRORS as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BotkitError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return EXIT_FAILED


def run_main() -> None:
    """Console-script entry point."""
    sys.exit(main())
