"""The PDF engine (web/pdf/engine.py): the letter, its annexes, tags, fonts, limits.

Renders are real (WeasyPrint in render processes); the PDFs are read back with pypdf and
pikepdf as a reader or an assistive technology would. A few hundred names across several
chunks (small chunk sizes) prove chunking, merging and page numbering; the 100,000-name
run is a benchmark (`python -m bench pdf`), not a test.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pikepdf
import pypdf
import pytest
from fontTools.ttLib import TTFont

from web.pdf.contract import LetterDoc, MethodFacts, Party, Signatory, Slot, Voice
from web.pdf.engine import Part, RenderError, plan_parts, render_letter

ROOT = Path(__file__).resolve().parents[1]
LETTER_HASH = "3f" * 32
VERIFY_URL = "https://chorus.example/verify"


def letter_doc(**changes: object) -> LetterDoc:
    """A meeting request to a minister, every field filled."""
    doc = LetterDoc(
        reference="CH-powys-buses-v2",
        title="Keep rural buses running",
        subject="Rural bus services in Powys",
        date="25 November 2026",
        kind="meeting_request",
        audience_style="minister",
        sender=Party(
            name="Powys Bus Users",
            address_lines=("1 Stryd Fawr", "Llanidloes", "SY18 6AA"),
            email="hello@powys-bus.example",
        ),
        recipient=Party(
            name="Jane Doe MS",
            role="Cabinet Secretary for Transport",
            organisation="Welsh Government",
            address_lines=("Cathays Park", "Cardiff", "CF10 3NQ"),
        ),
        salutation="Dear Cabinet Secretary",
        summary="Since April the T4 runs twice a day.\n\nPeople miss hospital appointments.",
        body_html="<p>Body paragraph about the Bws T4 to Ŵyrcwm.</p><p>Second body paragraph.</p>",
        asks=("Restore the hourly T4 timetable.", "Consult bus users before any cut."),
        closing="We would be grateful for your reply to each of our asks.",
        sign_off="Yours sincerely",
        method=MethodFacts(
            verified_total=300,
            by_method=(("Online", 280), ("Paper", 20)),
            by_status=(
                ("Verified", 300, "Counted"),
                ("Waiting for email confirmation", 12, "Not counted until confirmed"),
            ),
            statements_total=40,
            distinct_statements=25,
            regions=(("Wales", 250), ("England", 50)),
            first_signed="1 October 2026",
            last_signed="20 November 2026",
            letter_sha256=LETTER_HASH,
            verify_url=VERIFY_URL,
        ),
        letter_version=2,
        letter_sha256=LETTER_HASH,
        verify_url=VERIFY_URL,
        evidence=(("Survey of bus users", "https://powys-bus.example/survey"),),
        lead_signatories=("Dafydd ap Gwilym, chair",),
        organisations=("Age Cymru Powys",),
        meeting_purpose="To agree how the T4 can run hourly again.",
        meeting_attendees=("Dafydd ap Gwilym", "Siân Owen"),
        meeting_slots=(
            Slot("Tuesday 3 March 2027, 10:00-11:00", "online"),
            Slot("Wednesday 4 March 2027, 14:00-15:00"),
            Slot("Thursday 5 March 2027, 09:00-10:00"),
        ),
        keywords=("buses", "Powys"),
        author="Powys Bus Users",
    )
    return replace(doc, **changes)  # type: ignore[arg-type]


def signatories(count: int) -> list[Signatory]:
    return [Signatory(f"Signer{i:04d} Jones", "Cardiff" if i % 3 else "") for i in range(count)]


def voices(count: int) -> list[Voice]:
    return [
        Voice(
            f"Voice{i:03d}: the T4 was my lifeline to the surgery in Llanidloes and now it "
            "runs twice a day, so I miss appointments and cannot see my family.",
            count=1 + i % 3,
            name="Siân" if i % 2 else "",
        )
        for i in range(count)
    ]


@dataclass
class Rendered:
    data: bytes
    pages: int
    text: list[str]  # per page

    @property
    def all_text(self) -> str:
        return "\n".join(self.text)


def read(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def _all(data: bytes) -> str:
    return "\n".join(read(data))


@pytest.fixture(scope="module")
def letter() -> Rendered:
    """300 signatories in 3 chunks, 25 voices in 3 chunks: 8 parts merged."""
    pdf = render_letter(
        letter_doc(), signatories(300), voices(25), chunk_names=120, chunk_voices=10
    )
    return Rendered(pdf.data, pdf.pages, read(pdf.data))


def test_letter_reads_in_order_from_sender_to_annexes(letter: Rendered) -> None:
    text = letter.all_text
    in_order = [
        "Powys Bus Users",
        "25 November 2026",
        "Jane Doe MS",
        "Cabinet Secretary for Transport",
        "Our reference: CH-powys-buses-v2",
        "Rural bus services in Powys",
        "Dear Cabinet Secretary,",
        "Since April the T4 runs twice a day.",
        "Body paragraph about the Bws T4 to Ŵyrcwm.",
        "Restore the hourly T4 timetable.",
        "Consult bus users before any cut.",
        "To agree how the T4 can run hourly again.",
        "Siân Owen",
        "Tuesday 3 March 2027, 10:00-11:00 (online)",
        "https://powys-bus.example/survey",
        "We would be grateful for your reply",
        "Yours sincerely,",
        "Dafydd ap Gwilym, chair",
        "Age Cymru Powys",
        LETTER_HASH,
        VERIFY_URL,
        "Annex A: Signatories",
        "Signer0000 Jones",
        "Signer0299 Jones (Cardiff)",
        "Annex B: In their own words",
        "Annex C: Method",
    ]
    positions = [text.find(fragment) for fragment in in_order]
    missing = [f for f, p in zip(in_order, positions, strict=True) if p < 0]
    assert not missing, f"not in the PDF: {missing}"
    assert positions == sorted(positions), "the letter does not read in order"


def test_every_signatory_is_listed_once_in_annex_a(letter: Rendered) -> None:
    found = re.findall(r"Signer(\d{4}) Jones", letter.all_text)
    assert sorted(int(n) for n in found) == list(range(300))


def test_annex_b_shows_each_voice_once_with_how_many_said_the_same(letter: Rendered) -> None:
    text = " ".join(letter.all_text.split())
    assert sorted(int(n) for n in re.findall(r"Voice(\d{3}):", text)) == list(range(25))
    assert "(and 1 other said much the same)" in text
    assert "(and 2 others said much the same)" in text
    assert "” — Siân" in text


def test_annex_c_gives_the_method_and_how_to_check_authenticity(letter: Rendered) -> None:
    annex = " ".join(letter.all_text[letter.all_text.find("Annex C: Method") :].split())
    for fragment in (
        "300 verified signatures are counted, signed between 1 October 2026 and 20 November",
        "Online 280",
        "Paper 20",
        "Waiting for email confirmation 12 Not counted until confirmed",
        "40 signers added their own words",
        "25 distinct statements",
        "Wales 250",
        LETTER_HASH,
        VERIFY_URL,
    ):
        assert fragment in annex


def test_every_page_says_page_x_of_y_over_the_whole_document(letter: Rendered) -> None:
    assert letter.pages == len(letter.text) >= 8
    for number, text in enumerate(letter.text, start=1):
        assert f"Page {number} of {letter.pages}" in text
        assert "CH-powys-buses-v2" in text
    assert "DRAFT" not in letter.all_text


def _name_x_positions(data: bytes) -> tuple[list[float], float]:
    """Where runs of names start on annex A's first page, and the page's width."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    annex = next(p for p in reader.pages if "Annex A: Signatories" in p.extract_text())
    xs: list[float] = []

    def visit(text: str, cm: list[float], tm: list[float], *_: object) -> None:
        if "Signer" in text:
            xs.append(cm[4] + tm[4] * cm[0])

    annex.extract_text(visitor_text=visit)
    return xs, float(annex.mediabox.width)


