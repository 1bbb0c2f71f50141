"""Merge the parts' tagged PDFs into one, keeping the tags, and stamp every page.

Why not pypdf: pypdf parses every object into Python objects and clones them. For a
100,000-signatory letter (about 1,000 pages and 100,000 structure elements, one per line
of text) that took 13 s and 520 MB in the calling process, beyond the 300 MB a process may
use. The parts all come from WeasyPrint (pydyf), in our own render processes, so this
module works on their bytes instead: it reads each part's cross-reference stream and
object stream, renumbers every object into one numbering with a single regular
expression (references `N 0 R` and the structure keys `/StructParents` and
`/StructParent`; literal strings are matched first and left untouched), copies stream
data verbatim, and writes one new object stream per part. It parses (with the small
parser below) only the few objects it must change: catalogs, page trees, structure
roots, parent trees, page dictionaries, resources and top-level outline items. The
1,220 pages of a 100,000-signatory letter merge in about 1.5 s, holding the parts' bytes
(a few MB) and one part's objects at a time.

Annex A's columns: its parts are laid out on narrow pages, one per column, and set two
to an A4 sheet here: the right-hand page's content stream follows the left-hand one's
(each moved into place and clipped to its column), its marked-content ids are shifted
past the left-hand page's, its parent-tree entries join the sheet's, and references to
it (the tags' /Pg) point at the sheet.

What the merged document keeps, so it stays an accessible tagged PDF:
- one structure tree: a single /Document element whose kids are every part's top-level
  elements, in document order; the parent tree holds every part's entries with their keys
  shifted (pages' /StructParents and annotations' /StructParent shifted the same way);
- /MarkInfo /Marked true, /Lang, /ViewerPreferences /DisplayDocTitle, the first part's
  XMP metadata and document information (title, author, subject, keywords);
- one outline: every part's bookmarks, chained in order.

The stamp: "Page X of Y" and the reference, drawn at the foot of every page after the
merge (so X and Y run over the whole document whatever each part's length), and on a
draft a "DRAFT" watermark under the page's content. Both are marked content /Artifact
(pagination), outside the structure tree, in an embedded subset of Noto Serif built with
fontTools (a WinAnsi TrueType font with a ToUnicode map, so the text extracts).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any, NamedTuple

FONT_FILE = Path(__file__).resolve().parent / "assets" / "fonts" / "NotoSerif-Regular.ttf"
STAMP_FONT = b"/ChorusStamp"
STAMP_CHARS = "".join(chr(c) for c in range(32, 127)) + "\u00b7"
FOOTER_SIZE = 8.5
FOOTER_BASELINE = 30.0  # points above the bottom edge
FOOTER_SIDE = 56.7  # points from the left and right edges (20 mm, the page margin)
WATERMARK_SIZE = 130.0


class MergeError(Exception):
    """A part's PDF is not what WeasyPrint writes; the message says what was wrong."""


# --- a small PDF object parser ---------------------------------------------------------


class Ref(NamedTuple):
    num: int
    gen: int = 0


PdfValue = Any  # dict[bytes, PdfValue] | list[PdfValue] | Ref | bytes (a raw token)

_WS = re.compile(rb"(?:[\x00\t\n\x0c\r ]+|%[^\r\n]*)*")
_REF = re.compile(rb"(\d+)[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+R(?![0-9A-Za-z_])")
_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)")
_NAME = re.compile(rb"/[^\x00\t\n\x0c\r ()<>\[\]{}/%]*")
_KEYWORD = re.compile(rb"true|false|null")
_HEX = re.compile(rb"<[0-9A-Fa-f\x00\t\n\x0c\r ]*>")


def _skip(data: bytes, pos: int) -> int:
    match = _WS.match(data, pos)
    return match.end() if match else pos


def _literal_end(data: bytes, pos: int) -> int:
    """End (exclusive) of the literal string starting at data[pos] == '('."""
    depth = 0
    i = pos
    while i < len(data):
        c = data[i]
        if c == 0x5C:  # backslash: skip the escaped byte
            i += 2
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise MergeError("unterminated string")


def _parse_dict(data: bytes, pos: int) -> tuple[dict[bytes, PdfValue], int]:
    result: dict[bytes, PdfValue] = {}
    while True:
        pos = _skip(data, pos)
        if data.startswith(b">>", pos):
            return result, pos + 2
        key = _NAME.match(data, pos)
        if key is None:
            raise MergeError(f"dictionary key expected at {pos}")
        value, pos = parse_value(data, key.end())
        result[key.group()] = value


def _parse_array(data: bytes, pos: int) -> tuple[list[PdfValue], int]:
    items: list[PdfValue] = []
    while True:
        pos = _skip(data, pos)
        if data.startswith(b"]", pos):
            return items, pos + 1
        value, pos = parse_value(data, pos)
        items.append(value)


