"""The console's HTML: the page frame, outcome badges and small formatting helpers.

Everything that comes from a call (caller ids, transcripts, metadata) is attacker-controlled,
so every value goes through :func:`esc` before it reaches a page; the helpers here only ever
concatenate escaped text with the fixed markup they own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from mapokezi.outcomes import CallOutcome, call_outcome

#: Outcome -> (label, colour) of its badge.
OUTCOME_BADGES: dict[CallOutcome, tuple[str, str]] = {
    CallOutcome.HANDLED: ("handled by the receptionist", "#2e7d32"),
    CallOutcome.TRANSFERRED: ("transferred and connected", "#1565c0"),
    CallOutcome.RESCUED: ("rescued", "#6a1b9a"),
    CallOutcome.STRANDED: ("stranded", "#c62828"),
    CallOutcome.MESSAGE_TAKEN: ("message taken", "#00838f"),
    CallOutcome.FAILED: ("failed", "#b71c1c"),
    CallOutcome.AFTER_HOURS: ("after hours", "#6d4c41"),
    CallOutcome.UNKNOWN_NUMBER: ("unknown number", "#616161"),
    CallOutcome.ACTIVE: ("in progress", "#f9a825"),
}


def esc(value: Any) -> str:
    """Text for HTML (None shows as empty)."""
    return "" if value is None else escape(str(value), quote=True)


def href(path: str, params: Mapping[str, Any] | None = None) -> str:
    """A link with its query string, escaped for an attribute."""
    query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
    return esc(path + ("?" + urlencode(query) if query else ""))


def outcome_of(record: Mapping[str, Any]) -> CallOutcome:
    """The call's outcome (``mapokezi.outcomes``)."""
    return call_outcome(record)


def badge(outcome: CallOutcome) -> str:
    """The coloured outcome badge."""
    label, colour = OUTCOME_BADGES.get(outcome, (str(outcome), "#616161"))
    return (
        f'<span class="badge outcome-{esc(outcome.value)}" style="background:{colour}">'
        f"{esc(label)}</span>"
    )


def money(minor: Any, currency: Any = "KES") -> str:
    """``600`` minor units -> ``KES 6.00``; empty when unknown."""
    if not isinstance(minor, int | float) or isinstance(minor, bool):
        return ""
    return f"{currency or ''} {minor / 100:,.2f}".strip()


def ms(value: Any) -> str:
    """``1234.5`` -> ``1235 ms``; a dash when unknown."""
    return f"{value:.0f} ms" if isinstance(value, int | float) else "–"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], css: str = "") -> str:
    """A table; ``rows`` hold HTML already escaped by the caller."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{esc(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of label/value pairs (values escaped here)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


NAV = (
    ("/calls", "Calls"),
    ("/messages", "Messages"),
    ("/numbers", "Numbers"),
    ("/overview", "Overview"),
    ("/talk", "Talk to it"),
)


def page(
    title: str, body: str, *, here: str, source: str, show_messages: bool, head: str = ""
) -> str:
    """The whole document: navigation, the data source, and ``body`` (already escaped)."""
    links = "".join(
        f'<a href="{path}" class="{"here" if path == here else ""}">{label}</a>'
        for path, label in NAV
        if show_messages or path != "/messages"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} · Mapokezi console</title>"
        '<link rel="icon" href="data:,">'
        f'<link rel="stylesheet" href="/static/style.css">{head}</head><body>'
        f'<header><span class="brand">Mapokezi</span>{links}'
        f'<span class="source">{esc(source)}</span></header>'
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )
