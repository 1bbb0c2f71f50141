"""Letter Markdown to safe HTML: markdown-it-py renders, nh3 sanitises with an allow-list.

Raw HTML in the source is escaped (markdown-it's `html` option is off), images are not
parsed, links keep only http, https and mailto, and nesting is capped so a hostile
document cannot make the renderer recurse without end.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "ul",
    "ol",
    "li",
    "blockquote",
    "h2",
    "h3",
    "h4",
    "a",
    "code",
    "pre",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"scope"}}
URL_SCHEMES = {"http", "https", "mailto"}
MAX_NESTING = 20


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.disable("image")
    md.options["maxNesting"] = MAX_NESTING
    # Headings inside a letter start at h2: the page owns h1.
    return md


_MD = _parser()
_HEADING = re.compile(r"<(/?)h1>")


def render_markdown(source: str) -> Markup:
    html = _MD.render(source or "")
    html = _HEADING.sub(r"<\1h2>", html)
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(clean)  # noqa: S704 - sanitised by nh3 with the allow-list above


def plain_text(source: str) -> str:
    """The words a reader sees, for counts and reading-ease scores."""
    html = _MD.render(source or "")
    return nh3.clean(html, tags=set()).strip()