def test_annex_a_names_sit_in_two_columns() -> None:
    pdf = render_letter(letter_doc(), signatories(900), [], chunk_names=900)
    xs, width = _name_x_positions(pdf.data)
    assert width == pytest.approx(595.28, abs=0.1)
    assert min(xs) < width / 2 < max(xs), "names fill both columns of the A4 sheet"


def test_a_very_long_annex_a_runs_in_one_wide_column() -> None:
    pdf = render_letter(letter_doc(), signatories(900), [], chunk_names=900, column_limit=500)
    xs, width = _name_x_positions(pdf.data)
    assert width == pytest.approx(595.28, abs=0.1)
    assert max(xs) < width / 4, "every line starts at the left margin"
    assert sorted(int(n) for n in re.findall(r"Signer(\d{4})", _all(pdf.data))) == list(range(900))


def test_tagged_pdf_has_one_structure_tree_language_marks_and_metadata(
    letter: Rendered,
) -> None:
    with pikepdf.open(io.BytesIO(letter.data)) as pdf:
        assert pdf.check_pdf_syntax() == []
        root = pdf.Root
        assert root.MarkInfo.Marked is True
        assert str(root.Lang) == "en-GB"
        assert root.ViewerPreferences.DisplayDocTitle is True
        info = pdf.docinfo
        assert str(info.Title) == "Keep rural buses running"
        assert str(info.Author) == "Powys Bus Users"
        assert str(info.Subject) == "Rural bus services in Powys"
        assert str(info.Keywords) == "buses, Powys"
        with pdf.open_metadata() as xmp:
            assert xmp.get("pdfuaid:part") == "1"
            assert xmp.get("dc:title") == "Keep rural buses running"

        tree = root.StructTreeRoot
        (document,) = list(tree.K)
        assert document.S == "/Document"
        nums = tree.ParentTree.Nums
        parent_tree = {int(nums[i]): nums[i + 1] for i in range(0, len(nums), 2)}
        assert int(tree.ParentTreeNextKey) > max(parent_tree)
        for number, page in enumerate(pdf.pages):
            elements = parent_tree[int(page.obj.StructParents)]
            mcids = sorted(
                int(operands[1].MCID)
                for operands, operator in pikepdf.parse_content_stream(page)
                if str(operator) == "BDC"
                and isinstance(operands[1], pikepdf.Dictionary)
                and "/MCID" in operands[1]
            )
            assert mcids == list(range(len(elements))), f"page {number + 1}"
            assert all(e.Pg.objgen == page.obj.objgen for e in elements), f"page {number + 1}"

        # Depth first, the headings come in reading order, each on its page.
        page_of = {page.obj.objgen: i for i, page in enumerate(pdf.pages)}
        headings: list[tuple[str, int]] = []

        def walk(element: pikepdf.Object) -> None:
            if isinstance(element, pikepdf.Dictionary) and element.get("/Type") == "/StructElem":
                if element.S == "/H1":
                    headings.append((str(element.S), page_of[element.Pg.objgen]))
                kids = element.get("/K")
                for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
                    walk(kid)

        walk(document)
        assert len(headings) == 4  # the letter's subject and the three annexes
        assert [p for _s, p in headings] == sorted(p for _s, p in headings)


