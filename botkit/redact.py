"""What may be shown of a URL: never its userinfo, never the value of a credential in its query.

Realtime and server API URLs end up in logs, errors and reprs. An operator may put a password in
them (``wss://bot:secret@host/...``, a proxy URL, ``?api_key=...`` which Centrifugo accepts), so
every place that shows a URL shows :func:`safe_url` of it instead.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "safe_url"]

REDACTED = "***"

# Query parameters that carry a credential (Centrifugo accepts the API key as ?api_key=).
_SECRET_PARAMS = frozenset({"api_key", "apikey", "key", "token", "access_token", "password",
                            "secret", "auth"})


def safe_url(url: object) -> str:
    """``url`` with its userinfo and credential query values replaced by ``***``."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        # Unparseable: show nothing of it that might be a secret.
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(name.lower() in _SECRET_PARAMS for name, _value in pairs):
            query = urlencode([(name, REDACTED if name.lower() in _SECRET_PARAMS else value)
                               for name, value in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return text
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