def parse_value(data: bytes, pos: int = 0) -> tuple[PdfValue, int]:
    """One PDF object from data[pos:]: (value, end position)."""
    pos = _skip(data, pos)
    if data.startswith(b"<<", pos):
        return _parse_dict(data, pos + 2)
    head = data[pos : pos + 1]
    if head == b"[":
        return _parse_array(data, pos + 1)
    if head == b"(":
        end = _literal_end(data, pos)
        return data[pos:end], end
    match = _REF.match(data, pos)
    if match:
        return Ref(int(match.group(1)), int(match.group(2))), match.end()
    for pattern in (_HEX, _NAME, _NUMBER, _KEYWORD):
        match = pattern.match(data, pos)
        if match:
            return match.group(), match.end()
    raise MergeError(f"unexpected {data[pos : pos + 10]!r} at {pos}")


def parse(data: bytes) -> PdfValue:
    return parse_value(data)[0]


def dump(value: PdfValue) -> bytes:
    """A parsed value written back as PDF syntax."""
    if isinstance(value, Ref):
        return b"%d %d R" % (value.num, value.gen)
    if isinstance(value, dict):
        return b"<<" + b"".join(k + b" " + dump(v) for k, v in value.items()) + b">>"
    if isinstance(value, list):
        return b"[" + b" ".join(dump(v) for v in value) + b"]"
    return bytes(value)


def _refs(value: PdfValue) -> list[Ref]:
    """A /K or /Kids value as a list of references (a lone reference, an array, or none)."""
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Ref)]
    return []


# --- reading one part ------------------------------------------------------------------

_INDIRECT = re.compile(rb"(\d+)[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+obj")
_STARTXREF = re.compile(rb"startxref[\x00\t\n\x0c\r ]+(\d+)")


@dataclass
class _Part:
    """One part's objects: text of the plain ones, (dictionary text, raw data) of streams."""

    objects: dict[int, bytes] = field(default_factory=dict)
    streams: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    size: int = 0
    root: int = 0
    info: int | None = None


def _read_indirect(data: bytes, pos: int) -> tuple[int, PdfValue, bytes, bytes | None]:
    """(number, value, value text, raw stream data or None) of the object at pos."""
    head = _INDIRECT.match(data, pos)
    if head is None:
        raise MergeError(f"no object at offset {pos}")
    start = _skip(data, head.end())
    value, end = parse_value(data, start)
    text = data[start:end]
    after = _skip(data, end)
    if not data.startswith(b"stream", after):
        return int(head.group(1)), value, text, None
    begin = after + len(b"stream")
    if data.startswith(b"\r\n", begin):
        begin += 2
    elif data.startswith(b"\n", begin):
        begin += 1
    length = value.get(b"/Length") if isinstance(value, dict) else None
    if not isinstance(length, bytes) or not length.isdigit():
        raise MergeError("stream without a direct /Length")
    return int(head.group(1)), value, text, data[begin : begin + int(length)]


def _inflate(value: dict[bytes, PdfValue], raw: bytes) -> bytes:
    filters = value.get(b"/Filter")
    if filters is None:
        return raw
    if filters in (b"/FlateDecode", [b"/FlateDecode"]) and b"/DecodeParms" not in value:
        return zlib.decompress(raw)
    raise MergeError(f"unsupported filter {filters!r}")


def _xref_entries(xref: dict[bytes, PdfValue], table: bytes) -> list[tuple[int, int, int, int]]:
    """(number, type, field 2, field 3) of every cross-reference stream entry."""
    widths = [int(w) for w in xref[b"/W"]]
    size = int(xref[b"/Size"])
    index = [int(i) for i in xref.get(b"/Index", [b"0", b"%d" % size])]
    if len(widths) != 3 or sum(widths) * sum(index[1::2]) > len(table):
        raise MergeError("short cross-reference stream")
    entries = []
    pos = 0
    for first, count in zip(index[::2], index[1::2], strict=True):
        for num in range(first, first + count):
            values = []
            for width in widths:
                values.append(int.from_bytes(table[pos : pos + width], "big") if width else 1)
                pos += width
            entries.append((num, values[0], values[1], values[2]))
    return entries


def read_part(data: bytes) -> _Part:
    """A part's objects, from its cross-reference stream (pydyf writes one, with every
    non-stream object in a single object stream)."""
    found = list(_STARTXREF.finditer(data, max(0, len(data) - 1024)))
    if not found:
        raise MergeError("no startxref")
    xref_num, xref, _text, raw = _read_indirect(data, int(found[-1].group(1)))
    if not isinstance(xref, dict) or xref.get(b"/Type") != b"/XRef" or raw is None:
        raise MergeError("no cross-reference stream")
    part = _Part(size=int(xref[b"/Size"]), root=xref[b"/Root"].num)
    if isinstance(xref.get(b"/Info"), Ref):
        part.info = xref[b"/Info"].num
    object_streams: dict[int, list[bytes]] = {}
    packed: list[tuple[int, int, int]] = []
    for num, kind, f2, f3 in _xref_entries(xref, _inflate(xref, raw)):
        if kind == 2:
            packed.append((num, f2, f3))
        if kind != 1 or num == xref_num:
            continue
        got, value, text, raw = _read_indirect(data, f2)
        if got != num:
            raise MergeError(f"object {num} is not at its offset")
        if raw is None:
            part.objects[num] = text
        elif isinstance(value, dict) and value.get(b"/Type") == b"/ObjStm":
            object_streams[num] = _unpack(value, _inflate(value, raw))
        else:
            part.streams[num] = (text, raw)
    for num, stream, position in packed:
        try:
            part.objects[num] = object_streams[stream][position]
        except (KeyError, IndexError) as exc:
            raise MergeError(f"object {num} missing from its object stream") from exc
    return part


