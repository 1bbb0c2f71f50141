"""Replies by plain email: read a raw RFC 822 message and say what kind of reply it is.

This module is pure: bytes in, plain data out. No Flask, no database, no network. The
inbound SMTP listener (`python -m workers.inbound`) and the HTTP endpoint for mail
providers' webhooks both call it, and neither may crash on what arrives, so the public
functions never raise on any input bytes: whatever could not be read is recorded in
`ParsedMail.defects` and the message is still returned, to be kept for the operator.

Public API
----------
- `parse_message(raw) -> ParsedMail`: the sender, subject, date, thread headers, the
  readable text (text/plain preferred; HTML-only mail converted to text, scripts and
  styles dropped), `reply_text` (the same with quoted history removed), attachments
  (including those inside forwarded message/rfc822 parts), auto-reply and bounce
  evidence, and readable defects.
- `classify(parsed) -> Classification` and `classification_reason(parsed) -> str`
  (a sentence for the organiser saying why; both come from the same decision).
- `reply_tokens(parsed, inbound_domain, envelope_recipients=()) -> list[str]`: the
  tokens of `reply+<token>@<inbound domain>` addresses, envelope recipients first.

Classification rules, in order (the first that applies wins)
-------------------------------------------------------------
"Automatic" below means strong evidence that a machine wrote the message:
Auto-Submitted other than "no" (RFC 3834), X-Autoreply / X-Autorespond and their
relatives, Precedence: auto_reply, a null Return-Path "<>", a multipart/report, or an
auto-reply subject prefix ("Automatic reply:", "Out of Office:") together with
Exchange's X-Auto-Response-Suppress. X-Auto-Response-Suppress alone is not evidence:
Outlook puts it on many ordinary messages. Precedence bulk/junk/list makes
`is_auto_submitted` true but is not "automatic" here, because departments answer from
group mailboxes (Google Groups adds Precedence: list to every human message).
"Short" means `reply_text` under 800 characters. Wording is searched in the subject
and in `reply_text`, so our own letter quoted below "On ... wrote:" never counts.

1. BOUNCE: `is_bounce` (a delivery-status report with a failed recipient, or a
   MAILER-DAEMON / postmaster message, or a null Return-Path, with delivery-failure
   wording).
2. HOLDING: out-of-office wording ("out of (the) office", "on annual leave", "on leave
   until", "away from the office") in a message that is automatic or short.
3. ACKNOWLEDGEMENT: acknowledgement wording ("we have received your letter /
   correspondence / email", "thank you for your email ... we aim to reply within 20
   working days", a case or reference number together with "received" / "logged" /
   "acknowledge") in a message that is automatic or short and, if written by a person,
   carries no attachment.
4. HOLDING: holding wording ("we will respond in due course", "need more time", "we aim
   to reply by", "passed to the relevant team") in a short message without attachment.
5. HOLDING: any other automatic reply ("Automatic reply:", "auto-reply", Auto-Submitted:
   auto-replied or auto-generated). It says nothing about the letter.
6. SUBSTANTIVE: everything else, a person's reply with substance. When in doubt a
   reply is substantive: the organiser can reclassify, and treating a real answer as
   an automatic one would hide it.

Quoted history (`reply_text`): lines starting with ">" are dropped, and everything from
the first separator on: "On ... wrote:" (also when wrapped over two lines, and the
Welsh, French and German forms), "-----Original Message-----", an Outlook header block
("From: ..." followed within a few lines by "Sent:" or "Date:"), a line of underscores
(Outlook's separator, and what `<hr>` becomes in HTML-only mail). A "Forwarded message"
separator ends the reply too, unless nothing precedes it (a forward without comment
keeps the forwarded text, as that is the reply).

Limits: nesting deeper than 20 levels, more than 1,000 parts, more than 64 multipart
boundaries, header values over 16,000 characters and HTML over 2,000,000 characters
are cut, each with a defect. The text is capped at 200,000 characters, subjects at
300, filenames at 200.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import email
import email.errors
import email.utils
import html
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from enum import StrEnum
from html.parser import HTMLParser
from typing import Any

MAX_TEXT_CHARS = 200_000
MAX_SUBJECT_CHARS = 300
MAX_NAME_CHARS = 200
MAX_FILENAME_CHARS = 200
MAX_HEADER_CHARS = 16_000
MAX_HTML_CHARS = 2_000_000
MAX_DEPTH = 20
MAX_PARTS = 1_000
MAX_BOUNDARIES = 64
MAX_DEFECTS = 50
MAX_REFERENCES = 100
SHORT_REPLY_CHARS = 800

RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")

_TOKEN_ADDRESS = re.compile(r"^reply\+([a-z0-9]{26,64})@([^@\s]+)$")
_MSGID = re.compile(r"<[^<>\s]{1,900}>")
# C0/C1 controls and the bidirectional overrides that can make a name or subject read
# differently from what it is ("Invoice\u202efdp.exe").
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WS = re.compile(r"\s+")


class Classification(StrEnum):
    """What a reply is, as far as the delivery's clock and the organiser are concerned."""

    ACKNOWLEDGEMENT = "acknowledgement"
    HOLDING = "holding"
    SUBSTANTIVE = "substantive"
    BOUNCE = "bounce"

    @property
    def label(self) -> str:
        """The name people see."""
        return _LABELS[self]


