"""The PDF engine under attack (issue #5 §8): hostile letter content and signer data.

The letter's HTML is normally sanitised before it reaches the engine; here it is not, on
purpose, so the engine's own defences are what is tested: the asset-only URL fetcher,
the sandboxed and autoescaped templates, the text clean-up, and the time and memory
limits of the render processes. Every hostile render must: reach no listener (a loopback
server started here counts every connection), put no byte of a local secret file in the
PDF (checked in every decompressed stream), end within its timeout (a RenderError is an
acceptable end for the pathological ones), and leave the engine able to render the next
letter.
"""

from __future__ import annotations

import io
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf
import pypdf
import pytest
from jinja2.exceptions import SecurityError

from tests.test_pdf_engine import letter_doc, signatories
from web.pdf.contract import LetterDoc, Signatory, Voice
from web.pdf.engine import RenderError, render_letter

HOSTILE_TIMEOUT = 30.0


@dataclass
class Listener:
    """A loopback TCP server that counts every connection (and answers like HTTP, so a
    fetch that got through would have something to embed)."""

    port: int
    hits: int = 0
    seen: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    found = Listener(port=server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            found.hits += 1
            with conn:
                conn.settimeout(1)
                try:
                    found.seen.append(conn.recv(2048))
                    body = b"LISTENER-BODY"
                    conn.sendall(
                        b"HTTP/1.0 200 OK\r\nContent-Type: text/css\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    # The listener counts what reaches it (so a zero below means something).
    with socket.create_connection(("127.0.0.1", found.port), timeout=5) as probe:
        probe.sendall(b"GET /probe HTTP/1.0\r\n\r\n")
        assert probe.recv(100).startswith(b"HTTP/1.0 200")
    assert found.hits == 1
    found.hits = 0
    found.seen.clear()
    yield found
    stop.set()
    thread.join(timeout=5)
    server.close()


@dataclass
class Secrets:
    token: bytes
    text: Path
    css: Path
    svg: Path


@pytest.fixture(scope="module")
def secret_files(tmp_path_factory: pytest.TempPathFactory) -> Secrets:
    folder = tmp_path_factory.mktemp("secrets")
    token = f"CHORUS-SECRET-{secrets.token_hex(12)}"
    text = folder / "secret.txt"
    text.write_text(f"{token}\n")
    css = folder / "secret.css"
    css.write_text(f'body::after {{ content: "{token}"; }}')
    svg = folder / "secret.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="20">'
        f'<text id="t" x="0" y="15">{token}</text></svg>'
    )
    return Secrets(token.encode(), text, css, svg)


def _pdf_bytes_everywhere(data: bytes) -> bytes:
    """The file, and every stream in it decompressed: where a leaked byte could hide."""
    found = [data]
    with pikepdf.open(io.BytesIO(data)) as pdf:
        for obj in pdf.objects:
            if isinstance(obj, pikepdf.Stream):
                try:
                    found.append(obj.read_bytes())
                except pikepdf.PdfError:
                    found.append(obj.read_raw_bytes())
    return b"\n".join(found)


def _text(data: bytes) -> str:
    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages)


def _render_hostile(
    doc: LetterDoc,
    listener: Listener,
    secret_files: Secrets,
    people: list[Signatory] | None = None,
    words: list[Voice] | None = None,
    timeout: float = HOSTILE_TIMEOUT,
) -> bytes | None:
    """Render; check time, the listener, the secret and the next render. The PDF, or
    None when the engine refused with a RenderError."""
    started = time.monotonic()
    data: bytes | None
    try:
        data = render_letter(doc, people or [], words or [], timeout=timeout).data
    except RenderError:
        data = None
    assert time.monotonic() - started < timeout + 10
    assert listener.hits == 0, f"the render reached the listener: {listener.seen}"
    if data is not None:
        assert secret_files.token not in _pdf_bytes_everywhere(data)
        assert "CHORUS-SECRET" not in _text(data)
    # The engine keeps serving.
    assert render_letter(letter_doc(), signatories(3), []).pages >= 4
    return data