def _unpack(value: dict[bytes, PdfValue], body: bytes) -> list[bytes]:
    count, first = int(value[b"/N"]), int(value[b"/First"])
    numbers = body[:first].split()
    starts = [int(n) for n in numbers[1 : 2 * count : 2]] + [len(body) - first]
    return [body[first + a : first + b].strip() for a, b in itertools.pairwise(starts)]


# --- renumbering -----------------------------------------------------------------------

# A literal string (left alone: pydyf escapes every parenthesis in it), a reference, or a
# structure key. Numbers inside names and decimals are not references (lookbehind).
_RENUMBER = re.compile(
    rb"\((?:\\.|[^\\()])*\)"
    rb"|(?<![0-9A-Za-z.#_/+-])(\d+)[\x00\t\n\x0c\r ]+(\d+)[\x00\t\n\x0c\r ]+R(?![0-9A-Za-z_])"
    rb"|(/StructParents?)[\x00\t\n\x0c\r ]+(\d+)",
    re.S,
)


def _renumberer(base: int, remap: dict[int, int], key_base: int) -> Callable[[bytes], bytes]:
    def replace(match: re.Match[bytes]) -> bytes:
        if match.group(1) is not None:
            num = int(match.group(1))
            return b"%d 0 R" % remap.get(num, base + num)
        if match.group(3) is not None:
            return match.group(3) + b" %d" % (int(match.group(4)) + key_base)
        return match.group(0)

    def renumber(text: bytes) -> bytes:
        return _RENUMBER.sub(replace, text)

    return renumber


# --- the stamp font --------------------------------------------------------------------


@dataclass(frozen=True)
class StampFont:
    """A WinAnsi TrueType subset for the page stamps: widths in 1/1000 em by code."""

    file: bytes
    widths: dict[int, int]
    name: bytes
    bbox: tuple[int, int, int, int]
    ascent: int
    descent: int
    cap_height: int

    def width(self, text: bytes, size: float) -> float:
        return sum(self.widths.get(c, 0) for c in text) * size / 1000


@lru_cache(maxsize=1)
def stamp_font() -> StampFont:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.notdef_outline = True
    options.name_IDs = ["*"]
    options.layout_features = []
    options.hinting = False
    font = TTFont(str(FONT_FILE))
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=STAMP_CHARS)
    subsetter.subset(font)
    out = BytesIO()
    font.save(out)
    scale = 1000 / font["head"].unitsPerEm
    cmap = font.getBestCmap()
    hmtx = font["hmtx"]
    widths = {}
    for char in STAMP_CHARS:
        code = char.encode("cp1252")[0]
        glyph = cmap.get(ord(char))
        if glyph is not None:
            widths[code] = round(hmtx[glyph][0] * scale)
    head = font["head"]
    os2 = font["OS/2"]
    tag = (
        hashlib.sha256(out.getvalue())
        .hexdigest()[:6]
        .upper()
        .translate(str.maketrans("0123456789", "GHIJKLMNOP"))
    )
    return StampFont(
        file=out.getvalue(),
        widths=widths,
        name=f"/{tag}+NotoSerif-Regular".encode(),
        bbox=(
            round(head.xMin * scale),
            round(head.yMin * scale),
            round(head.xMax * scale),
            round(head.yMax * scale),
        ),
        ascent=round(font["hhea"].ascent * scale),
        descent=round(font["hhea"].descent * scale),
        cap_height=round(getattr(os2, "sCapHeight", 700) * scale),
    )


def stamp_text(text: str) -> bytes:
    """Text as a PDF literal string in WinAnsi; characters it lacks become "?"."""
    encoded = "".join(c if c in STAMP_CHARS else "?" for c in text).encode("cp1252")
    return b"(" + re.sub(rb"([\\()])", rb"\\\1", encoded) + b")"


def _stream(extra: bytes, data: bytes, *, compress: bool = True) -> tuple[bytes, bytes]:
    if compress:
        data = zlib.compress(data, 6)
        extra += b"/Filter /FlateDecode"
    return b"<<" + extra + b"/Length %d>>" % len(data), data


def _to_unicode(font: StampFont) -> bytes:
    codes = sorted(font.widths)
    lines = b"".join(b"<%02X> <%04X>\n" % (c, ord(bytes([c]).decode("cp1252"))) for c in codes)
    return (
        b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        b"1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        b"%d beginbfchar\n" % len(codes) + lines + b"endbfchar\n"
        b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    )


# --- the merge -------------------------------------------------------------------------

# Our own objects take the first numbers; the parts follow.
CATALOG, PAGES, STRUCT_ROOT, DOCUMENT, PARENT_TREE, OUTLINES = 1, 2, 3, 4, 5, 6
FONT, FONT_DESCRIPTOR, FONT_FILE_OBJ, TO_UNICODE, PREFIX, OWN_OBJSTM = 7, 8, 9, 10, 11, 12
COLUMN_STREAMS, COLUMNS_END = (13, 14), 15
RESERVED = 15