_LABELS = {
    Classification.ACKNOWLEDGEMENT: "Acknowledgement",
    Classification.HOLDING: "Holding reply",
    Classification.SUBSTANTIVE: "Substantive reply",
    Classification.BOUNCE: "Delivery failure",
}


@dataclass(frozen=True)
class Attachment:
    """A file that came with the message. `filename` is safe to show and to store."""

    filename: str
    content_type: str
    data: bytes
    size: int
    is_inline: bool = False  # an image in the HTML (a signature logo), not a document


@dataclass(frozen=True)
class ParsedMail:
    """Everything the organiser and the matcher need from one message."""

    message_id: str = ""  # with its angle brackets, as in the header; "" if none
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    from_address: str = ""  # lower-cased addr-spec
    from_name: str = ""
    recipients: list[str] = field(default_factory=list)  # lower-cased, de-duplicated
    subject: str = ""
    sent_at: datetime | None = None  # timezone-aware
    text: str = ""
    reply_text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    is_auto_submitted: bool = False  # any evidence, including Precedence: bulk/list
    is_auto_reply: bool = False  # strong evidence that a machine wrote it
    auto_signals: list[str] = field(default_factory=list)  # e.g. "Auto-Submitted: auto-replied"
    is_bounce: bool = False
    bounced_message_id: str = ""  # Message-ID of the returned original, in a bounce
    defects: list[str] = field(default_factory=list)
    is_malformed: bool = False


# --------------------------------------------------------------------------- helpers


_SURROGATES = re.compile("[\udc80-\udcff]+")


def _decode_run(match: re.Match[str]) -> str:
    raw = match.group(0).encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("windows-1252", "replace")


def _bytes_to_str(value: str) -> str:
    """Undo surrogateescape: raw 8-bit header bytes, read as UTF-8 where they are.

    Each run of raw bytes is decoded on its own, so one stray Latin-1 byte does not
    turn the UTF-8 around it into mojibake.
    """
    try:
        return _SURROGATES.sub(_decode_run, value)
    except Exception:  # a lone surrogate that is not an escaped byte
        return value.encode("utf-8", "replace").decode("utf-8", "replace")


def _one_line(value: str, limit: int) -> str:
    value = _bytes_to_str(value)
    value = _CONTROL.sub(" ", value)
    value = _WS.sub(" ", value).strip()
    return value[:limit].strip()


class _Defects:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, text: str) -> None:
        if text not in self.items and len(self.items) < MAX_DEFECTS:
            self.items.append(text)


_DEFECT_TEXT: dict[type, str] = {
    email.errors.NoBoundaryInMultipartDefect: "A multipart part declares no boundary.",
    email.errors.StartBoundaryNotFoundDefect: (
        "A multipart boundary was never found; that part was read as plain text."
    ),
    email.errors.CloseBoundaryNotFoundDefect: (
        "The message ends before its closing multipart boundary (it may be truncated)."
    ),
    email.errors.FirstHeaderLineIsContinuationDefect: "The first header line is a continuation.",
    email.errors.MisplacedEnvelopeHeaderDefect: "A 'From ' envelope line is in the headers.",
    email.errors.MissingHeaderBodySeparatorDefect: (
        "A header line could not be read; the rest was treated as the body."
    ),
    email.errors.MultipartInvariantViolationDefect: "A multipart part contains no parts.",
    email.errors.InvalidMultipartContentTransferEncodingDefect: (
        "A multipart part has an invalid transfer encoding."
    ),
    email.errors.UndecodableBytesDefect: "A header contains bytes that are not text.",
    email.errors.InvalidBase64PaddingDefect: "Base64 content has damaged padding.",
    email.errors.InvalidBase64CharactersDefect: "Base64 content contains invalid characters.",
    email.errors.InvalidBase64LengthDefect: "Base64 content has an invalid length.",
}


def _describe_defect(defect: Any, where: str = "") -> str:
    text = _DEFECT_TEXT.get(type(defect))
    if text is None:
        detail = _one_line(str(defect), 160)
        name = type(defect).__name__
        text = f"{name}: {detail}" if detail else name
    return f"{where}: {text}" if where else text


