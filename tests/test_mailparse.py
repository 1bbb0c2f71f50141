"""Replies by plain email: what the organiser sees from each message in the inbound corpus.

The corpus (tests/data/inbound/*.eml) is hand-written mail of the kinds departments
send back: replies quoting our letter, Outlook HTML, Gmail alternatives, attachments,
forwards, out-of-office and acknowledgement auto-replies, bounces, odd charsets and
broken messages. Parsing is pure (no database), so these tests need no fixtures.
"""

from __future__ import annotations

import random
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

import pytest

from web.responses.mailparse import (
    MAX_DEPTH,
    Classification,
    ParsedMail,
    classification_reason,
    classify,
    html_to_text,
    parse_message,
    reply_tokens,
    sanitise_filename,
)

CORPUS = Path(__file__).parent / "data" / "inbound"
DOMAIN = "reply.chorus.localhost"


def load(name: str) -> ParsedMail:
    return parse_message((CORPUS / name).read_bytes())


def mail(headers: str, body: str) -> ParsedMail:
    """A small message written inline, for rules the corpus does not isolate."""
    return parse_message((headers.strip() + "\n\n" + body).encode("utf-8"))


def test_corpus_covers_every_kind_of_message() -> None:
    assert len(list(CORPUS.glob("*.eml"))) >= 16


# ------------------------------------------------------------------ substantive replies


def test_plain_reply_shows_the_answer_without_our_quoted_letter() -> None:
    parsed = load("plain_reply_quoted.eml")

    assert parsed.from_address == "j.patel@dwp.gov.uk"
    assert parsed.from_name == "Jaya Patel"
    assert parsed.subject == (
        "Re: Letter from Leeds Tenants Together: Universal Credit housing element"
    )
    assert parsed.sent_at == datetime(2025, 12, 2, 10, 13, 58, tzinfo=UTC)
    assert parsed.message_id == "<CAF3a9b1c2d3e4f5@mail.dwp.gov.uk>"
    assert parsed.in_reply_to == "<delivery-41.1764582000@chorus.localhost>"
    assert parsed.references == ["<delivery-41.1764582000@chorus.localhost>"]
    assert "will publish revised rates\nin April" in parsed.reply_text
    assert parsed.reply_text.endswith("Correspondence Team, Department for Work and Pensions")
    # The quoted letter is in the full text but not in the reply.
    assert "We, 1,204 tenants in Leeds" in parsed.text
    assert "1,204 tenants" not in parsed.reply_text
    assert "wrote:" not in parsed.reply_text
    assert "\r" not in parsed.text
    assert parsed.attachments == []
    assert parsed.defects == []
    assert not parsed.is_malformed
    assert classify(parsed) is Classification.SUBSTANTIVE
    assert classification_reason(parsed) == "A reply from a person."
    assert reply_tokens(parsed, DOMAIN) == ["g6bnwu2oy25vuwyq5oyg2n4xiu"]


def test_outlook_html_only_reply_reads_as_text_without_script_or_history() -> None:
    parsed = load("outlook_html_only.eml")

    assert parsed.from_name == "Okafor, Daniel (HMRC)"
    assert parsed.from_address == "daniel.okafor@example.gov.uk"
    assert parsed.subject == "RE: Letter from Bristol Carers Network"
    # Entities unescaped, paragraphs, breaks and list items on their own lines.
    assert "The Carer’s Allowance earnings limit will rise to £196 a week from April 2026." in (
        parsed.reply_text
    )
    assert "Work & Pensions Committee" in parsed.reply_text
    assert "- Overpayments under £1,000 will be reviewed.\n- A helpline" in parsed.reply_text
    assert parsed.reply_text.endswith("Kind regards,\nDaniel Okafor\nCarer's Policy Team")
    # No markup, no style sheet, no script.
    for fragment in ("<p", "<br", "</", "&nbsp;", "MsoNormal", "alert(", "must never reach"):
        assert fragment not in parsed.text
    # The Outlook history block is in the text, not the reply.
    assert "-----Original Message-----" in parsed.text
    assert "Sent: 01 December 2025 11:00" in parsed.text
    assert "raise the earnings limit" not in parsed.reply_text
    # X-Auto-Response-Suppress is on ordinary Outlook mail: it is not an auto-reply.
    assert not parsed.is_auto_submitted
    assert classify(parsed) is Classification.SUBSTANTIVE
    assert reply_tokens(parsed, DOMAIN) == ["zwjtnniscghki3owole7uqvzua"]


