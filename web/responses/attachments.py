"""Attachments to responses: PDF, DOCX or ODT, up to 20 MB, the type decided by the bytes.

The sender's declared type and the file's name are not trusted: a PDF starts with
`%PDF-`; DOCX and ODT are ZIP archives, told apart by their parts (`[Content_Types].xml`
with a `word/` folder; a first entry `mimetype` reading
`application/vnd.oasis.opendocument.text`). A file that is none of these is refused
with a message that says which types are accepted. Files are stored in PostgreSQL and
always served as downloads (`Content-Disposition: attachment`, `nosniff`).
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import zipfile
from urllib.parse import quote

from sqlalchemy.orm import Session

from web.responses.models import MAX_ATTACHMENT_BYTES, Response, ResponseAttachment

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
EXTENSIONS = {PDF: ".pdf", DOCX: ".docx", ODT: ".odt"}
ACCEPTED = "a PDF, a Word document (.docx) or an OpenDocument text (.odt)"
MAX_MEMBERS = 10_000  # a ZIP with more entries than this is not a document we accept


class AttachmentRejected(ValueError):
    """The file cannot be attached; the message says why, for the person uploading."""


def sniff_type(data: bytes) -> str | None:
    """PDF, DOCX or ODT by content, or None."""
    if data.startswith(b"%PDF-"):
        return PDF
    if not data.startswith(b"PK\x03\x04"):
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if not infos or len(infos) > MAX_MEMBERS:
                return None
            names = {info.filename for info in infos}
            first = infos[0]
            if (
                first.filename == "mimetype"
                and first.file_size < 200
                and archive.read(first).strip() == ODT.encode()
            ):
                return ODT
            if "[Content_Types].xml" in names and any(n.startswith("word/") for n in names):
                return DOCX
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, KeyError):
        return None
    except NotImplementedError:  # an unsupported compression method
        return None
    return None


def clean_filename(name: str | None, content_type: str) -> str:
    """A safe display and download name: base name only, no control characters, at
    most 150 characters, ending in the extension of the type found."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = re.sub(r"\s+", " ", base).strip(" .")
    extension = EXTENSIONS[content_type]
    stem = base[: -len(extension)] if base.lower().endswith(extension) else base
    stem = stem[:140] or "attachment"
    return f"{stem}{extension}"


def check_attachment(data: bytes, filename: str | None) -> tuple[str, str]:
    """(content type, clean file name) for an acceptable file, or AttachmentRejected."""
    if not data:
        raise AttachmentRejected("The attached file is empty.")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentRejected(
            f"The attached file is {len(data) / 1024 / 1024:.1f} MB; the limit is "
            f"{MAX_ATTACHMENT_BYTES // 1024 // 1024} MB."
        )
    content_type = sniff_type(data)
    if content_type is None:
        raise AttachmentRejected(
            f"The attached file is not {ACCEPTED}. Please attach one of those."
        )
    return content_type, clean_filename(filename, content_type)


def store_attachment(
    session: Session, response: Response, data: bytes, filename: str | None
) -> ResponseAttachment:
    """Check and store one file on a response (flushes). AttachmentRejected if refused."""
    content_type, clean = check_attachment(data, filename)
    attachment = ResponseAttachment(
        collective_id=response.collective_id,
        response_id=response.id,
        filename=clean,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
    )
    session.add(attachment)
    session.flush()
    return attachment


def content_disposition(filename: str) -> str:
    """`attachment` with the name for every browser: a plain-ASCII `filename` (quotes
    and backslashes dropped) and the full name as RFC 5987 `filename*`. The header stays
    latin-1 (PEP 3333), and no character of the name can end it early."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = "".join(ch for ch in fallback if ch not in '"\\' and ch.isprintable())
    return (
        f'attachment; filename="{fallback.strip() or "attachment"}"; '
        f"filename*=UTF-8''{quote(filename, safe='')}"
    )