class _Headers:
    """Header access that never raises and never parses an unbounded value."""

    def __init__(self, msg: Message, defects: _Defects) -> None:
        self.msg = msg
        self.defects = defects
        self.raw: list[tuple[str, str]] = []
        try:
            for name, value in msg.raw_items():
                self.raw.append((str(name), value if isinstance(value, str) else str(value)))
        except Exception:  # a damaged header list still yields nothing, not a crash
            self.raw = []

    def raw_values(self, name: str) -> list[str]:
        wanted = name.lower()
        out = []
        for key, value in self.raw:
            if key.strip().lower() == wanted:
                unfolded = re.sub(r"\r?\n[ \t]", " ", value).replace("\r", "").replace("\n", "")
                unfolded = _bytes_to_str(unfolded)
                if len(unfolded) > MAX_HEADER_CHARS:
                    self.defects.add(f"The {name} header was too long and was cut.")
                    unfolded = unfolded[:MAX_HEADER_CHARS]
                out.append(unfolded)
        return out

    def first_raw(self, name: str) -> str | None:
        values = self.raw_values(name)
        return values[0] if values else None

    def parsed(self, name: str, value: str) -> Any:
        """The policy.default header object for a raw value, or None if it will not parse."""
        try:
            return policy.default.header_factory(name, value)
        except Exception:  # the stdlib header parser has raised on odd input
            self.defects.add(f"The {name} header could not be read.")
            return None

    def text(self, name: str) -> str:
        value = self.first_raw(name)
        if value is None:
            return ""
        header = self.parsed(name, value)
        if header is not None:
            with contextlib.suppress(Exception):
                return _bytes_to_str(str(header))
        return _bytes_to_str(value)

    def addresses(self, name: str) -> list[tuple[str, str]]:
        """(display name, addr-spec) pairs from every header of that name."""
        out: list[tuple[str, str]] = []
        for value in self.raw_values(name):
            pairs: list[tuple[str, str]] = []
            header = self.parsed(name, value)
            if header is not None:
                try:
                    for address in header.addresses:
                        pairs.append((str(address.display_name), str(address.addr_spec)))
                    for defect in header.defects:
                        self.defects.add(_describe_defect(defect, f"{name} header"))
                except Exception:  # fall back to the lenient parser below
                    pairs = []
            if not pairs:
                try:
                    pairs = [(n, a) for n, a in email.utils.getaddresses([value]) if a or n]
                except Exception:  # nothing readable in this header
                    pairs = []
            out.extend(pairs)
        return out


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:  # an unparsable Content-Type reads as text/plain (RFC 2045)
        return "text/plain"


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
    except Exception:
        return ""
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    return str(value or "")


def _disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # fall back to the raw parameters
        name = None
    if not name:
        name = _param(part, "filename") or _param(part, "name") or None
    return name


def sanitise_filename(name: str | None) -> str:
    """A name safe to show and store: the base name, no controls, at most 200 characters."""
    if not name:
        return "attachment"
    name = _bytes_to_str(str(name))
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/")
    name = posixpath.basename(name.rstrip("/")) if "/" in name else name
    name = _CONTROL.sub("", name)
    name = name.replace("/", "").replace(":", "_").strip().lstrip(".").strip()
    if not name:
        return "attachment"
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            name = stem[: MAX_FILENAME_CHARS - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_CHARS]
    return name