# Annex A is laid out on narrow pages, one per column (81 x 255 mm, the `column` page in
# web/pdf/assets/letter.css), two to an A4 sheet: as fast as one wide column and far
# faster than CSS columns (see the stylesheet). The sheet keeps the letter's margins
# (20 mm at the sides, 22 mm at the foot) and an 8 mm gap between the columns.
MM = 72 / 25.4
A4 = (210 * MM, 297 * MM)
COLUMN_SIZE = (81 * MM, 255 * MM)
COLUMN_ORIGINS = ((20 * MM, 22 * MM), (109 * MM, 22 * MM))


@dataclass(frozen=True)
class Stamp:
    reference: str
    draft: bool = False


@dataclass(frozen=True)
class Merged:
    data: bytes
    pages: int


class _Writer:
    def __init__(self) -> None:
        self.out = BytesIO()
        self.xref: dict[int, tuple[int, int, int]] = {}
        self.out.write(b"%PDF-1.7\n%\xf0\x9f\x96\xa4\n")

    def direct(self, num: int, text: bytes, raw: bytes | None = None) -> None:
        self.xref[num] = (1, self.out.tell(), 0)
        self.out.write(b"%d 0 obj\n" % num + text)
        if raw is not None:
            self.out.write(b"\nstream\n" + raw + b"\nendstream")
        self.out.write(b"\nendobj\n")

    def packed(self, num: int, objects: Sequence[tuple[int, bytes]]) -> None:
        """An object stream `num` holding `objects`."""
        header: list[bytes] = []
        body: list[bytes] = []
        offset = 0
        for index, (obj_num, text) in enumerate(objects):
            header.append(b"%d %d" % (obj_num, offset))
            body.append(text)
            offset += len(text) + 1
            self.xref[obj_num] = (2, num, index)
        head = b" ".join(header) + b"\n"
        extra = b"/Type /ObjStm/N %d/First %d" % (len(objects), len(head))
        text, raw = _stream(extra, head + b"\n".join(body) + b"\n")
        self.direct(num, text, raw)

    def finish(self, root: int, info: int | None, identifier: bytes) -> bytes:
        xref_num = max(self.xref) + 1
        offset = self.out.tell()
        self.xref[xref_num] = (1, offset, 0)
        # Unused numbers form the free list, linked from object 0 (ISO 32000-1 7.5.4).
        free = [n for n in range(1, xref_num) if n not in self.xref]
        following = dict(zip(free, [*free[1:], 0], strict=True))
        entries = [(0, free[0] if free else 0, 65535)]
        for n in range(1, xref_num + 1):
            entries.append(self.xref.get(n) or (0, following[n], 1))
        w2 = max(1, math.ceil(max(e[1] for e in entries).bit_length() / 8))
        w3 = max(1, math.ceil(max(e[2] for e in entries).bit_length() / 8))
        table = b"".join(
            bytes([kind]) + f2.to_bytes(w2, "big") + f3.to_bytes(w3, "big")
            for kind, f2, f3 in entries
        )
        extra = b"/Type /XRef/Size %d/W [1 %d %d]/Root %d 0 R" % (xref_num + 1, w2, w3, root)
        if info is not None:
            extra += b"/Info %d 0 R" % info
        extra += b"/ID [<%s> <%s>]" % (identifier, identifier)
        text, raw = _stream(extra, table)
        self.direct(xref_num, text, raw)
        self.out.write(b"startxref\n%d\n%%%%EOF\n" % offset)
        return self.out.getvalue()


def _page_box(page: dict[bytes, PdfValue]) -> tuple[float, float, float, float]:
    box = page.get(b"/MediaBox")
    try:
        x0, y0, x1, y1 = (float(v) for v in box)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return 0.0, 0.0, 595.276, 841.89
    return x0, y0, x1, y1


def _footer(
    font: StampFont, stamp: Stamp, box: tuple[float, ...], number: int, total: int
) -> bytes:
    x0, y0, x1, _y1 = box
    reference = stamp_text(stamp.reference[:80])
    page = stamp_text(f"Page {number} of {total}")
    page_width = font.width(page[1:-1].replace(b"\\", b""), FOOTER_SIZE)
    side = min(FOOTER_SIDE, (x1 - x0) / 10)
    y = y0 + min(FOOTER_BASELINE, (box[3] - y0) / 20)
    return (
        b"\nQ\n/Artifact <</Type /Pagination /Subtype /Footer>> BDC\n"
        b"q 0.2 g BT %s %.2f Tf 1 0 0 1 %.2f %.2f Tm %s Tj ET\n"
        b"BT %s %.2f Tf 1 0 0 1 %.2f %.2f Tm %s Tj ET Q\nEMC\n"
        % (
            STAMP_FONT,
            FOOTER_SIZE,
            x0 + side,
            y,
            reference,
            STAMP_FONT,
            FOOTER_SIZE,
            x1 - side - page_width,
            y,
            page,
        )
    )


