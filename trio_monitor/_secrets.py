"""Keeping secrets out of everything shown: the one redaction rule for URLs.

A URL's userinfo is a credential (`http://user:pass@host/`, or a lone token as in
`https://TOKEN@host/`). Everything the monitor shows, stores or sends on (target names
by default, JSON lines, the API, metric labels, history, alerts, reports, logs and
config error lines) shows a URL through `redact_url`; only the HTTP probe keeps the
credentials, as the `Authorization` header it sends (probes/http/config.py).
"""

from __future__ import annotations

MASK = "***"


def redact_url(url: str) -> str:
    """`url` with its password (or a lone user part) replaced by `***`.

    "http://user:pass@host/x" -> "http://user:***@host/x"; "https://TOKEN@host/" ->
    "https://***@host/"; a URL without userinfo, or a string that is no URL, unchanged.
    The rest of the text stays exactly as written. As httpx parses it, the authority
    ends at the first "/", "?" or "#", and the userinfo at its last "@".
    """
    if "@" not in url:
        return url  # no userinfo (most URLs): nothing to look for
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    userinfo, at, host = rest[:end].rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:{MASK}" if colon else MASK
    return f"{scheme}://{shown}@{host}{rest[end:]}"
