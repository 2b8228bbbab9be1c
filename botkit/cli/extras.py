"""Optional dependencies: which extra of botkit a command needs, said in one line.

A production install (``pip install botkit``) runs ``botkit run`` only; the dev hub's web stack
and the file watcher of ``--reload`` come with ``pip install 'botkit[hub]'``.
"""

from __future__ import annotations

import importlib

from botkit.errors import ConfigError

__all__ = ["HUB_EXTRA", "require"]

HUB_EXTRA = "hub"


def require(what: str, modules: tuple[str, ...], extra: str = HUB_EXTRA) -> None:
    """ConfigError (exit 2, one line) naming the extra to install if a module is missing."""
    missing = []
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"{what} needs {', '.join(missing)}, which a plain install leaves "
                          f"out: pip install 'botkit[{extra}]'")