def _payload_bytes(part: Message, defects: _Defects) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a damaged transfer encoding yields nothing
        defects.add("A part's content could not be decoded.")
        return b""
    if any(isinstance(d, email.errors.InvalidBase64LengthDefect) for d in part.defects):
        # The stdlib hands back the undecoded text; decode the whole quanta instead,
        # so a truncated attachment keeps the bytes that did arrive.
        with contextlib.suppress(Exception):
            encoded = re.sub(r"[^A-Za-z0-9+/]", "", str(part.get_payload()))
            return base64.b64decode(encoded[: len(encoded) // 4 * 4])
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    return b""


_CHARSET_ALIASES = {
    # Mail labelled Latin-1 or ASCII is usually Windows-1252 (curly quotes in 0x80-0x9f).
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "iso-8859-1": "windows-1252",
    "latin-1": "windows-1252",
    "latin1": "windows-1252",
}


def _decode_text(data: bytes, charset: str, defects: _Defects) -> str:
    charset = (charset or "").strip().strip('"').lower()
    codec = _CHARSET_ALIASES.get(charset, charset)
    if codec:
        try:
            info = codecs.lookup(codec)
            if not getattr(info, "_is_text_encoding", True):
                raise LookupError(codec)
            return data.decode(info.name, "replace")
        except (LookupError, ValueError, TypeError):
            defects.add(
                f"Unknown character set {_one_line(charset, 40)!r}; the text was read as UTF-8 "
                "where possible and may contain odd characters."
            )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("windows-1252", "replace")


def _clean_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TEXT_CONTROL.sub("", text)
    return text.replace("\u00a0", " ")


# ------------------------------------------------------------------------- HTML to text

_BLOCK_TAGS = frozenset(
    {
        "p", "div", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
        "ul", "ol", "dl", "dt", "dd", "pre", "address", "section", "article", "header",
        "footer", "center", "form", "fieldset", "title",
    }
)  # fmt: skip
_SKIP_TAGS = frozenset({"script", "style", "head", "noscript", "template", "svg", "object"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "hr":
            self.parts.append("\n" + "_" * 32 + "\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in {"td", "th"}:
            self.parts.append(" ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIP_TAGS:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(_WS.sub(" ", data))


def html_to_text(markup: str) -> str:
    """Readable plain text from HTML: scripts and styles dropped, blocks on their own lines.

    The result is text, never markup: callers escape it like any other text.
    """
    if len(markup) > MAX_HTML_CHARS:
        markup = markup[:MAX_HTML_CHARS]
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # html.parser has raised on odd markup; strip tags instead
        stripped = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", markup)
        stripped = re.sub(r"(?i)<br\s*/?>|</?(p|div|li|tr)\b[^>]*>", "\n", stripped)
        text = html.unescape(re.sub(r"<[^>]*>", " ", stripped))
    lines = [_WS.sub(" ", line.replace("\u00a0", " ")).strip() for line in text.split("\n")]
    out = "\n".join(lines)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out.strip()


# ------------------------------------------------------------------------ quoted history

_ON_WROTE_START = re.compile(r"^\s*(on|ar|le|am)\s", re.IGNORECASE)
_ON_WROTE_END = re.compile(r"(wrote|ysgrifennodd|a écrit|schrieb)\s*:\s*$", re.IGNORECASE)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*original message\s*-{2,}\s*$", re.IGNORECASE)
_UNDERSCORES = re.compile(r"^\s*_{20,}\s*$")
_FORWARDED = re.compile(
    r"^\s*-{2,}\s*(forwarded message|begin forwarded message|forwarded by)\b.*$|"
    r"^\s*begin forwarded message:\s*$",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^\s*\*?(from|oddi wrth)\s*:\*?\s+\S", re.IGNORECASE)
_HEADER_SENT = re.compile(r"^\s*\*?(sent|date|anfonwyd)\s*:\*?\s+\S", re.IGNORECASE)


def _separator_at(lines: list[str], i: int) -> str | None:
    line = lines[i]
    if _ORIGINAL.match(line) or _UNDERSCORES.match(line):
        return "history"
    if _FORWARDED.match(line):
        return "forward"
    if _ON_WROTE_START.match(line) and len(line) < 400:
        if _ON_WROTE_END.search(line):
            return "history"
        if i + 1 < len(lines) and _ON_WROTE_END.search(lines[i + 1]) and len(lines[i + 1]) < 200:
            return "history"
    if _HEADER_FROM.match(line):
        for j in range(i + 1, min(i + 5, len(lines))):
            if _HEADER_SENT.match(lines[j]):
                return "history"
    return None


def strip_quoted(text: str) -> str:
    """The new part of a reply: quoted lines and everything after a history separator gone."""
    lines = text.split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        kind = _separator_at(lines, i)
        has_content = any(k.strip() for k in kept)
        if kind == "history" or (kind == "forward" and has_content):
            break
        if kind == "forward":
            continue
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    out = "\n".join(kept)
    out = re.sub(r"\n{3,}", "\n\n", out)
    return out.strip()


# -------------------------------------------------------------------------- the walk


@dataclass
class _Section:
    header: str = ""
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)

    def text(self) -> str:
        if self.plain:
            return "\n\n".join(p.strip("\n") for p in self.plain if p.strip())
        return "\n\n".join(html_to_text(h) for h in self.html if h.strip())


_FAILED_ACTIONS = {"failed"}
_REPORT_ONLY_ACTIONS = {"delayed", "delivered", "relayed", "expanded"}


class _Walk:
    """An iterative walk of the MIME tree (no recursion), bounded in depth and parts."""

    def __init__(self, defects: _Defects) -> None:
        self.defects = defects
        self.sections = [_Section()]
        self.attachments: list[Attachment] = []
        self.dsn_actions: list[str] = []
        self.has_dsn_part = False
        self.bounced_message_id = ""

    def run(self, msg: Message) -> _Walk:
        count = 0
        # (part, depth, section index, inside a delivery report)
        stack: list[tuple[Message, int, int, bool]] = [(msg, 0, 0, False)]
        while stack:
            part, depth, section, in_report = stack.pop()
            count += 1
            if count > MAX_PARTS:
                self.defects.add(
                    f"The message has more than {MAX_PARTS} parts; the rest were ignored."
                )
                break
            if depth > MAX_DEPTH:
                self.defects.add(
                    f"The message is nested more than {MAX_DEPTH} levels deep; "
                    "deeper parts were ignored."
                )
                continue
            stack.extend(self._visit(part, depth, section, in_report))
            # After the visit: decoding the payload adds its own defects to the part.
            for defect in getattr(part, "defects", None) or []:
                self.defects.add(_describe_defect(defect))
        return self

    def _visit(
        self, part: Message, depth: int, section: int, in_report: bool
    ) -> list[tuple[Message, int, int, bool]]:
        """Record a part; return its children to visit, last first."""
        ctype = _content_type(part)
        if ctype == "message/delivery-status":
            self.has_dsn_part = True
            self.dsn_actions.extend(_dsn_actions(part))
            return []
        if in_report and ctype in {"message/rfc822", "text/rfc822-headers", "message/global"}:
            # The returned original in a bounce is our own letter: not the department's.
            self.bounced_message_id = self.bounced_message_id or _returned_message_id(part)
            return []
        try:
            children = part.get_payload() if part.is_multipart() else None
        except Exception:
            children = None
        if isinstance(children, list):
            report = in_report or ctype == "multipart/report"
            child_section = section
            inner = children[0] if children else None
            if ctype.startswith("message/") and isinstance(inner, Message):
                self.sections.append(_Section(header=_forward_header(inner, self.defects)))
                child_section = len(self.sections) - 1
            return [
                (child, depth + 1, child_section, report)
                for child in reversed(children)
                if isinstance(child, Message)
            ]
        if not ctype.startswith("multipart/"):  # else its parts could not be read
            self._leaf(part, ctype, section)
        return []

    def _leaf(self, part: Message, ctype: str, section: int) -> None:
        disposition = _disposition(part)
        raw_name = _filename(part)
        data = _payload_bytes(part, self.defects)
        is_body = (
            ctype in {"text/plain", "text/html"}
            and disposition != "attachment"
            and (raw_name is None or disposition == "inline")
        )
        if is_body:
            text = _clean_text(_decode_text(data, _param(part, "charset"), self.defects))
            target = self.sections[section]
            (target.plain if ctype == "text/plain" else target.html).append(text)
            return
        has_cid = _safe_has(part, "Content-ID")
        self.attachments.append(
            Attachment(
                filename=sanitise_filename(raw_name),
                content_type=ctype,
                data=data,
                size=len(data),
                is_inline=disposition == "inline" or (has_cid and disposition != "attachment"),
            )
        )


def _safe_has(part: Message, name: str) -> bool:
    try:
        return any(k.lower() == name.lower() for k, _ in part.raw_items())
    except Exception:
        return False


def _dsn_actions(part: Message) -> list[str]:
    actions: list[str] = []
    try:
        payload = part.get_payload()
    except Exception:
        return actions
    if isinstance(payload, list):
        for block in payload:
            if not isinstance(block, Message):
                continue
            with contextlib.suppress(Exception):
                for key, value in block.raw_items():
                    if key.lower() == "action":
                        actions.append(str(value).strip().split(" ")[0].lower())
    elif isinstance(payload, str):
        actions.extend(
            m.lower() for m in re.findall(r"(?im)^action:\s*([a-z]+)", payload[:100_000])
        )
    return actions


def _returned_message_id(part: Message) -> str:
    try:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            inner = payload[0]
            text = "\n".join(f"{k}: {v}" for k, v in inner.raw_items())
        else:
            text = str(payload)[:100_000]
    except Exception:
        return ""
    match = re.search(r"(?im)^message-id:\s*(<[^<>\s]{1,900}>)", text)
    return match.group(1) if match else ""


def _forward_header(inner: Message, defects: _Defects) -> str:
    headers = _Headers(inner, defects)
    lines = ["---------- Forwarded message ----------"]
    for name in ("From", "Date", "Subject", "To"):
        value = _one_line(headers.text(name), 300)
        if value:
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


# ------------------------------------------------------------------------- evidence

_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto[- ]?reply|autosvar|out of (the )?office( reply)?|"
    r"abwesenheitsnotiz|réponse automatique|respuesta automática|ateb awtomatig)\b",
    re.IGNORECASE,
)
_AUTO_HEADERS = (
    "X-Autoreply",
    "X-Autorespond",
    "X-Autoresponder",
    "X-AutoReply-From",
    "X-Mail-Autoreply",
    "X-Autogenerated",
)
_BOUNCE_SENDERS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}
_FAILURE_WORDING = re.compile(
    r"undeliverable|undelivered|delivery status notification \(failure\)|"
    r"delivery (has )?failed|delivery failure|could ?n[o']t be delivered|"
    r"returned mail|failure notice|mail delivery failed|permanent (error|failure)|"
    r"address not found|user unknown|mailbox (unavailable|not found)|"
    r"message (was )?not delivered|rejected your message",
    re.IGNORECASE,
)


def _auto_evidence(headers: _Headers, subject: str, is_report: bool) -> tuple[list[str], bool]:
    """Readable signals, and whether any of them is strong (a machine wrote it)."""
    signals: list[str] = []
    strong = False
    auto = _one_line(headers.first_raw("Auto-Submitted") or "", 60).lower()
    if auto and auto.split(";")[0].strip() != "no":
        signals.append(f"Auto-Submitted: {auto}")
        strong = True
    for name in _AUTO_HEADERS:
        value = headers.first_raw(name)
        if value is not None and value.strip().lower() not in {"no", "false", "0"}:
            signals.append(f"{name}: {_one_line(value, 60)}".rstrip(": "))
            strong = True
    precedence = _one_line(headers.first_raw("Precedence") or "", 40).lower()
    if precedence in {"auto_reply", "auto-reply"}:
        signals.append(f"Precedence: {precedence}")
        strong = True
    elif precedence in {"bulk", "junk", "list"}:
        signals.append(f"Precedence: {precedence}")
    return_path = headers.first_raw("Return-Path")
    if return_path is not None and return_path.strip() in {"<>", "< >"}:
        signals.append("Return-Path: <> (sent by a mail system)")
        strong = True
    if is_report:
        signals.append("Content-Type: multipart/report")
        strong = True
    suppress = _one_line(headers.first_raw("X-Auto-Response-Suppress") or "", 80)
    if suppress and _AUTO_SUBJECT.match(subject):
        # Outlook sets X-Auto-Response-Suppress on ordinary mail too; only with an
        # auto-reply subject does it say the message was written by a rule.
        signals.append(f"X-Auto-Response-Suppress: {suppress} with an automatic-reply subject")
        strong = True
    return signals, strong


# ------------------------------------------------------------------------- parse


_KNOWN_HEADERS = {
    "from", "to", "cc", "subject", "date", "message-id", "received", "return-path",
    "mime-version", "content-type", "delivered-to", "x-original-to", "reply-to",
    "in-reply-to", "references", "sender", "envelope-to", "dkim-signature",
    "content-transfer-encoding", "auto-submitted", "thread-topic",
}  # fmt: skip


def _message_ids(value: str) -> list[str]:
    return _MSGID.findall(_bytes_to_str(value))


def parse_message(raw: bytes) -> ParsedMail:
    """Read a raw RFC 822 message. Never raises; damage is listed in `defects`."""
    try:
        return _parse(raw if isinstance(raw, bytes) else bytes(raw))
    except Exception as exc:  # the listener must never crash on what arrives
        return ParsedMail(
            defects=[f"The message could not be read ({type(exc).__name__})."],
            is_malformed=True,
        )


def _parse(raw: bytes) -> ParsedMail:
    defects = _Defects()
    if not raw.strip():
        return ParsedMail(defects=["The message is empty."], is_malformed=True)
    raw = _limit_boundaries(raw, defects)
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:  # includes RecursionError on absurd nesting
        return ParsedMail(
            defects=[f"The message could not be parsed ({type(exc).__name__})."],
            is_malformed=True,
        )
    headers = _Headers(msg, defects)
    known = sum(1 for name, _ in headers.raw if name.strip().lower() in _KNOWN_HEADERS)

    message_id, in_reply_to, references = _thread_ids(headers)
    from_name, from_address = _sender(headers)
    if not from_address:
        defects.add("The message has no sender (From) address.")
    recipients = _recipients(headers)
    subject = _one_line(headers.text("Subject"), MAX_SUBJECT_CHARS)

    sent_at = _date(headers, defects)

    walk = _Walk(defects).run(msg)
    main_text = walk.sections[0].text()
    forwards = walk.sections[1:]
    forward_texts = [f"{s.header}\n\n{s.text()}".strip() for s in forwards]
    text = "\n\n".join(t for t in [main_text.strip(), *forward_texts] if t)
    if len(text) > MAX_TEXT_CHARS:
        defects.add(f"The text was longer than {MAX_TEXT_CHARS:,} characters and was cut.")
        text = text[:MAX_TEXT_CHARS]
    reply_text = strip_quoted(main_text[:MAX_TEXT_CHARS])
    if not reply_text and forwards:
        reply_text = strip_quoted("\n\n".join(s.text() for s in forwards)[:MAX_TEXT_CHARS])

    is_report = _content_type(msg) == "multipart/report"
    report_type = _param(msg, "report-type").lower() if is_report else ""
    signals, strong = _auto_evidence(headers, subject, is_report)
    is_auto_submitted = bool(signals)

    is_bounce = _is_bounce(
        is_dsn=(is_report and report_type == "delivery-status") or walk.has_dsn_part,
        actions=walk.dsn_actions,
        from_address=from_address,
        from_name=from_name,
        null_sender=any("Return-Path" in s for s in signals),
        wording=f"{subject}\n{text[:5000]}",
    )

    is_malformed = known == 0 or (
        not from_address and not subject and not text.strip() and not walk.attachments
    )
    if known == 0:
        defects.add("This does not look like an email: no standard headers were found.")

    return ParsedMail(
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        from_address=from_address,
        from_name=from_name,
        recipients=recipients,
        subject=subject,
        sent_at=sent_at,
        text=text,
        reply_text=reply_text,
        attachments=walk.attachments,
        is_auto_submitted=is_auto_submitted,
        is_auto_reply=strong,
        auto_signals=signals,
        is_bounce=is_bounce,
        bounced_message_id=walk.bounced_message_id,
        defects=defects.items,
        is_malformed=is_malformed,
    )


_BOUNDARY_PARAM = re.compile(rb"(?i)\bboundary\s*=")


def _limit_boundaries(raw: bytes, defects: _Defects) -> bytes:
    """Disarm boundary declarations past the first MAX_BOUNDARIES.

    The stdlib parser checks every line against every enclosing boundary and recurses
    once per level, so absurd nesting costs quadratic time and then a RecursionError.
    Renaming the extra `boundary=` parameters (same length) makes those parts plain
    text, still readable, instead of more levels.
    """
    matches = list(_BOUNDARY_PARAM.finditer(raw))
    if len(matches) <= MAX_BOUNDARIES:
        return raw
    defects.add(
        f"The message declares more than {MAX_BOUNDARIES} multipart boundaries; "
        "the parts beyond them were read as plain text."
    )
    data = bytearray(raw)
    for match in matches[MAX_BOUNDARIES:]:
        data[match.start()] = ord("x")
    return bytes(data)


def _thread_ids(headers: _Headers) -> tuple[str, str, list[str]]:
    message_id = ""
    raw_id = headers.first_raw("Message-ID")
    if raw_id:
        ids = _message_ids(raw_id)
        message_id = ids[0] if ids else _one_line(raw_id, 998)
    in_reply_to_ids = _message_ids(headers.first_raw("In-Reply-To") or "")
    references: list[str] = []
    for value in headers.raw_values("References"):
        for ref in _message_ids(value):
            if ref not in references and len(references) < MAX_REFERENCES:
                references.append(ref)
    return message_id, (in_reply_to_ids[0] if in_reply_to_ids else ""), references


def _sender(headers: _Headers) -> tuple[str, str]:
    pairs = headers.addresses("From")
    if not pairs:
        return "", ""
    return _one_line(pairs[0][0], MAX_NAME_CHARS), _one_line(pairs[0][1], 320).lower()


def _recipients(headers: _Headers) -> list[str]:
    recipients: list[str] = []
    for name in RECIPIENT_HEADERS:
        for _display, address in headers.addresses(name):
            clean = _one_line(address, 320).strip("<>").lower()
            if clean and clean not in recipients:
                recipients.append(clean)
    return recipients


def _date(headers: _Headers, defects: _Defects) -> datetime | None:
    value = headers.first_raw("Date")
    if value is None:
        defects.add("The message has no Date header.")
        return None
    header = headers.parsed("Date", value)
    parsed = None
    if header is not None:
        parsed = getattr(header, "datetime", None)
    if not isinstance(parsed, datetime):
        try:
            parsed = email.utils.parsedate_to_datetime(value)
        except Exception:
            parsed = None
    if not isinstance(parsed, datetime):
        defects.add(f"The Date header could not be read: {_one_line(value, 80)!r}.")
        return None
    if parsed.tzinfo is None:  # "-0000": UTC, local zone unknown (RFC 5322 3.3)
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _is_bounce(
    *,
    is_dsn: bool,
    actions: list[str],
    from_address: str,
    from_name: str,
    null_sender: bool,
    wording: str,
) -> bool:
    if is_dsn:
        if any(a in _FAILED_ACTIONS for a in actions):
            return True
        # Only delay warnings or success reports: not a failure.
        return not (actions and all(a in _REPORT_ONLY_ACTIONS for a in actions))
    local = from_address.partition("@")[0]
    from_mail_system = local in _BOUNCE_SENDERS or "mail delivery" in from_name.lower()
    return bool((from_mail_system or null_sender) and _FAILURE_WORDING.search(wording))


# ------------------------------------------------------------------------- classify

_OUT_OF_OFFICE = re.compile(
    r"\bout of (the )?office\b|\bon annual leave\b|\bon (leave|holiday|vacation) until\b|"
    r"\baway from (the|my) (office|desk)\b|\bcurrently on leave\b|\bparental leave\b",
    re.IGNORECASE,
)
_ACK_WORDING = re.compile(
    r"\b(we|i) have (now |safely )?received your (letter|correspondence|e-?mail|message|"
    r"enquiry|inquiry|request)\b|"
    r"\byour (letter|correspondence|e-?mail|message|enquiry|inquiry) (has been|was) "
    r"(safely |successfully )?(received|logged|registered)\b|"
    r"\backnowledge (the )?receipt of\b|"
    r"\bthis is an (automatic|automated) acknowledge?ment\b|"
    r"\bthank you for (your|contacting)\b.{0,300}?\b(will|aim to|shall|endeavour to|try to)\b"
    r".{0,60}?\b(respond|reply|answer|get back)\b.{0,80}?\bwithin \d{1,3} (working |business )?"
    r"days\b",
    re.IGNORECASE | re.DOTALL,
)
_REFERENCE = re.compile(
    r"\b(reference number|case reference|case number|reference|ref\.?|ticket)\b", re.IGNORECASE
)
_RECEIVED = re.compile(r"\b(received|logged|registered|acknowledge)", re.IGNORECASE)
_HOLDING_WORDING = re.compile(
    r"\bin due course\b|\b(need|needs|require|requires) (a little |a bit |some )?more time\b|"
    r"\b(we|i) (aim|hope|expect|intend) to (reply|respond|write)\b.{0,40}?\bby\b|"
    r"\b(will|shall) (reply|respond|write to you)( to you)?( fully)? by\b|"
    r"\b(passed|forwarded|referred)\b.{0,40}?\bto the (relevant|appropriate|correct) "
    r"(team|department|directorate|colleagues?|officials?|policy team|unit)\b|"
    r"\b(are|is) (currently )?(considering|looking into) (this|your|the)\b|"
    r"\bfull (response|reply) (will|shortly|soon|in)\b",
    re.IGNORECASE | re.DOTALL,
)
_AUTO_WORDING = re.compile(r"\bautomatic reply\b|\bauto[- ]?reply\b", re.IGNORECASE)


def _found(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    return _WS.sub(" ", match.group(0)).strip() if match else ""


def _decide(parsed: ParsedMail) -> tuple[Classification, str]:
    if parsed.is_bounce:
        return Classification.BOUNCE, "The mail system reported that the letter was not delivered."
    body = parsed.reply_text[:20_000]
    wording = _WS.sub(" ", f"{parsed.subject}\n{body}")
    is_short = len(body) < SHORT_REPLY_CHARS
    automatic = parsed.is_auto_reply
    documents = [a for a in parsed.attachments if not a.is_inline]
    how = "an automatic reply" if automatic else "a short reply"

    if automatic or is_short:
        hit = _found(_OUT_OF_OFFICE, wording)
        if hit:
            return Classification.HOLDING, f"Out-of-office wording (“{hit}”) in {how}."
    if automatic or (is_short and not documents):
        hit = _found(_ACK_WORDING, wording)
        if not hit and _REFERENCE.search(wording) and _RECEIVED.search(wording):
            hit = _found(_REFERENCE, wording)
        if hit:
            return Classification.ACKNOWLEDGEMENT, f"Acknowledgement wording (“{hit}”) in {how}."
    if is_short and not documents:
        hit = _found(_HOLDING_WORDING, wording)
        if hit:
            return Classification.HOLDING, f"Holding wording (“{hit}”) in {how}."
    if automatic:
        detail = ", ".join(parsed.auto_signals[:3]) or _found(_AUTO_WORDING, wording)
        return Classification.HOLDING, f"An automatic reply ({detail}) that does not answer."
    if documents:
        return Classification.SUBSTANTIVE, "A reply from a person, with attachments."
    return Classification.SUBSTANTIVE, "A reply from a person."


def classify(parsed: ParsedMail) -> Classification:
    """Acknowledgement, holding reply, substantive reply or bounce (rules in the docstring)."""
    try:
        return _decide(parsed)[0]
    except Exception:  # when unsure, a reply is substantive
        return Classification.SUBSTANTIVE


def classification_reason(parsed: ParsedMail) -> str:
    """One sentence for the organiser saying why `classify` chose what it chose."""
    try:
        return _decide(parsed)[1]
    except Exception:
        return "A reply from a person."


# ------------------------------------------------------------------------- tokens


def _bare_address(value: str) -> str:
    value = _bytes_to_str(str(value)).strip()
    if "<" in value and ">" in value:
        value = value[value.rfind("<") + 1 : value.rfind(">")]
    return value.strip().strip("<>").strip().lower()


def reply_tokens(
    parsed: ParsedMail, inbound_domain: str, envelope_recipients: Sequence[str] = ()
) -> list[str]:
    """Tokens of `reply+<token>@<inbound_domain>` recipients, envelope first, de-duplicated.

    Local parts and domains are compared case-insensitively and tokens are returned in
    lower case, because some mail systems change the case of local parts.
    """
    domain = (inbound_domain or "").strip().rstrip(".").lower()
    tokens: list[str] = []
    if not domain:
        return tokens
    candidates: Iterable[str] = [*list(envelope_recipients or ()), *parsed.recipients]
    for candidate in candidates:
        match = _TOKEN_ADDRESS.match(_bare_address(candidate)) if candidate else None
        if match and match.group(2).rstrip(".") == domain and match.group(1) not in tokens:
            tokens.append(match.group(1))
    return tokens
