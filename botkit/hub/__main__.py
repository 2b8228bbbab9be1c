"""``python -m botkit.hub``: run the development hub."""

from botkit.hub.server import main

raise SystemExit(main())
