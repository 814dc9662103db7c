"""Text in a Human-in-the-loop request's Markdown: outside text shown inert, the provider's own links, dates.

Both HITL operators (the handoff and the reply approval) build their requests with these, so what "inert" means
is decided in one place.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from airflow_provider_debitura.replies.text import display_text

_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
"""Every ASCII punctuation character: CommonMark lets each be backslash-escaped, and escaped it starts nothing
(no heading, list, quote, table, code, emphasis, entity, HTML or link)."""

_LINK_FORMING = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?=@)|(?<=@)", re.IGNORECASE)
"""Where GFM's autolink literals start: ``scheme://``, ``www.``, ``user@host``. Backslash escapes do not stop
them (the renderer matches them on the decoded text), a zero-width joiner inside them does."""

ZERO_WIDTH_JOINER = "\u200d"


def escape_markdown(text: Any) -> str:
    """Text shown as itself in a request's Markdown, inert: no link (not even a bare URL, ``www.`` or an e-mail
    address), no heading, list, quote or HTML, and no bidirectional override (those and control characters are
    removed, :func:`~airflow_provider_debitura.replies.text.display_text`). Newlines stay (as soft breaks).

    :param text: text from outside: Debitura, a collection partner, a template.
    """
    inert = _LINK_FORMING.sub(ZERO_WIDTH_JOINER, display_text(str(text)))
    return _MD_PUNCTUATION.sub(r"\\\1", inert)


def one_line(text: str) -> str:
    """``text`` on one line, without control or bidirectional characters (a subject, a refused URL).

    :param text: text from outside.
    """
    return " ".join(display_text(str(text)).split())


_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]!$&'()*+,;=%]+")
"""What an https URL may hold here (RFC 3986's characters, without ``@``): no whitespace, no control or
bidirectional character, nothing that ends a Markdown link."""


def clean_https_url(url: Any) -> str | None:
    """``url`` when it is a clean ``https`` URL with a host (nothing else becomes a link), else None.

    Refused: any whitespace or control character anywhere (``urlparse`` silently drops an embedded newline),
    another scheme, no host, user info (``https://app.debitura.com@evil.example``).

    :param url: the task's ``solutionUrl``.
    """
    if not isinstance(url, str) or not _URL_CHARACTERS.fullmatch(url):
        return None
    try:
        parsed = urlparse(url)
        host = parsed.hostname
    except ValueError:
        return None
    if parsed.scheme != "https" or not host or not parsed.netloc:
        return None
    return url


def solution_link(url: Any) -> str:
    """A clickable Markdown link for a clean ``https`` URL (:func:`clean_https_url`); anything else is shown
    as inert text, not linked.

    :param url: the task's ``solutionUrl``.
    """
    clean = clean_https_url(url)
    if clean is not None:
        safe = clean.replace("(", "%28").replace(")", "%29")
        return f"**[Open in Debitura]({safe})**"
    if isinstance(url, str) and url.strip():
        return f"Link not shown as a link (not a clean https URL): {escape_markdown(one_line(url))}"
    return "No solutionUrl on this task: find it in the Debitura app."


def format_deadline(value: Any) -> str | None:
    """``2026-12-01 09:30 UTC`` from an API timestamp (naive means UTC); None when there is none.

    :param value: the task's ``deadline``.
    """
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return escape_markdown(str(value))
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%d %H:%M UTC")