def _every_kind_of_reference(url: str) -> str:
    """HTML that asks the renderer to fetch `url` in every way WeasyPrint can."""
    return f"""
<p>Before the hostile content.</p>
<img src="{url}" alt="image">
<img srcset="{url} 2x" alt="srcset">
<picture><source srcset="{url}"><img src="{url}" alt="picture"></picture>
<video poster="{url}"></video>
<object data="{url}"></object>
<embed src="{url}">
<iframe src="{url}"></iframe>
<link rel="stylesheet" href="{url}">
<link rel="attachment" href="{url}">
<a rel="attachment" href="{url}">attached file</a>
<style>
@import url("{url}");
@font-face {{ font-family: hostile; src: url("{url}"); }}
p {{ font-family: hostile, serif; }}
body {{ background: url("{url}"); }}
li {{ list-style-image: url("{url}"); }}
</style>
<div style="background-image: url('{url}'); border-image: url('{url}') 30">styled</div>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
     width="100" height="100">
  <image href="{url}" width="50" height="50"/>
  <image xlink:href="{url}" width="50" height="50"/>
  <use href="{url}#t"/>
  <style>@import url("{url}");</style>
  <rect width="10" height="10" fill="url({url}#p)"/>
</svg>
<ul><li>listed</li></ul>
<p>After the hostile content.</p>
"""


def test_local_files_are_never_read_into_the_pdf(listener: Listener, secret_files: Secrets) -> None:
    body = "".join(
        _every_kind_of_reference(url)
        for url in (
            secret_files.svg.as_uri(),
            secret_files.css.as_uri(),
            secret_files.text.as_uri(),
            str(secret_files.svg),  # a bare path: no base URL to resolve it against
            f"chorus-asset:../../../../../../..{secret_files.text}",
            "chorus-asset:fonts/../../../../../../../etc/passwd",
        )
    )
    body += f'<base href="{secret_files.svg.parent.as_uri()}/"><img src="secret.svg" alt="b">'
    data = _render_hostile(letter_doc(body_html=body), listener, secret_files)
    assert data is not None
    text = " ".join(_text(data).split())
    assert "Before the hostile content." in text
    assert "After the hostile content." in text


def test_loopback_and_remote_urls_are_never_fetched(
    listener: Listener, secret_files: Secrets
) -> None:
    base = f"127.0.0.1:{listener.port}"
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg'>"
        f"<image href='http://{base}/from-data-url.png'/></svg>"
    )
    body = "".join(
        _every_kind_of_reference(url)
        for url in (
            f"http://{base}/resource",
            f"https://{base}/resource",
            f"ftp://{base}/resource",
            f"//{base}/protocol-relative",
            f"http://localhost:{listener.port}/by-name",
            f"data:image/svg+xml;utf8,{svg}",
            f"data:text/css,@import url(http://{base}/css-in-data-url);",
        )
    )
    data = _render_hostile(letter_doc(body_html=body), listener, secret_files)
    assert data is not None
    assert b"LISTENER-BODY" not in _pdf_bytes_everywhere(data)


def test_hostile_signer_data_is_shown_as_text(listener: Listener, secret_files: Secrets) -> None:
    url = f"http://127.0.0.1:{listener.port}/name.png"
    people = [
        Signatory(f'<img src="{url}"> Mallory', "<b>Town</b>"),
        Signatory(f"<link rel=stylesheet href={secret_files.css.as_uri()}>Eve", ""),
        Signatory("Null\x00 Byte\x07 \udcff Surrogate", "Rhyl"),
        Signatory("Right\u202e-to-left override\u2066 isolate", ""),
        Signatory("x" * 1_000_000, "Big"),
        Signatory("{{ 7 * 7 }} {% raw %}", "Jinja"),
    ]
    words = [
        Voice(f"<style>@import url({url});</style><script>alert(1)</script>", count=3),
        Voice(f'<svg><image href="{secret_files.svg.as_uri()}"/></svg>', name="<i>anon</i>"),
    ]
    doc = letter_doc(
        title=f'Title</title><link rel="stylesheet" href="{url}">',
        subject=f"<img src='{secret_files.svg.as_uri()}'> Subject",
        asks=(f"<a rel=attachment href='{secret_files.text.as_uri()}'>ask</a>",),
        sender=letter_doc().sender.__class__(name="<script>Sender</script>"),
    )
    data = _render_hostile(doc, listener, secret_files, people, words)
    assert data is not None
    text = " ".join(_text(data).split())
    assert f'<img src="{url}"> Mallory (<b>Town</b>)' in text
    assert "<script>alert(1)</script>" in text
    assert "<script>Sender</script>" in text
    assert "{{ 7 * 7 }} {% raw %}" in text
    assert "Null Byte \ufffd Surrogate" in text
    assert "Right-to-left override isolate" in text
    assert "\u202e" not in text
    assert "x" * 299 + "…" in text.replace(" ", "")
    assert "x" * 301 not in text.replace(" ", "")
    with pikepdf.open(io.BytesIO(data)) as pdf:
        assert str(pdf.docinfo.Title).startswith("Title</title>")