def test_outline_has_an_entry_per_section_pointing_at_its_page(letter: Rendered) -> None:
    with pikepdf.open(io.BytesIO(letter.data)) as pdf:
        page_of = {page.obj.objgen: i for i, page in enumerate(pdf.pages)}
        with pdf.open_outline() as outline:
            top = [(item.title, page_of[item.destination[0].objgen]) for item in outline.root]
            letter_children = [item.title for item in outline.root[0].children]
    assert [title for title, _page in top] == [
        "Letter: Rural bus services in Powys",
        "Annex A: Signatories",
        "Annex B: In their own words",
        "Annex C: Method",
    ]
    for title, page in top[1:]:
        assert title in letter.text[page]
    assert letter_children[:2] == ["In brief", "Our asks"]
    assert "The meeting we ask for" in letter_children


def test_draft_is_watermarked_on_every_page_and_says_it_has_no_signatures() -> None:
    method = MethodFacts(verified_total=0)
    pdf = render_letter(letter_doc(draft=True, method=method, letter_sha256=""), [], [])
    text = read(pdf.data)
    assert pdf.pages == len(text) >= 4  # the letter, and each annex says it is empty
    for number, page in enumerate(text, start=1):
        assert "DRAFT" in page
        assert f"Page {number} of {pdf.pages}" in page
    joined = " ".join(" ".join(text).split())
    assert "This is a draft: no one has signed it yet. Signatures are collected" in joined
    assert "no one has added their own words" in joined
    assert "This draft has no published version yet" in joined


