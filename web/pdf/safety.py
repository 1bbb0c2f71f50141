"""What keeps a render safe: the sandboxed templates, the asset-only URL fetcher, the text
clean-up and the memory cap. Imported only by render processes (it imports WeasyPrint).

- Templates: `jinja2.sandbox.SandboxedEnvironment`, autoescaped, loaded from
  web/templates/pdf/, given the plain dataclasses of `web.pdf.contract` and nothing else.
- Resources: `AssetFetcher` serves the files under web/pdf/assets (fonts, the letter's
  stylesheet) at `chorus-asset:<path>` and refuses every other URL - file:, http(s) to any
  host including loopback, data:, ftp:, anything unknown - by raising, so WeasyPrint skips
  the resource. It never opens a socket, so there is no redirect to follow. Each refusal
  is logged.
- Branding: the collective's logo reaches the render process as bytes in the `LetterDoc`;
  the letter's fetcher serves them at `LOGO_URL` only when they are PNG or JPEG by both
  declared type and content (`checked_logo`), so no file is written or read for it and
  no data: URL is accepted. Colours reach the stylesheet only as exact `#rrggbb` values
  with at least 4.5:1 contrast on white (`safe_colour`); anything else falls back.
- Text: every plain string is cleaned before it reaches a template (`clean_text`): lone
  surrogates and control characters go, bidirectional embedding/override/isolate controls
  go (a name must not reorder the text around it; Arabic and Hebrew names still read
  right-to-left by the Unicode bidi algorithm), and absurd lengths are cut with "…" (the
  letter's HTML is cleaned the same way but never cut).
- Structure: `check_nesting` refuses letter HTML nested more than 100 elements deep
  (`ContentError`, with a message for the organiser) before WeasyPrint, whose parser and
  layout recurse per level, spends seconds on it and fails deep inside.
- Memory: `limit_memory` caps the process's data segment (RLIMIT_DATA: the heap and every
  private anonymous mapping). RLIMIT_AS would count the ~200 MB of font files, the
  fontconfig cache and the shared libraries that are mapped but mostly never resident, so
  a cap of 300 MB on the address space fails ordinary renders; the engine also watches the
  resident size from outside and kills a process above the cap.
"""

from __future__ import annotations

import logging
import re
import resource
from dataclasses import fields, is_dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from weasyprint.urls import URLFetcher, URLFetcherResponse

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "pdf"
ASSET_SCHEME = "chorus-asset:"
ASSET_TYPES = {
    ".css": "text/css",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
MAX_LOGGED_URL = 200
# The collective's logo (web.billing.services.letter_branding): bytes handed to the render
# process, never a file. The fetcher serves them at this one URL, and only to the render
# they were given to; the name has no suffix, so no file under assets/ can share it.
LOGO_URL = ASSET_SCHEME + "branding/logo"
LOGO_SIGNATURES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}
MAX_LOGO_BYTES = 2 * 1024 * 1024  # the upload form takes 1 MB; Pillow re-encodes it
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
MIN_CONTRAST = 4.5  # WCAG 2.x AA for text on the white page

# Longest plain strings the PDF shows; longer ones are cut with an ellipsis. The forms
# that collect them have far lower limits, so only a bug or an attack reaches these.
MAX_NAME = 300  # a signatory's name or place, a lead signatory, an organisation
MAX_VOICE = 5_000  # one statement in annex B
MAX_FIELD = 20_000  # any other plain string (summary, closing, addresses...)
MAX_DEPTH = 100  # nesting of elements in the letter's HTML

_SURROGATES = re.compile("[\ud800-\udfff]")
# C0 and C1 controls except tab and newline, the bidi embeddings, overrides and isolates
# (LRE RLE PDF LRO RLO, LRI RLI FSI PDI), and the noncharacters U+FFFE and U+FFFF.
_UNWANTED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff]")


class ContentError(ValueError):
    """Letter content the renderer will not lay out; the message is for people."""


