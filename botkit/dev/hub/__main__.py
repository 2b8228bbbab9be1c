"""``python -m botkit.dev.hub``: run the development hub."""

from botkit.dev.hub.server import main

raise SystemExit(main())