def test_a_draft_without_subject_or_summary_has_no_empty_headings() -> None:
    """An early draft leaves out the parts it does not have yet: no empty H1 (subject),
    no "In brief" heading over nothing."""

    def headings(doc: LetterDoc) -> tuple[str, int]:
        pdf = render_letter(doc, [], [])
        with pikepdf.open(io.BytesIO(pdf.data)) as opened:
            kinds = [str(e.get("/S")) for e in _structure_elements(opened.Root.StructTreeRoot)]
        return " ".join(read(pdf.data)[0].split()), kinds.count("/H1") + kinds.count("/H2")

    full_text, full_headings = headings(letter_doc(draft=True, audience_style="minister"))
    bare_text, bare_headings = headings(
        letter_doc(draft=True, subject="", summary="  ", audience_style="minister")
    )
    assert "In brief" in full_text
    assert "In brief" not in bare_text
    assert "Dear" in bare_text  # the salutation is still there
    assert bare_headings == full_headings - 2  # the subject (H1) and "In brief" (H2)


def _structure_elements(node: pikepdf.Object) -> Iterator[pikepdf.Dictionary]:
    kids = node.get("/K")
    if kids is None:
        return
    for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
        if isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
            yield kid
            yield from _structure_elements(kid)


def test_a_long_letter_body_is_never_cut() -> None:
    body = "<p>A long paragraph of evidence.</p>" * 1_500 + "<p>The very end of the body.</p>"
    assert len(body) > 50_000
    text = _all(render_letter(letter_doc(body_html=body), [], []).data)
    assert text.count("A long paragraph of evidence.") == 1_500
    assert "The very end of the body." in text


def test_open_letter_to_a_policy_team_has_no_meeting_section() -> None:
    doc = letter_doc(kind="open_letter", audience_style="policy_team", sign_off="Yours faithfully")
    text = " ".join(" ".join(read(render_letter(doc, signatories(3), []).data)).split())
    assert "Executive summary" in text
    assert "The meeting we ask for" not in text
    assert "Yours faithfully," in text


NAMES_IN_SCRIPTS = {
    "welsh": "Siân Ŵyn ap Rhŷs",
    "accents": "Zoë Brontë-Laïla Âne",
    "arabic": "محمد علي",
    "chinese": "王小明",
    "cyrillic": "Иван Петров",
    "devanagari": "अमित शर्मा",
}


def _fonts(pdf: pikepdf.Pdf) -> Iterator[pikepdf.Dictionary]:
    seen: set[tuple[int, int]] = set()
    for page in pdf.pages:
        for font in page.Resources.Font.values():
            if font.objgen not in seen:
                seen.add(font.objgen)
                yield font