class _Depth(HTMLParser):
    """The deepest nesting of elements in an HTML fragment (void elements aside)."""

    VOID = frozenset(
        [
            "area",
            "base",
            "br",
            "col",
            "embed",
            "hr",
            "img",
            "input",
            "link",
            "meta",
            "param",
            "source",
            "track",
            "wbr",
        ]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.depth = 0
        self.deepest = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID:
            self.depth = max(0, self.depth - 1)


def check_nesting(html: str, limit: int = MAX_DEPTH) -> None:
    """Refuse HTML nested deeper than `limit` elements, before WeasyPrint sees it: the
    HTML parser and the layout both recurse per level, so 10,000 levels would run for
    seconds and then fail deep inside. A letter from the editor nests a few levels."""
    parser = _Depth()
    parser.feed(html)
    parser.close()
    if parser.deepest > limit:
        raise ContentError(
            f"The letter's text nests elements {parser.deepest:,} levels deep; "
            f"the PDF can show at most {limit}. Simplify its formatting and try again."
        )


class RefusedResource(ValueError):
    """A URL the renderer will not fetch. WeasyPrint catches it and skips the resource."""


def _asset_index() -> dict[str, tuple[Path, str]]:
    """Every servable asset by its URL path, fixed when the module loads: a URL names one
    of these exactly or nothing (no path is ever joined, so no traversal)."""
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(ASSETS.rglob("*")):
        kind = ASSET_TYPES.get(path.suffix.lower())
        if path.is_file() and kind is not None:
            found[path.relative_to(ASSETS).as_posix()] = (path, kind)
    return found


ASSET_INDEX = _asset_index()


def asset_url(relative: str) -> str:
    """The URL templates and stylesheets use for one of our assets."""
    if relative not in ASSET_INDEX:
        raise KeyError(relative)
    return ASSET_SCHEME + relative


def checked_logo(data: bytes, kind: str) -> tuple[bytes, str] | None:
    """The logo as the fetcher may serve it: PNG or JPEG by both its declared type and its
    first bytes, and not absurdly large; None for anything else (no logo is drawn)."""
    signature = LOGO_SIGNATURES.get(kind)
    if not data or signature is None or not data.startswith(signature):
        return None
    if len(data) > MAX_LOGO_BYTES:
        return None
    return data, kind


def _luminance(colour: str) -> float:
    channels = []
    for i in (1, 3, 5):
        c = int(colour[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def safe_colour(value: str, fallback: str) -> str:
    """A `#rrggbb` colour for text and rules on the white page, or `fallback` when the
    value is not exactly that form or its contrast with white is below WCAG AA (4.5:1).
    The result is only ever one of these seven characters, so it is safe inside CSS."""
    if not _COLOUR.fullmatch(value):
        return fallback
    if 1.05 / (_luminance(value) + 0.05) < MIN_CONTRAST:
        return fallback
    return value.lower()


class AssetFetcher(URLFetcher):
    """WeasyPrint's URL fetcher, reduced to our own assets (and, when given, this render's
    logo at LOGO_URL). Every other URL raises RefusedResource (logged); nothing here
    touches the network or the file system outside web/pdf/assets."""

    def __init__(self, logo: tuple[bytes, str] | None = None) -> None:
        super().__init__(allowed_protocols=(), allow_redirects=False, fail_on_errors=False)
        self.refused: list[str] = []
        self.logo = logo

    def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
        if url == LOGO_URL and self.logo is not None:
            data, kind = self.logo
            return URLFetcherResponse(url, data, {"Content-Type": kind})
        if url.startswith(ASSET_SCHEME):
            found = ASSET_INDEX.get(url[len(ASSET_SCHEME) :])
            if found is not None:
                path, kind = found
                return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": kind})
        shown = url if len(url) <= MAX_LOGGED_URL else url[:MAX_LOGGED_URL] + "…"
        self.refused.append(shown)
        log.warning("PDF render refused a resource: %r", shown)
        raise RefusedResource(f"Only the application's own assets can be used: {shown!r}")

    # WeasyPrint may call the fetcher through urllib's opener interface.
    def open(self, url: Any, data: object = None, timeout: object = None) -> URLFetcherResponse:
        return self.fetch(getattr(url, "full_url", url))


def clean_text(value: str, limit: int = MAX_FIELD) -> str:
    """A plain string as the PDF may show it (see the module docstring)."""
    value = _UNWANTED.sub("", _SURROGATES.sub("\ufffd", value))
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


T = TypeVar("T")


def clean_data(value: T, limit: int = MAX_FIELD) -> T:
    """`clean_text` applied to every string in a contract dataclass, tuple or string,
    nested as deep as the contract goes. Other values pass unchanged."""
    if isinstance(value, str):
        return clean_text(value, limit)  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(clean_data(item, limit) for item in value)  # type: ignore[return-value]
    if is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: clean_data(getattr(value, f.name), limit) for f in fields(value)}
        return replace(value, **changes)
    return value


def template_environment() -> SandboxedEnvironment:
    """The one Jinja environment PDF templates run in: sandboxed and autoescaped."""
    env = SandboxedEnvironment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["asset_url"] = asset_url
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    return env


def limit_memory(memory_mb: int) -> None:
    """Cap this process's data segment at `memory_mb` MB (see the module docstring): an
    allocation past it raises MemoryError instead of growing the process."""
    cap = memory_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