def test_css_with_enormous_values_ends_within_its_timeout(
    listener: Listener, secret_files: Secrets
) -> None:
    body = """
<style>
@page { size: 1e9px 1e9px; margin: 1e30px; }
p { font-size: 1e9px; letter-spacing: 1e20px; word-spacing: -1e20px; line-height: 1e30; }
div { width: 1e30px; height: 1e12px; margin: 1e20px; border: 1e9px solid red;
      padding: 1e15px; column-count: 1000000; columns: 1e9px 99999; }
* { counter-increment: a 2147483647; }
</style>
<p>Huge text</p><div>tall</div>
<div style="height: 99999999999999999999px; break-inside: avoid">very tall</div>
<div style="transform: scale(1e30) rotate(1e30deg)">scaled</div>
"""
    _render_hostile(letter_doc(body_html=body), listener, secret_files)


def test_a_letter_running_to_thousands_of_pages_stops_at_its_timeout(
    listener: Listener, secret_files: Secrets
) -> None:
    body = ("<p>" + "many words " * 200 + "</p>") * 4_000  # about 2,000 pages of text
    started = time.monotonic()
    with pytest.raises(RenderError, match=r"took longer than 4 s"):
        render_letter(letter_doc(body_html=body), [], [], timeout=4)
    assert time.monotonic() - started < 4 + 10  # killed at its timeout, not left running
    _render_hostile(letter_doc(body_html="<p>fine</p>"), listener, secret_files)


def test_ten_thousand_nested_elements_are_refused_with_a_clear_message(
    listener: Listener, secret_files: Secrets
) -> None:
    depth = 10_000
    for body in (
        "<div>" * depth + "deep" + "</div>" * depth,
        "<span><b>" * (depth // 2) + "deeper",  # never closed
        "<ul><li>" * depth + "list",
    ):
        started = time.monotonic()
        with pytest.raises(RenderError, match=r"levels deep; the PDF can show at most 100"):
            render_letter(letter_doc(body_html=body), [], [], timeout=HOSTILE_TIMEOUT)
        assert time.monotonic() - started < HOSTILE_TIMEOUT  # ended within its timeout
    # Just under the limit still renders (and stays safe).
    body = "<div>" * 95 + "<p>nested but fine</p>" + "</div>" * 95
    data = _render_hostile(letter_doc(body_html=body), listener, secret_files)
    assert data is not None
    assert "nested but fine" in _text(data)


# --- the defences one by one, in this process --------------------------------------


def test_fetcher_serves_only_our_assets_and_logs_each_refusal(
    caplog: pytest.LogCaptureFixture, secret_files: Secrets
) -> None:
    from web.pdf.safety import AssetFetcher, RefusedResource

    fetcher = AssetFetcher()
    css = fetcher.fetch("chorus-asset:letter.css")
    assert b"@font-face" in css.read()
    font = fetcher.fetch("chorus-asset:fonts/NotoSerif-Regular.ttf")
    assert font.content_type == "font/ttf"
    refused = [
        secret_files.text.as_uri(),
        str(secret_files.text),
        "http://127.0.0.1:9/x",
        "https://example.org/x.css",
        "ftp://example.org/x",
        "data:text/css,body{}",
        "chorus-asset:../engine.py",
        "chorus-asset:fonts/../../safety.py",
        "chorus-asset:/etc/passwd",
        "chorus-asset:%2e%2e/engine.py",
        "chorus-asset:fonts/OFL.txt",  # in the folder, but not a type we serve
        "CHORUS-ASSET:letter.css",
    ]
    with caplog.at_level(logging.WARNING, logger="web.pdf.safety"):
        for url in refused:
            with pytest.raises(RefusedResource):
                fetcher.fetch(url)
    assert fetcher.refused == refused
    assert len([r for r in caplog.records if "refused a resource" in r.getMessage()]) == len(
        refused
    )


def test_templates_are_sandboxed_and_autoescaped() -> None:
    from web.pdf.safety import template_environment

    env = template_environment()
    with pytest.raises(SecurityError):
        env.from_string("{{ doc.__class__.__mro__[1].__subclasses__() }}").render(doc=letter_doc())
    assert env.from_string("{{ name }}").render(name="<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"


def test_plain_text_is_cleaned_before_templates_see_it() -> None:
    from web.pdf.safety import clean_text

    assert clean_text("a\x00b\x1bc\u202ed\u2067e\ufffff") == "abcdef"
    assert clean_text("lone \udc80 surrogate") == "lone \ufffd surrogate"
    assert clean_text("tab\tand\nnewline") == "tab\tand\nnewline"
    assert clean_text("محمد\u200f علي") == "محمد\u200f علي"  # marks stay, overrides go
    assert clean_text("y" * 50, limit=10) == "y" * 9 + "…"