def _unicode_map(font: pikepdf.Dictionary) -> dict[int, str]:
    """Character code -> text, from the font's ToUnicode CMap."""
    cmap = font.ToUnicode.read_bytes().decode("latin-1")
    found: dict[int, str] = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", cmap, re.S):
        for src, dst in re.findall(r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            found[int(src, 16)] = bytes.fromhex(dst).decode("utf-16-be", "replace")
    for block in re.findall(r"beginbfrange(.*?)endbfrange", cmap, re.S):
        for start, end, dst in re.findall(
            r"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block
        ):
            first = int(dst, 16)
            for offset, code in enumerate(range(int(start, 16), int(end, 16) + 1)):
                found[code] = chr(first + offset)
    return found


def test_names_in_every_script_render_with_embedded_fonts_and_no_missing_glyphs() -> None:
    people = [Signatory(name, "Caerdydd") for name in NAMES_IN_SCRIPTS.values()]
    pdf = render_letter(letter_doc(), people, [Voice("Diolch yn fawr — ŵ ŷ â ë ï")])
    text = " ".join(read(pdf.data))
    for script in ("welsh", "accents", "chinese", "cyrillic"):
        assert NAMES_IN_SCRIPTS[script] in text, script
    with pikepdf.open(io.BytesIO(pdf.data)) as doc:
        mapped = ""
        for font in _fonts(doc):
            descriptor = (
                font.DescendantFonts[0].FontDescriptor
                if font.Subtype == "/Type0"
                else font.FontDescriptor
            )
            assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), (
                f"{font.BaseFont} is not embedded"
            )
            mapped += "".join(_unicode_map(font).values())
        # Every character of every name has a glyph in an embedded font...
        for script, name in NAMES_IN_SCRIPTS.items():
            missing = {c for c in name if not c.isspace() and c not in mapped}
            assert not missing, f"{script}: no glyph for {missing}"
        # ...and every glyph drawn exists in its embedded font (no .notdef, no tofu).
        assert _missing_glyphs(doc) == []


def _missing_glyphs(doc: pikepdf.Pdf) -> list[tuple[int, str, int]]:
    """(page, font, glyph id) of every glyph drawn that its embedded font lacks: glyph 0
    (.notdef) or an id past the font's glyphs (WeasyPrint's stand-in for a character no
    font has)."""
    counts: dict[tuple[int, int], int] = {}
    missing = []
    for number, page in enumerate(doc.pages, start=1):
        fonts = page.Resources.Font
        current = None
        for operands, operator in pikepdf.parse_content_stream(page):
            if str(operator) == "Tf":
                current = fonts[str(operands[0])]
                continue
            if str(operator) not in ("Tj", "TJ") or current is None:
                continue
            if current.Subtype != "/Type0":
                continue
            if current.objgen not in counts:
                descriptor = current.DescendantFonts[0].FontDescriptor
                program = descriptor.get("/FontFile2") or descriptor.get("/FontFile3")
                font = TTFont(io.BytesIO(program.read_bytes()))
                counts[current.objgen] = font["maxp"].numGlyphs
            glyphs = counts[current.objgen]
            strings = operands[0] if str(operator) == "TJ" else [operands[0]]
            for item in strings:
                if isinstance(item, pikepdf.String):
                    raw = bytes(item)
                    for i in range(0, len(raw), 2):
                        glyph = int.from_bytes(raw[i : i + 2], "big")
                        if glyph == 0 or glyph >= glyphs:
                            missing.append((number, str(current.BaseFont), glyph))
    return missing


def test_the_glyph_check_catches_a_character_no_font_has() -> None:
    pdf = render_letter(letter_doc(), [Signatory("Unassigned \u0378 character")], [])
    with pikepdf.open(io.BytesIO(pdf.data)) as doc:
        assert len(_missing_glyphs(doc)) == 1


def test_progress_counts_parts_from_zero_to_all() -> None:
    seen: list[tuple[int, int]] = []
    render_letter(
        letter_doc(),
        signatories(50),
        voices(4),
        chunk_names=20,
        chunk_voices=2,
        progress=lambda done, total: seen.append((done, total)),
    )
    total = len(
        plan_parts(letter_doc(), signatories(50), voices(4), chunk_names=20, chunk_voices=2)
    )
    assert total == 1 + 3 + 2 + 1
    assert seen == [(done, total) for done in range(total + 1)]


def test_plan_parts_chunks_the_annexes_and_keeps_empty_ones() -> None:
    parts = plan_parts(letter_doc(), signatories(25), [], chunk_names=10)
    assert [(p.kind, len(p.items), p.first, p.start, p.total) for p in parts] == [
        ("letter", 0, True, 0, 0),
        ("signatories", 10, True, 0, 25),
        ("signatories", 10, False, 10, 25),
        ("signatories", 5, False, 20, 25),
        ("voices", 0, True, 0, 0),
        ("method", 0, True, 0, 0),
    ]
    assert isinstance(parts[0], Part)