def test_multipart_alternative_prefers_the_plain_part_and_cuts_a_wrapped_wrote_line() -> None:
    parsed = load("multipart_alternative.eml")

    assert parsed.from_address == "ruth.campbell@gov.scot"
    assert parsed.reply_text == (
        "Dear Fife Bus Users,\n\n"
        "Transport Scotland will fund the 23 and 39 routes until March 2027 through\n"
        "the Community Bus Fund.\n\n"
        "Best wishes,\nRuth"
    )
    assert "<div" not in parsed.text  # the HTML alternative was not used
    assert parsed.references == [
        "<campaign-12@chorus.localhost>",
        "<delivery-63.1764700000@chorus.localhost>",
    ]
    assert classify(parsed) is Classification.SUBSTANTIVE


def test_reply_with_pdf_and_docx_attachments_lists_both_files_safely_named() -> None:
    parsed = load("attachments_pdf_docx.eml")

    assert [(a.filename, a.content_type) for a in parsed.attachments] == [
        ("Response.pdf", "application/pdf"),
        (
            "Annex – regional figures.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ]
    pdf, docx = parsed.attachments
    assert pdf.data.startswith(b"%PDF-1.4")
    assert pdf.data.rstrip().endswith(b"%%EOF")
    assert pdf.size == len(pdf.data) == 458
    assert not pdf.is_inline
    with zipfile.ZipFile(BytesIO(docx.data)) as archive:
        assert "word/document.xml" in archive.namelist()
    assert docx.size == len(docx.data)
    assert "Please find attached the Minister's reply" in parsed.reply_text
    assert classify(parsed) is Classification.SUBSTANTIVE
    assert classification_reason(parsed) == "A reply from a person, with attachments."


def test_forwarded_message_brings_its_text_and_its_attachment() -> None:
    parsed = load("forwarded_rfc822.eml")

    assert parsed.from_address == "private.office@example.gov.uk"
    assert parsed.reply_text == (
        "Forwarding the policy team's answer below, with the funding table.\n\nPrivate Office"
    )
    assert "---------- Forwarded message ----------" in parsed.text
    assert "From: Active Travel Policy <active.travel@example.gov.uk>" in parsed.text
    assert "The segregated lane on Newport Road will be built in 2026-27." in parsed.text
    [table] = parsed.attachments
    assert (table.filename, table.content_type, table.size) == (
        "funding-table.pdf",
        "application/pdf",
        458,
    )
    assert table.data.startswith(b"%PDF")
    assert classify(parsed) is Classification.SUBSTANTIVE


def test_forward_without_comment_keeps_the_forwarded_text_as_the_reply() -> None:
    parsed = mail(
        """
From: Office <office@example.gov.uk>
To: reply+37nkhvgcvgehta4mxgxfiapnrq@reply.chorus.localhost
Subject: Fwd: your letter
Date: Mon, 8 Dec 2025 12:00:00 +0000
""",
        "---------- Forwarded message ---------\n"
        "From: Minister <minister@example.gov.uk>\n\n"
        "We will fund the scheme for another year.\n",
    )

    assert "We will fund the scheme for another year." in parsed.reply_text


# ------------------------------------------------------------------ automatic replies


def test_exchange_out_of_office_is_a_holding_reply() -> None:
    parsed = load("exchange_out_of_office.eml")

    assert parsed.subject == "Automatic reply: Letter from Swansea Parents for Safer Streets"
    assert parsed.is_auto_submitted
    assert parsed.is_auto_reply
    assert "Auto-Submitted: auto-replied" in parsed.auto_signals
    assert "I am out of the office until Monday 15 December" in parsed.reply_text
    assert not parsed.is_bounce
    assert classify(parsed) is Classification.HOLDING
    assert classify(parsed).label == "Holding reply"
    assert "out of the office" in classification_reason(parsed)
    assert reply_tokens(parsed, DOMAIN) == ["gejqa3uqu2t3v2ai667hpdqcsy"]


def test_gmail_vacation_reply_is_a_holding_reply() -> None:
    parsed = load("gmail_vacation.eml")

    assert parsed.is_auto_submitted
    assert parsed.sent_at == datetime(
        2025, 12, 10, 18, 22, 10, tzinfo=timezone(timedelta(hours=-8))
    )
    assert "on annual leave until 5 January" in parsed.reply_text
    assert classify(parsed) is Classification.HOLDING
    assert "annual leave" in classification_reason(parsed)


def test_departmental_auto_acknowledgement_with_reference_is_an_acknowledgement() -> None:
    parsed = load("dwp_acknowledgement.eml")

    assert parsed.from_address == "no-reply@dwp.gov.uk"
    assert parsed.is_auto_submitted
    assert "Precedence: bulk" in parsed.auto_signals
    assert "We have received your correspondence, reference DWP-12345" in parsed.reply_text
    # Long (a privacy notice follows) but automatic, so the length does not matter.
    assert len(parsed.reply_text) > 800
    assert classify(parsed) is Classification.ACKNOWLEDGEMENT
    assert classify(parsed).label == "Acknowledgement"
    assert classification_reason(parsed).startswith("Acknowledgement wording")


def test_short_acknowledgement_from_a_person_is_an_acknowledgement() -> None:
    parsed = load("human_acknowledgement.eml")

    assert not parsed.is_auto_submitted
    assert parsed.reply_text == (
        "Dear Leicester Youth Voice,\n\n"
        "Thank you for your letter. We will respond within 20 working days.\n\n"
        "Priya Shah\nMinisterial Correspondence Unit"
    )
    assert "-----Original Message-----" not in parsed.reply_text
    assert classify(parsed) is Classification.ACKNOWLEDGEMENT


def test_a_person_asking_for_more_time_is_a_holding_reply() -> None:
    parsed = load("human_holding.eml")

    assert "we need more time to consider the points in your letter" in parsed.reply_text
    # The Outlook underscore separator and header block are history.
    assert "protect statutory allotments" not in parsed.reply_text
    assert "protect statutory allotments" in parsed.text
    assert classify(parsed) is Classification.HOLDING
    assert "need more time" in classification_reason(parsed)


def test_long_substantive_reply_mentioning_leave_and_receipt_stays_substantive() -> None:
    body = (
        "I was on annual leave last week, hence the delay. We have received your letter "
        "and this is our full answer.\n\n" + "The Department will fund the scheme. " * 40
    )
    parsed = mail(
        """
From: Official <official@example.gov.uk>
To: reply+37nkhvgcvgehta4mxgxfiapnrq@reply.chorus.localhost
Subject: RE: Letter
Date: Mon, 8 Dec 2025 12:00:00 +0000
""",
        body,
    )

    assert classify(parsed) is Classification.SUBSTANTIVE


def test_reply_from_a_group_mailbox_with_precedence_list_stays_substantive() -> None:
    parsed = mail(
        """
From: Correspondence <correspondence@example.gov.uk>
To: reply+37nkhvgcvgehta4mxgxfiapnrq@reply.chorus.localhost
Subject: Re: Letter
Date: Mon, 8 Dec 2025 12:00:00 +0000
Precedence: list
List-Id: <correspondence.example.gov.uk>
""",
        "The Minister agrees to two of your three asks. " * 30,
    )

    assert parsed.is_auto_submitted  # weak evidence, recorded
    assert not parsed.is_auto_reply
    assert classify(parsed) is Classification.SUBSTANTIVE


def test_other_automatic_replies_are_holding_replies() -> None:
    parsed = mail(
        """
From: Enquiries <enquiries@example.gov.uk>
To: reply+37nkhvgcvgehta4mxgxfiapnrq@reply.chorus.localhost
Subject: Auto-reply: Letter
Date: Mon, 8 Dec 2025 12:00:00 +0000
X-Autoreply: yes
""",
        "Please visit our website for answers to common questions.",
    )

    assert parsed.is_auto_reply
    assert classify(parsed) is Classification.HOLDING
    assert "X-Autoreply" in classification_reason(parsed)


# ------------------------------------------------------------------ bounces


def test_delivery_status_report_is_a_bounce_and_names_the_returned_letter() -> None:
    parsed = load("dsn_bounce.eml")

    assert parsed.is_bounce
    assert parsed.from_address == "mailer-daemon@mail.chorus.localhost"
    assert parsed.subject == "Undelivered Mail Returned to Sender"
    assert "could not\nbe delivered" in parsed.text
    assert "User unknown in virtual mailbox table" in parsed.text
    assert parsed.bounced_message_id == "<delivery-101.1765533600@chorus.localhost>"
    assert parsed.attachments == []  # the returned headers are ours, not an attachment
    assert classify(parsed) is Classification.BOUNCE
    assert classify(parsed).label == "Delivery failure"
    assert reply_tokens(parsed, DOMAIN) == ["ckggxdfyr52nkpm5h3pmmlmxym"]


def test_plain_undeliverable_notice_from_postmaster_is_a_bounce() -> None:
    parsed = load("postmaster_undeliverable.eml")

    assert parsed.is_bounce
    assert classify(parsed) is Classification.BOUNCE


def test_delay_warning_is_not_a_delivery_failure() -> None:
    raw = (CORPUS / "dsn_bounce.eml").read_bytes().replace(b"Action: failed", b"Action: delayed")

    parsed = parse_message(raw)

    assert not parsed.is_bounce
    assert classify(parsed) is Classification.HOLDING


def test_a_person_writing_about_a_failed_delivery_is_not_a_bounce() -> None:
    parsed = mail(
        """
From: Official <official@example.gov.uk>
To: reply+37nkhvgcvgehta4mxgxfiapnrq@reply.chorus.localhost
Subject: Your letter was undeliverable to the old address
Date: Mon, 8 Dec 2025 12:00:00 +0000
""",
        "The old inbox is closed; this is the Minister's reply. " * 20,
    )

    assert not parsed.is_bounce
    assert classify(parsed) is Classification.SUBSTANTIVE


# ------------------------------------------------------------------ encodings


def test_quoted_printable_windows_1252_keeps_curly_quotes_pound_and_dash() -> None:
    parsed = load("qp_windows1252.eml")

    assert (
        "The Department’s “hospice fund” will pay £2.5m in 2026 – the first grants open in March."
        in parsed.reply_text
    )
    assert parsed.defects == []


def test_unknown_charset_is_read_as_well_as_possible_and_recorded() -> None:
    parsed = load("unknown_charset.eml")

    assert "the café licensing review will report in May" in parsed.reply_text
    assert parsed.reply_text.endswith("Siân")
    assert any("x-unknown" in defect for defect in parsed.defects)
    assert not parsed.is_malformed


def test_encoded_subject_and_sender_name_are_decoded() -> None:
    parsed = load("rfc2047_headers.eml")

    assert parsed.from_name == "Siân Jones"
    assert parsed.from_address == "sian.jones@gov.wales"
    assert parsed.subject == "Re: Llythyr gan Grŵp Cymuned – ateb llawn"
    assert parsed.recipients == [
        "reply+zvzkrp7ybzpo4wfowpky76ad2e@reply.chorus.localhost",
        "swyddfa@gov.wales",
    ]
    assert "Mae'r Gweinidog wedi cytuno i gwrdd â chi" in parsed.reply_text


def test_raw_eight_bit_headers_are_read_as_utf8_run_by_run() -> None:
    parsed = parse_message(
        b"From: Jos\xc3\xa9 Garc\xc3\xada <jose@example.gov.uk>\n"
        b"To: reply+37nkhvgcvgehta4mxgxfiapnrq@reply.chorus.localhost\n"
        b"Subject: caf\xe9 \xe2\x80\x9cbudget\xe2\x80\x9d\n"
        b"Date: Mon, 8 Dec 2025 12:00:00 +0000\n\nThe budget is agreed.\n"
    )

    assert parsed.from_name == "José García"
    assert parsed.subject == "café “budget”"


# ------------------------------------------------------------------ broken messages


def test_message_without_sender_and_with_a_broken_date_is_kept_with_its_defects() -> None:
    parsed = load("no_from_broken_date.eml")

    assert parsed.from_address == ""
    assert parsed.sent_at is None
    assert "The message has no sender (From) address." in parsed.defects
    assert any(d.startswith("The Date header could not be read") for d in parsed.defects)
    assert "after the spending review" in parsed.reply_text
    assert not parsed.is_malformed  # readable, and its token still finds the delivery
    assert reply_tokens(parsed, DOMAIN) == ["37nkhvgcvgehta4mxgxfiapnrq"]


def test_truncated_multipart_keeps_what_arrived() -> None:
    parsed = load("truncated_multipart.eml")

    assert parsed.reply_text == (
        "The clean air zone review will include school streets, as you asked."
    )
    [pdf] = parsed.attachments
    assert pdf.filename == "review.pdf"
    assert pdf.data.startswith(b"%PDF-1.4")  # the whole base64 quanta that arrived
    assert any("closing multipart boundary" in d for d in parsed.defects)
    assert not parsed.is_malformed


def test_random_bytes_are_marked_malformed_not_raised() -> None:
    parsed = load("garbage.eml")

    assert parsed.is_malformed
    assert parsed.from_address == ""
    assert parsed.attachments == []
    assert any("does not look like an email" in d for d in parsed.defects)
    assert reply_tokens(parsed, DOMAIN) == []
    assert classify(parsed) is Classification.SUBSTANTIVE


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n", b"\x00" * 10, b"From:"])
def test_empty_and_degenerate_input_is_malformed(raw: bytes) -> None:
    parsed = parse_message(raw)

    assert parsed.is_malformed
    assert parsed.defects


def test_sixty_nested_multiparts_stop_at_the_depth_limit() -> None:
    parsed = load("deeply_nested.eml")

    assert f"Level {MAX_DEPTH - 1} text." in parsed.text
    assert f"Level {MAX_DEPTH + 1} text." not in parsed.text
    assert "The deepest part." not in parsed.text
    assert any("nested more than 20 levels" in d for d in parsed.defects)
    assert not parsed.is_malformed


def test_absurd_nesting_is_cut_before_the_parser_recurses() -> None:
    depth = 3000
    lines = ["From: a@example.gov.uk", 'Content-Type: multipart/mixed; boundary="b0"', ""]
    for level in range(1, depth + 1):
        lines += [f"--b{level - 1}", f'Content-Type: multipart/mixed; boundary="b{level}"', ""]
    lines += [f"--b{depth}", "Content-Type: text/plain", "", "bottom", f"--b{depth}--"]

    parsed = parse_message("\n".join(lines).encode())

    assert parsed.from_address == "a@example.gov.uk"
    assert any("more than 64 multipart boundaries" in d for d in parsed.defects)


def test_huge_header_lines_are_cut() -> None:
    parsed = load("huge_header.eml")

    assert len(parsed.subject) <= 300
    assert parsed.subject.startswith("Very long subject Very long subject")
    assert parsed.reply_text == "A reply under enormous headers."
    assert "The Subject header was too long and was cut." in parsed.defects


# ------------------------------------------------------------------ reply tokens


def test_unknown_recipient_yields_no_token_for_the_holding_list() -> None:
    parsed = load("unknown_recipient.eml")

    assert parsed.recipients == [
        "letters@reply.chorus.localhost",
        "reply+short@reply.chorus.localhost",
        "reply+37nkhvgcvgehta4mxgxfiapnrq@elsewhere.example",
    ]
    assert reply_tokens(parsed, DOMAIN) == []
    assert classify(parsed) is Classification.SUBSTANTIVE


def test_upper_cased_reply_address_gives_the_lower_case_token() -> None:
    parsed = load("uppercase_token.eml")

    assert parsed.from_address == "casework@example.gov.uk"
    assert reply_tokens(parsed, "Reply.Chorus.Localhost") == ["37nkhvgcvgehta4mxgxfiapnrq"]


def test_envelope_recipients_come_first_and_tokens_are_not_repeated() -> None:
    parsed = load("plain_reply_quoted.eml")
    envelope = [
        "<REPLY+ABCDEFGHIJKLMNOPQRSTUVWXYZ@Reply.Chorus.Localhost>",
        "reply+g6bnwu2oy25vuwyq5oyg2n4xiu@reply.chorus.localhost",
        "reply+" + "a" * 65 + "@reply.chorus.localhost",  # too long: ignored
        "reply+abc@reply.chorus.localhost",  # too short: ignored
        "reply+zzzzzzzzzzzzzzzzzzzzzzzzzz@other.example",  # another domain: ignored
        "",
    ]

    assert reply_tokens(parsed, DOMAIN, envelope) == [
        "abcdefghijklmnopqrstuvwxyz",
        "g6bnwu2oy25vuwyq5oyg2n4xiu",
    ]
    assert reply_tokens(parsed, "") == []


# ------------------------------------------------------------------ small helpers


def test_html_to_text_drops_scripts_and_never_returns_markup() -> None:
    text = html_to_text(
        "<p>Dear&nbsp;all,</p><script>steal()</script><style>p{}</style>"
        "<p>Line one<br>Line two &lt;b&gt;</p><ul><li>First</li><li>Second</li></ul>"
        "<![if !supportLists]>odd<![endif]>"
    )

    assert text.startswith("Dear all,\n")
    assert "Line one\nLine two <b>" in text  # an escaped tag is shown as text, as written
    assert "- First\n- Second" in text
    assert "steal" not in text
    assert "p{}" not in text


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\Reply.pdf", "Reply.pdf"),
        ("evil\x00name\u202efdp.exe", "evilnamefdp.exe"),
        ("", "attachment"),
        (None, "attachment"),
        ("..", "attachment"),
        ("a" * 300 + ".pdf", "a" * 196 + ".pdf"),
    ],
)
def test_attachment_names_are_safe(raw: str | None, safe: str) -> None:
    assert sanitise_filename(raw) == safe


