"""HTML for the console: every value is escaped here, pages are plain
strings, forms are plain POST forms carrying the CSRF token. No templates,
no JavaScript."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from litestar import MediaType, Response

from schema.finance import format_money
from schema.model import MAX_MONEY
from sync.ids import short

STYLE = """
body{font:14px system-ui,sans-serif;margin:0;color:#222}
header{background:#234;color:#fff;padding:8px 2em;display:flex;gap:1.2em;align-items:center}
header a{color:#fff;text-decoration:none} header a.on{font-weight:bold;text-decoration:underline}
header .who{margin-left:auto} header form{display:inline}
main{margin:1em 2em} h1{font-size:20px} h2{font-size:16px;margin-top:1.6em}
table{border-collapse:collapse} td,th{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left}
.num{text-align:right} .bad{color:#b00} .ok{color:#070}
.notice{padding:6px 10px;border:1px solid #9c9;background:#efe}
.error{padding:6px 10px;border:1px solid #c99;background:#fee}
form.inline{display:inline} input,select,button{font:inherit}
"""

CSRF_FIELD = "_csrf_token"
"""The form field litestar's CSRF middleware reads."""


class Html(str):
    """Markup that is already safe: never escaped again."""

    __slots__ = ()


def esc(value: Any) -> Html:
    """``value`` as text (escaped), or as-is when it is already ``Html``."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Any]) -> Html:
    return Html("".join(esc(p) for p in parts))


def tag(name: str, /, *children: Any, **attrs: Any) -> Html:
    """``<name attrs>children</name>``; attribute names take ``_`` for ``-``
    and a trailing ``_`` is dropped (``class_``); True is a bare attribute."""
    rendered = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        key = key.rstrip("_").replace("_", "-")
        rendered.append(f" {key}" if value is True else f' {key}="{esc(value)}"')
    return Html(f"<{name}{''.join(rendered)}>{join(children)}</{name}>")


# what ``money`` writes (1,234.50) and what people type (1234.50, .5): digits
# with an optional point and decimals, commas only between groups of three digits
_AMOUNT_RE = re.compile(r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+")
_DECIMAL_COMMA_RE = re.compile(r"[0-9.]*,[0-9]{1,2}")
_HOW = "write it in digits with a decimal point, e.g. 1234.50 or 1,234.50"


def money(cents: int | None) -> str:
    """1234567 -> '12,345.67' (``schema.finance.format_money``)."""
    return "" if cents is None else format_money(int(cents), grouped=True)


def parse_money(text: str) -> int:
    """``"2.75"`` or ``"1,234.50"`` -> minor units; refuses negatives, more than 2
    decimals, a decimal comma (``"2,50"``), exponents, nan and infinity, and
    amounts beyond ``MAX_MONEY``. The ValueError says what to type instead."""
    plain = text.strip()
    if plain.startswith("-"):
        raise ValueError(f"{text!r} is not a positive amount")
    if _DECIMAL_COMMA_RE.fullmatch(plain):
        raise ValueError(f"{text!r} has a decimal comma; {_HOW} (a comma may only "
                         "separate thousands)")
    if _AMOUNT_RE.fullmatch(plain) is None:
        raise ValueError(f"{text!r} is not an amount; {_HOW}")
    value = Decimal(plain.replace(",", ""))
    if value > Decimal(MAX_MONEY) / 100:
        raise ValueError(f"{text!r} is more than the largest amount, {money(MAX_MONEY)}")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{text!r} has more than 2 decimals")
    return int(value * 100)


@dataclass(frozen=True)
class Num:
    """A right-aligned table cell."""

    text: str


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "none",
          limit: int | None = None, more: str = "") -> Html:
    """A table of ``rows``. With ``limit``, at most that many are shown, and a
    last row says when there were more (ask the query for ``limit + 1``):
    a list is never cut short without a word. ``more``: where to find them."""
    head = join(tag("th", h) for h in headers)
    body = []
    shown = list(rows)
    cut = limit is not None and len(shown) > limit
    if cut:
        shown = shown[:limit]
    for row in shown:
        cells = []
        for v in row:
            if isinstance(v, Num):
                cells.append(tag("td", v.text, class_="num"))
            elif isinstance(v, int) and not isinstance(v, bool):
                cells.append(tag("td", f"{v:,}", class_="num"))
            else:
                cells.append(tag("td", v))
        body.append(tag("tr", *cells))
    if not body:
        body.append(tag("tr", tag("td", empty, colspan=len(headers))))
    if cut:
        told = f"only the first {limit:,} are shown{'; ' + more if more else ''}"
        body.append(tag("tr", tag("td", told, colspan=len(headers), class_="more")))
    return tag("table", tag("tr", head), *body)


def short_id(key: Any) -> str:
    """An id as the console writes it in text (``sync.ids.short``)."""
    return short(key)


def id_cell(key: Any, **attrs: Any) -> Html:
    """An id in a table: ``short_id``, with the whole id in its title (shown
    on hover, found by a search of the page source)."""
    return tag("span", short_id(key), title=None if key is None else str(key), **attrs)


def hidden_csrf(token: str) -> Html:
    return tag("input", type="hidden", name=CSRF_FIELD, value=token)


def post_button(action: str, label: str, csrf: str, **fields: str) -> Html:
    """A one-button POST form (Approve, Cancel, Revoke ...)."""
    extra = [tag("input", type="hidden", name=k, value=v) for k, v in fields.items()]
    return tag("form", hidden_csrf(csrf), *extra, tag("button", label, type="submit"),
               method="post", action=action, class_="inline")


def page(title: str, body: Any, *, nav: Any = "", notice: str | None = None,
         error: str | None = None, status: int = 200) -> Response[str]:
    """A whole HTML page; never cached (a page left after logout cannot be
    shown again from the browser's cache)."""
    parts: list[Any] = []
    if notice:
        parts.append(tag("p", notice, class_="notice", role="status"))
    if error:
        parts.append(tag("p", error, class_="error", role="alert"))
    doc = Html(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)} · Branchline HQ</title><style>{STYLE}</style></head>"
        f"<body>{esc(nav)}<main>{tag('h1', title)}{join(parts)}{esc(body)}</main></body></html>")
    return Response(doc, media_type=MediaType.HTML, status_code=status,
                    headers={"cache-control": "no-store", "pragma": "no-cache",
                             "x-frame-options": "DENY",
                             "content-security-policy":
                                 "default-src 'none'; style-src 'unsafe-inline'; "
                                 "form-action 'self'; frame-ancestors 'none'",
                             "referrer-policy": "same-origin"})