def test_a_render_past_its_timeout_stops_and_the_next_one_works() -> None:
    with pytest.raises(RenderError, match=r"took longer than 0\.5 s"):
        render_letter(letter_doc(), signatories(20_000), [], timeout=0.5)
    assert render_letter(letter_doc(), [], []).pages >= 4


def test_a_render_past_its_memory_cap_stops_and_the_next_one_works() -> None:
    with pytest.raises(RenderError, match=r"more than 20 MB of memory"):
        render_letter(letter_doc(), signatories(2_000), [], memory_mb=20)
    assert render_letter(letter_doc(), [], []).pages >= 4


def test_renders_leave_no_temporary_files_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WeasyPrint copies the fonts it loads into a temporary folder that it removes only
    when collected, which a render process never is: each render used to leave ~2 MB in
    /tmp, finished or killed."""
    system_temp = Path(tempfile.gettempdir())

    def leftovers() -> set[Path]:
        return set(system_temp.glob("weasyprint-*")) | set(system_temp.glob("chorus-pdf-*"))

    before = leftovers()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert render_letter(letter_doc(), signatories(50), []).pages >= 4
    with pytest.raises(RenderError):
        render_letter(letter_doc(), signatories(20_000), [], timeout=0.5)
    assert list(tmp_path.iterdir()) == []
    assert leftovers() - before == set()


def test_the_calling_process_never_imports_weasyprint() -> None:
    script = (
        "import sys\n"
        "from tests.test_pdf_engine import letter_doc\n"
        "from web.pdf.engine import render_letter\n"
        "if __name__ == '__main__':\n"
        "    pdf = render_letter(letter_doc(), [], [])\n"
        "    print(pdf.pages, 'weasyprint' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    pages, imported = result.stdout.split()
    assert int(pages) >= 4
    assert imported == "False"


def test_a_process_forked_after_a_render_renders_with_its_own_forkserver() -> None:
    """RQ forks a work horse per job: a fork of a process that has rendered must still
    render (it cannot use its parent's forkserver), and so must the parent."""
    script = (
        "import os\n"
        "from tests.test_pdf_engine import letter_doc\n"
        "from web.pdf.engine import render_letter\n"
        "if __name__ == '__main__':\n"
        "    render_letter(letter_doc(), [], [])\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0 if render_letter(letter_doc(), [], []).pages >= 4 else 1)\n"
        "    _, status = os.waitpid(pid, 0)\n"
        "    print(os.waitstatus_to_exitcode(status), render_letter(letter_doc(), [], []).pages)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    child, pages = result.stdout.split()
    assert child == "0", result.stderr
    assert int(pages) >= 4


def test_links_inside_the_letter_still_lead_somewhere_after_the_merge() -> None:
    body = (
        '<p><a href="#evidence-detail">See the evidence below.</a></p>'
        + "<p>Filler paragraph.</p>" * 80
        + '<h3 id="evidence-detail">Evidence in detail</h3><p>The detail.</p>'
    )
    pdf = render_letter(letter_doc(body_html=body), signatories(10), [])
    with pikepdf.open(io.BytesIO(pdf.data)) as doc:
        assert doc.check_pdf_syntax() == []
        names = doc.Root.Names.Dests.Names
        targets = {str(names[i]): names[i + 1] for i in range(0, len(names), 2)}
        page_of = {page.obj.objgen: i for i, page in enumerate(doc.pages)}
        target_page = page_of[targets["evidence-detail"][0].objgen]
        links = [
            annot
            for page in doc.pages
            for annot in page.get("/Annots", [])
            if annot.get("/Subtype") == "/Link" and "/URI" not in annot.get("/A", {})
        ]
    assert links, "the internal link is still an annotation"
    assert "Evidence in detail" in read(pdf.data)[target_page]