# ------------------------------------------------------------------ fuzz


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["truncate", "flip", "crlf", "insert", "delete", "duplicate"])
        if not buf:
            buf = bytearray(rng.randbytes(rng.randint(1, 64)))
            continue
        at = rng.randrange(len(buf))
        if kind == "truncate":
            del buf[at:]
        elif kind == "flip":
            for _ in range(rng.randint(1, 20)):
                i = rng.randrange(len(buf))
                buf[i] ^= 1 << rng.randrange(8)
        elif kind == "crlf":
            for _ in range(rng.randint(1, 10)):
                i = rng.randrange(len(buf) + 1)
                buf[i:i] = rng.choice([b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n--"])
        elif kind == "insert":
            buf[at:at] = rng.randbytes(rng.randint(1, 256))
        elif kind == "delete":
            del buf[at : at + rng.randint(1, 200)]
        else:
            end = min(len(buf), at + rng.randint(1, 500))
            buf[at:at] = buf[at:end]
    return bytes(buf)


def test_three_hundred_mutated_messages_never_raise() -> None:
    rng = random.Random(1234)
    files = sorted(CORPUS.glob("*.eml"))
    originals = {path.name: path.read_bytes() for path in files}

    for _ in range(300):
        name = rng.choice(sorted(originals))
        raw = _mutate(rng, originals[name])

        parsed = parse_message(raw)
        kind = classify(parsed)

        assert isinstance(kind, Classification), name
        assert isinstance(classification_reason(parsed), str)
        assert isinstance(reply_tokens(parsed, DOMAIN, ["x", "<>"]), list)
        assert len(parsed.subject) <= 300
        assert not any(ord(ch) < 32 for ch in parsed.subject + parsed.from_name)
        assert len(parsed.text) <= 200_000
        assert parsed.sent_at is None or parsed.sent_at.tzinfo is not None
        for attachment in parsed.attachments:
            assert "/" not in attachment.filename
            assert "\\" not in attachment.filename
            assert 0 < len(attachment.filename) <= 200
            assert attachment.size == len(attachment.data)