def _prefix(font: StampFont, stamp: Stamp) -> bytes:
    """Under every page's content: the draft watermark (if any), then `q` so the stamp
    after the content starts from the default graphics state."""
    if not stamp.draft:
        return b"q\n"
    word = b"DRAFT"
    width = font.width(word, WATERMARK_SIZE)
    height = font.cap_height * WATERMARK_SIZE / 1000
    cos = sin = math.sqrt(0.5)
    cx, cy = 297.64, 420.94  # the middle of an A4 page
    x = cx - cos * width / 2 + sin * height / 2
    y = cy - sin * width / 2 - cos * height / 2
    return (
        b"/Artifact <</Type /Pagination /Subtype /Watermark>> BDC\n"
        b"q 0.86 g BT %s %.1f Tf %.5f %.5f %.5f %.5f %.2f %.2f Tm (DRAFT) Tj ET Q\nEMC\nq\n"
        % (STAMP_FONT, WATERMARK_SIZE, cos, sin, -sin, cos, x, y)
    )


@dataclass(frozen=True)
class PartPdf:
    """One part as its render process wrote it: the PDF, its page count, and how many of
    its (narrow) pages go side by side on one A4 sheet: 2 for annex A's columns."""

    data: bytes
    pages: int
    columns: int = 1

    @property
    def sheets(self) -> int:
        return -(-self.pages // self.columns)


@dataclass
class _Source:
    """One part being merged: its objects renumbered into the merged document's numbers."""

    index: int
    pdf: PartPdf
    part: _Part
    catalog: dict[bytes, PdfValue]
    base: int
    drop: set[int] = field(default_factory=set)
    remap: dict[int, int] = field(default_factory=dict)
    objects: dict[int, bytes] = field(default_factory=dict)
    streams: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    tree: dict[int, PdfValue] = field(default_factory=dict)
    edited: set[int] = field(default_factory=set)
    renumber: Callable[[bytes], bytes] = bytes


class _Merger:
    """Adds the parts one by one, writing each as soon as it is renumbered (so memory
    holds one part at a time), then writes the document's own objects."""

    def __init__(self, stamp: Stamp, total_pages: int) -> None:
        self.stamp = stamp
        self.total_pages = total_pages
        self.font = stamp_font()
        self.writer = _Writer()
        self.page_refs: list[int] = []
        self.document_kids: list[Ref] = []
        self.nums: list[PdfValue] = []
        self.outline_items: list[tuple[int, dict[bytes, PdfValue]]] = []
        self.outline_count = 0
        self.destinations: list[tuple[bytes, PdfValue]] = []
        self.lang: PdfValue = b"()"
        self.metadata: Ref | None = None
        self.info: int | None = None
        self.base = RESERVED
        self.key_base = 0
        self.identifier = hashlib.sha256()

    # -- one part --

    def add(self, index: int, pdf: PartPdf) -> None:
        self.identifier.update(pdf.data)
        part = read_part(pdf.data)
        src = _Source(index, pdf, part, parse(part.objects[part.root]), self.base)
        pages_root = src.catalog[b"/Pages"].num
        src.drop.add(part.root)
        src.drop.add(pages_root)
        src.remap[pages_root] = PAGES
        kids, parent_tree = self._structure(src)
        outline_root = src.catalog.get(b"/Outlines")
        if isinstance(outline_root, Ref):
            src.drop.add(outline_root.num)
            src.remap[outline_root.num] = OUTLINES
        self._document_info(src)
        virtual = _page_refs(part, pages_root)
        if len(virtual) != pdf.pages:
            raise MergeError(f"part {index} has {len(virtual)} pages, not {pdf.pages}")
        # A right-hand column's page joins its sheet: references to it (the tags' /Pg,
        # an outline's destination) move to the sheet.
        sheets = [virtual[i : i + pdf.columns] for i in range(0, len(virtual), pdf.columns)]
        for sheet in sheets:
            for column in sheet[1:]:
                src.drop.add(column)
                src.remap[column] = src.base + sheet[0]

        src.renumber = _renumberer(src.base, src.remap, self.key_base)
        src.objects = {
            src.base + n: src.renumber(t) for n, t in part.objects.items() if n not in src.drop
        }
        src.streams = {
            src.base + n: (src.renumber(t), raw)
            for n, (t, raw) in part.streams.items()
            if n not in src.drop
        }
        self.document_kids.extend(Ref(src.remap.get(r.num, src.base + r.num)) for r in kids)
        max_key = -1
        for key, value in _number_tree(parent_tree, part):
            src.tree[key + self.key_base] = _moved(value, src.base, src.remap)
            max_key = max(max_key, key)

        for i, sheet in enumerate(sheets):
            self._sheet(src, sheet, src.base + part.size + i)
        for key in sorted(src.tree):
            self.nums += [b"%d" % key, src.tree[key]]
        if isinstance(outline_root, Ref):
            self._outline(src, outline_root.num)
        self._destinations(src)

        for num, (text, raw) in src.streams.items():
            self.writer.direct(num, text, raw)
        objstm = src.base + part.size + len(sheets)
        self.writer.packed(objstm, sorted(src.objects.items()))
        self.base = objstm
        self.key_base += max_key + 1

    def _structure(self, src: _Source) -> tuple[list[Ref], PdfValue]:
        """The part's top-level structure elements (they join our /Document) and its
        parent tree; drops its structure root and /Document element."""
        root_num = src.catalog[b"/StructTreeRoot"].num
        root = parse(src.part.objects[root_num])
        src.drop.add(root_num)
        top = _refs(root.get(b"/K"))
        first = parse(src.part.objects[top[0].num]) if len(top) == 1 else {}
        if first.get(b"/S") == b"/Document":
            src.drop.add(top[0].num)
            src.remap[top[0].num] = DOCUMENT
            kids = _refs(first.get(b"/K"))
        else:
            src.remap[root_num] = DOCUMENT
            kids = top
        parent_tree = root.get(b"/ParentTree")
        if isinstance(parent_tree, Ref):
            src.drop.add(parent_tree.num)
            parent_tree = parse(src.part.objects[parent_tree.num])
        return kids, parent_tree

    def _document_info(self, src: _Source) -> None:
        """The first part (the letter) gives the language, XMP metadata and document
        information; the others' are dropped."""
        metadata = src.catalog.get(b"/Metadata")
        if src.index == 0:
            self.lang = src.catalog.get(b"/Lang", b"()")
            if isinstance(metadata, Ref):
                self.metadata = Ref(src.base + metadata.num)
            if src.part.info is not None:
                self.info = src.base + src.part.info
            return
        if isinstance(metadata, Ref):
            src.drop.add(metadata.num)
        if src.part.info is not None:
            src.drop.add(src.part.info)

    def _sheet(self, src: _Source, sheet: list[int], suffix: int) -> None:
        """One page of the merged document: the part's page (or its columns' pages), the
        stamp around it, the stamp font in its resources."""
        num = src.base + sheet[0]
        page = parse(src.objects[num])
        if src.pdf.columns == 1:
            contents = [Ref(PREFIX), *_refs(page.get(b"/Contents")), Ref(suffix)]
        else:
            contents = [Ref(PREFIX), *self._columns(src, page, sheet), Ref(COLUMNS_END)]
            contents.append(Ref(suffix))
            page[b"/MediaBox"] = [b"0", b"0", b"%.4f" % A4[0], b"%.4f" % A4[1]]
            page.pop(b"/TrimBox", None)
            page.pop(b"/BleedBox", None)
        page[b"/Contents"] = contents
        resources = page.get(b"/Resources")
        if isinstance(resources, Ref):
            if resources.num not in src.edited:
                shared = parse(src.objects[resources.num])
                self._add_font(src, shared)
                src.objects[resources.num] = dump(shared)
                src.edited.add(resources.num)
        elif isinstance(resources, dict):
            self._add_font(src, resources)
        else:
            page[b"/Resources"] = {b"/Font": {STAMP_FONT: Ref(FONT)}}
        src.objects[num] = dump(page)
        self.page_refs.append(num)
        footer = _footer(
            self.font, self.stamp, _page_box(page), len(self.page_refs), self.total_pages
        )
        src.streams[suffix] = _stream(b"", footer, compress=False)

    def _columns(self, src: _Source, page: dict[bytes, PdfValue], sheet: list[int]) -> list[Ref]:
        """Content streams placing each column's page on the sheet. A right-hand column's
        marked-content ids follow on from the left-hand one's, and its parent-tree
        entries join the sheet's; its annotations move with it."""
        contents: list[Ref] = []
        annots: list[PdfValue] = []
        key = int(page.get(b"/StructParents", b"-1"))
        mcids = len(src.tree.get(key) or [])
        for position, column in enumerate(sheet):
            column_page = page
            if position:
                column_page = parse(src.renumber(src.part.objects[column]))
                column_key = int(column_page.get(b"/StructParents", b"-1"))
                column_tree = src.tree.pop(column_key, None)
                for ref in _refs(column_page.get(b"/Contents")):
                    src.streams[ref.num] = _shift_mcids(*src.streams[ref.num], mcids)
                if isinstance(column_tree, list) and key >= 0:
                    src.tree[key] = [*(src.tree.get(key) or []), *column_tree]
                    mcids += len(column_tree)
            contents += [Ref(COLUMN_STREAMS[position]), *_refs(column_page.get(b"/Contents"))]
            x, y = COLUMN_ORIGINS[position]
            for annot in _refs(column_page.get(b"/Annots")):
                src.objects[annot.num] = _shift_annotation(src.objects[annot.num], x, y)
                annots.append(annot)
        if annots:
            page[b"/Annots"] = annots
        return contents

    def _add_font(self, src: _Source, resources: dict[bytes, PdfValue]) -> None:
        """Give a resources dictionary the stamp font (through its font dictionary when
        that is an object of its own)."""
        fonts = resources.get(b"/Font")
        if isinstance(fonts, Ref):
            if fonts.num not in src.edited:
                shared = parse(src.objects[fonts.num])
                shared[STAMP_FONT] = Ref(FONT)
                src.objects[fonts.num] = dump(shared)
                src.edited.add(fonts.num)
        elif isinstance(fonts, dict):
            fonts[STAMP_FONT] = Ref(FONT)
        else:
            resources[b"/Font"] = {STAMP_FONT: Ref(FONT)}

    def _destinations(self, src: _Source) -> None:
        """Keep the part's named destinations (the targets of links inside the letter)."""
        names = src.catalog.get(b"/Names")
        if isinstance(names, Ref):
            names = parse(src.part.objects[names.num])
        dests = names.get(b"/Dests") if isinstance(names, dict) else None
        if isinstance(dests, Ref):
            dests = parse(src.part.objects[dests.num])
        pairs = dests.get(b"/Names") if isinstance(dests, dict) else None
        if isinstance(pairs, list):
            for key, value in zip(pairs[::2], pairs[1::2], strict=False):
                self.destinations.append((key, _moved(value, src.base, src.remap)))

    def _outline(self, src: _Source, root: int) -> None:
        """Keep the part's top-level bookmarks aside: they are chained across parts at
        the end (their children stay where they are)."""
        self.outline_count += int(parse(src.part.objects[root]).get(b"/Count", b"0"))
        item = parse(src.part.objects[root]).get(b"/First")
        for _ in range(10_000):
            if not isinstance(item, Ref):
                break
            num = src.base + item.num
            self.outline_items.append((num, parse(src.objects.pop(num))))
            item = parse(src.part.objects[item.num]).get(b"/Next")

    # -- the document's own objects --

    def finish(self) -> Merged:
        items = self.outline_items
        for i, (_num, item) in enumerate(items):
            item[b"/Parent"] = Ref(OUTLINES)
            item.pop(b"/Prev", None)
            item.pop(b"/Next", None)
            if i > 0:
                item[b"/Prev"] = Ref(items[i - 1][0])
            if i + 1 < len(items):
                item[b"/Next"] = Ref(items[i + 1][0])
        own: list[tuple[int, bytes]] = [(num, dump(item)) for num, item in items]
        catalog: dict[bytes, PdfValue] = {
            b"/Type": b"/Catalog",
            b"/Pages": Ref(PAGES),
            b"/StructTreeRoot": Ref(STRUCT_ROOT),
            b"/MarkInfo": {b"/Marked": b"true"},
            b"/Lang": self.lang,
            b"/ViewerPreferences": {b"/DisplayDocTitle": b"true"},
        }
        if self.metadata is not None:
            catalog[b"/Metadata"] = self.metadata
        if self.destinations:
            # A name tree's keys are sorted (ISO 32000-1 7.9.6); the first part's wins a tie.
            unique: dict[bytes, PdfValue] = {}
            for key, dest in self.destinations:
                unique.setdefault(key, dest)
            ordered = sorted(unique.items(), key=lambda item: _string(item[0]))
            pairs = [value for item in ordered for value in item]
            catalog[b"/Names"] = {b"/Dests": {b"/Names": pairs}}
        if items:
            catalog[b"/Outlines"] = Ref(OUTLINES)
            catalog[b"/PageMode"] = b"/UseOutlines"
            outlines = {
                b"/Type": b"/Outlines",
                b"/First": Ref(items[0][0]),
                b"/Last": Ref(items[-1][0]),
                b"/Count": b"%d" % self.outline_count,
            }
            own.append((OUTLINES, dump(outlines)))
        pages = {
            b"/Type": b"/Pages",
            b"/Kids": [Ref(n) for n in self.page_refs],
            b"/Count": b"%d" % len(self.page_refs),
        }
        struct_root = {
            b"/Type": b"/StructTreeRoot",
            b"/K": [Ref(DOCUMENT)],
            b"/ParentTree": Ref(PARENT_TREE),
            b"/ParentTreeNextKey": b"%d" % self.key_base,
        }
        document = {
            b"/Type": b"/StructElem",
            b"/S": b"/Document",
            b"/P": Ref(STRUCT_ROOT),
            b"/K": self.document_kids,
        }
        own += [
            (CATALOG, dump(catalog)),
            (PAGES, dump(pages)),
            (STRUCT_ROOT, dump(struct_root)),
            (DOCUMENT, dump(document)),
            (PARENT_TREE, dump({b"/Nums": self.nums})),
            (FONT, _font_dict(self.font)),
            (FONT_DESCRIPTOR, _font_descriptor(self.font)),
        ]
        font_file = self.font.file
        self.writer.direct(FONT_FILE_OBJ, *_stream(b"/Length1 %d" % len(font_file), font_file))
        self.writer.direct(TO_UNICODE, *_stream(b"", _to_unicode(self.font)))
        self.writer.direct(PREFIX, *_stream(b"", _prefix(self.font, self.stamp), compress=False))
        for position, (x, y) in enumerate(COLUMN_ORIGINS):
            # Restore (after the left column), move to the column and clip to it: a name
            # too long for its column must not run into the next.
            move = b"%sq 1 0 0 1 %.3f %.3f cm 0 0 %.3f %.3f re W n\n" % (
                b"Q\n" if position else b"",
                x,
                y,
                COLUMN_SIZE[0],
                COLUMN_SIZE[1],
            )
            self.writer.direct(COLUMN_STREAMS[position], *_stream(b"", move, compress=False))
        self.writer.direct(COLUMNS_END, *_stream(b"", b"Q\n", compress=False))
        self.writer.packed(OWN_OBJSTM, sorted(own))
        identifier = self.identifier.hexdigest()[:32].encode()
        data = self.writer.finish(CATALOG, self.info, identifier)
        return Merged(data=data, pages=len(self.page_refs))


def merge_parts(parts: Sequence[PartPdf], stamp: Stamp) -> Merged:
    """One tagged PDF from the parts' PDFs, in order (see the module docstring)."""
    merger = _Merger(stamp, sum(p.sheets for p in parts))
    for index, part in enumerate(parts):
        merger.add(index, part)
    return merger.finish()


def _string(token: bytes) -> bytes:
    """The bytes a PDF string token stands for (literal or hexadecimal), to sort by."""
    if token.startswith(b"<"):
        return bytes.fromhex(token[1:-1].decode("ascii"))
    return re.sub(rb"\\(.)", rb"\1", token[1:-1])


def _moved(value: PdfValue, base: int, remap: dict[int, int]) -> PdfValue:
    """A parsed value with its references renumbered like the part's objects."""
    if isinstance(value, Ref):
        return Ref(remap.get(value.num, base + value.num))
    if isinstance(value, list):
        return [_moved(v, base, remap) for v in value]
    if isinstance(value, dict):
        return {k: _moved(v, base, remap) for k, v in value.items()}
    return value


_MCID = re.compile(rb"/MCID[\x00\t\n\x0c\r ]+(\d+)")


def _shift_mcids(text: bytes, raw: bytes, offset: int) -> tuple[bytes, bytes]:
    """A content stream with its marked-content ids moved up by `offset` (a right-hand
    column joins the ids of its sheet's left-hand column)."""
    data = _inflate(parse(text), raw)
    data = _MCID.sub(lambda m: b"/MCID %d" % (int(m.group(1)) + offset), data)
    return _stream(b"", data)


def _shift_annotation(text: bytes, x: float, y: float) -> bytes:
    annotation = parse(text)
    rect = annotation.get(b"/Rect")
    if isinstance(rect, list) and len(rect) == 4:
        x0, y0, x1, y1 = (float(v) for v in rect)
        annotation[b"/Rect"] = [b"%.3f" % v for v in (x0 + x, y0 + y, x1 + x, y1 + y)]
        annotation.pop(b"/QuadPoints", None)
    return dump(annotation)


def _font_dict(font: StampFont) -> bytes:
    first, last = min(font.widths), max(font.widths)
    widths = [b"%d" % font.widths.get(c, 0) for c in range(first, last + 1)]
    return dump(
        {
            b"/Type": b"/Font",
            b"/Subtype": b"/TrueType",
            b"/BaseFont": font.name,
            b"/FirstChar": b"%d" % first,
            b"/LastChar": b"%d" % last,
            b"/Widths": widths,
            b"/Encoding": b"/WinAnsiEncoding",
            b"/FontDescriptor": Ref(FONT_DESCRIPTOR),
            b"/ToUnicode": Ref(TO_UNICODE),
        }
    )


def _font_descriptor(font: StampFont) -> bytes:
    return dump(
        {
            b"/Type": b"/FontDescriptor",
            b"/FontName": font.name,
            b"/Flags": b"34",  # serif, non-symbolic
            b"/FontBBox": [b"%d" % v for v in font.bbox],
            b"/ItalicAngle": b"0",
            b"/Ascent": b"%d" % font.ascent,
            b"/Descent": b"%d" % font.descent,
            b"/CapHeight": b"%d" % font.cap_height,
            b"/StemV": b"80",
            b"/FontFile2": Ref(FONT_FILE_OBJ),
        }
    )


def _page_refs(part: _Part, node: int, depth: int = 0) -> list[int]:
    """Page object numbers under a page tree node, in order."""
    if depth > 32:
        raise MergeError("page tree too deep")
    value = parse(part.objects[node])
    if value.get(b"/Type") == b"/Page":
        return [node]
    found: list[int] = []
    for kid in _refs(value.get(b"/Kids")):
        found.extend(_page_refs(part, kid.num, depth + 1))
    return found


def _number_tree(node: PdfValue, part: _Part, depth: int = 0) -> list[tuple[int, PdfValue]]:
    """(key, value) pairs of a number tree (its /Nums, or its /Kids' in order)."""
    if depth > 32 or not isinstance(node, dict):
        return []
    pairs: list[tuple[int, PdfValue]] = []
    entries = node.get(b"/Nums")
    if isinstance(entries, Ref):
        entries = parse(part.objects[entries.num])
    if isinstance(entries, list):
        for key, value in zip(entries[::2], entries[1::2], strict=False):
            nested = None
            if isinstance(value, Ref) and value.num in part.objects:
                nested = parse(part.objects[value.num])
            # An indirect array of a page's elements is taken inline; an element stays a
            # reference.
            pairs.append((int(key), nested if isinstance(nested, list) else value))
    for kid in _refs(node.get(b"/Kids")):
        pairs.extend(_number_tree(parse(part.objects[kid.num]), part, depth + 1))
    return pairs
