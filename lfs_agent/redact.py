"""Secrets never shown: the one way a URL, or text that may hold one, is rendered.

A remote URL may carry credentials (``https://user:token@host/x``), and a library's
error text may repeat that URL. Everything lfs-agent prints, logs or traces passes
URLs through :func:`redact_url`, and free text through :func:`redact_text`, so a
password given in a URL reaches only the request that needs it.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "has_userinfo", "redact_text", "redact_url"]

#: What stands in for user-info in a shown URL.
MASK = "***"

# ``scheme://userinfo@`` anywhere in a text: the user-info is whatever precedes the
# last ``@`` before the first ``/`` (as git finds it; a password may itself hold ``@``,
# ``:``, ``?`` or ``#``). The scheme starts where no scheme character precedes it, so
# ``x_https://`` is found as well as ``https://``.
_USERINFO_RE = re.compile(r"(?i)(?<![a-z0-9+.\-])([a-z][a-z0-9+.\-]*://)([^/\s]*)@")
# Query parameters that carry credentials in signed or token URLs (``sig`` is Azure's);
# a value ends where a URL cannot go on raw (a quote around it in a message).
_SECRET_QUERY_RE = re.compile(
    r"(?i)([?&](?:[a-z0-9_.\-]*(?:token|sig|secret|pass|credential|key|auth)"
    r"[a-z0-9_.\-]*)=)[^&#\s'\"<>]*"
)


def has_userinfo(url: str) -> bool:
    """Whether ``url`` carries user-info (``user@``, ``user:password@``)."""
    return _USERINFO_RE.match(url.strip()) is not None


def redact_url(url: str) -> str:
    """``url`` as it may be shown: user-info and secret query values masked."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """``text`` with the user-info and secret query values of every URL in it masked."""
    if "://" not in text:
        return text
    text = _USERINFO_RE.sub(rf"\1{MASK}@", text)
    return _SECRET_QUERY_RE.sub(rf"\1{MASK}", text)
