"""The PDF engine: the plain data of `web.pdf.contract` in, one tagged PDF out.

`render_letter(doc, signatories, voices)` cuts the document into parts - the letter,
annex A in chunks of `chunk_names` signatories, annex B in chunks of `chunk_voices`
statements, annex C - renders each part in a process of its own, at most `processes` at a
time (the longest first), and merges the parts' PDFs (`web.pdf.merge`), stamping "Page X
of Y" and the reference on every page (and DRAFT on a draft's). Layout cost follows the
lines of text, so a chunk of 10,000 names is a tenth of the work of 100,000 and two
processes share it; memory per process stays that of one chunk. Annex A is set in two
columns up to `column_limit` names and in one wide column beyond (30% faster). One part's
failure fails the render. Figures: docs/benchmarks.md ("PDF letters").

Safety (see `web.pdf.safety` for the templates, the URL fetcher, the text clean-up and
the nesting check):

- WeasyPrint runs only in render processes, forked from a `forkserver` that imported it
  once and rendered a small page (`web.pdf.preload`), so a process starts warm in
  milliseconds. The calling process (a worker job) never imports WeasyPrint, and nothing
  in a web request calls this. The caller's `__main__` module is not imported in render
  processes (see `_start`).
- Every render process caps its own data segment at `memory_mb` (MemoryError past it),
  and this process reads each child's resident size every 0.1 s and kills one above
  `memory_mb`. Past `timeout` seconds for the whole render every child is killed. Each
  child also has a CPU-time limit, so none outlives a caller that died. Any of these
  ends in `RenderError`, whose message is for people, and leaves this process as it was:
  the next render starts clean processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import forkserver, spawn
from multiprocessing.connection import Connection, wait
from typing import Any

from web.pdf.contract import LetterDoc, Signatory, Voice

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0
DEFAULT_MEMORY_MB = 300
CHUNK_NAMES = 10_000
CHUNK_VOICES = 1_000
# Annex A is set in two columns (narrow pages, two to a sheet: web/pdf/merge.py) up to this
# many names, and beyond it in one wide column: the same text in half as many lines lays
# out about 30% faster, which is what keeps a 100,000-name annex within its time.
COLUMN_LIMIT = 20_000
POLL_SECONDS = 0.1
PRELOAD = ["web.pdf.preload"]  # imported once by the forkserver: WeasyPrint, a warm-up
_START_LOCK = threading.Lock()


class RenderError(Exception):
    """A render that could not finish; the message is for people ("took longer than 120 s")."""


@dataclass(frozen=True)
class RenderedPdf:
    data: bytes
    pages: int
    sha256: str  # hex of data
    cpu_seconds: float = 0.0  # CPU time of the render processes, all parts together

    @classmethod
    def of(cls, data: bytes, pages: int, cpu_seconds: float = 0.0) -> RenderedPdf:
        return cls(data, pages, hashlib.sha256(data).hexdigest(), cpu_seconds)


@dataclass(frozen=True)
class Part:
    """One unit of rendering: the letter, annex C, or a chunk of annex A or B."""

    kind: str  # "letter" | "signatories" | "voices" | "method"
    items: tuple[Any, ...] = ()  # Signatory rows for "signatories", Voice rows for "voices"
    first: bool = True  # the annex's first chunk: it carries the heading and introduction
    start: int = 0  # index of items[0] in the whole annex
    total: int = 0  # rows in the whole annex
    columns: int = 1  # pages set side by side on one sheet (annex A: 1 or 2)

    @property
    def cost(self) -> int:
        """Rough layout work, to start the longest parts first."""
        if self.kind == "voices":
            return sum(len(v.text) for v in self.items) // 25 + 10
        return len(self.items) + 10


def plan_parts(
    doc: LetterDoc,
    signatories: Sequence[Signatory],
    voices: Sequence[Voice],
    *,
    chunk_names: int = CHUNK_NAMES,
    chunk_voices: int = CHUNK_VOICES,
    column_limit: int = COLUMN_LIMIT,
) -> list[Part]:
    """The document's parts in reading order. An empty annex is one part saying so."""
    del doc
    if chunk_names < 1 or chunk_voices < 1:
        raise ValueError("chunk sizes must be positive")
    parts = [Part("letter")]
    for kind, rows, size in (
        ("signatories", signatories, chunk_names),
        ("voices", voices, chunk_voices),
    ):
        total = len(rows)
        columns = 2 if kind == "signatories" and total <= column_limit else 1
        parts.append(Part(kind, tuple(rows[:size]), True, 0, total, columns))
        parts.extend(
            Part(kind, tuple(rows[start : start + size]), False, start, total, columns)
            for start in range(size, total, size)
        )
    parts.append(Part("method"))
    return parts


def render_letter(
    doc: LetterDoc,
    signatories: Sequence[Signatory],
    voices: Sequence[Voice],
    *,
    progress: Callable[[int, int], None] | None = None,
    processes: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
    chunk_names: int = CHUNK_NAMES,
    chunk_voices: int = CHUNK_VOICES,
    column_limit: int = COLUMN_LIMIT,
) -> RenderedPdf:
    """The letter and its annexes as one tagged PDF. `progress(done, total)` is called
    here, in the calling process, as parts (the letter, annex chunks, annex C) finish.
    Raises RenderError past `timeout` seconds, past `memory_mb` in any render process, or
    when a part cannot be rendered."""
    from web.pdf.merge import MergeError, PartPdf, Stamp, merge_parts

    deadline = time.monotonic() + timeout
    parts = plan_parts(
        doc,
        signatories,
        voices,
        chunk_names=chunk_names,
        chunk_voices=chunk_voices,
        column_limit=column_limit,
    )
    rendered = run_parts(
        doc,
        parts,
        progress=progress,
        processes=processes,
        deadline=deadline,
        timeout=timeout,
        memory_mb=memory_mb,
    )
    try:
        pdfs = [
            PartPdf(r.data, r.pages, columns=part.columns)
            for part, r in zip(parts, rendered, strict=True)
        ]
        merged = merge_parts(pdfs, Stamp(reference=doc.reference, draft=doc.draft))
    except (MergeError, KeyError, ValueError) as exc:
        log.exception("PDF merge failed")
        raise RenderError(f"The parts of the PDF could not be put together ({exc}).") from exc
    if time.monotonic() > deadline:
        raise RenderError(_too_slow(timeout))
    cpu = sum(r.cpu_seconds for r in rendered)
    return RenderedPdf.of(merged.data, merged.pages, cpu)


def render_html(
    html: str, *, timeout: float = 60.0, memory_mb: int = DEFAULT_MEMORY_MB
) -> RenderedPdf:
    """One small HTML document (a postal cover sheet, already rendered from a sandboxed
    template) as PDF, in a render process like a letter's parts: the same limits, the
    same asset-only URL fetcher, nothing imported into the calling process. Raises
    RenderError as render_letter does."""
    ctx = _context()
    deadline = time.monotonic() + timeout
    scratch = tempfile.mkdtemp(prefix="chorus-pdf-")
    ours, theirs = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_html_child,
        args=(theirs, html, memory_mb, max(1, int(timeout)) + 5, scratch),
        name="chorus-pdf-page",
        daemon=True,
    )
    job = _Running(process, ours, 0)
    try:
        _start(process)
        theirs.close()
        while not wait([ours], timeout=POLL_SECONDS):
            if time.monotonic() > deadline:
                raise RenderError(_too_slow(timeout))
            if _resident_mb(process.pid) > memory_mb:
                raise RenderError(_too_big(memory_mb))
        rendered = _collect(job, Part(kind="page"), memory_mb)
    finally:
        _stop(job)
        shutil.rmtree(scratch, ignore_errors=True)
    return RenderedPdf.of(rendered.data, rendered.pages, rendered.cpu_seconds)


def _html_child(conn: Connection, html: str, memory_mb: int, cpu: int, scratch: str) -> None:
    """render_html's process: limits, the page, one message to the parent."""
    tempfile.tempdir = scratch
    os.environ["TMPDIR"] = scratch
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    from web.pdf.safety import limit_memory

    limit_memory(memory_mb)
    try:
        from web.pdf.render import render_html_page

        data, pages = render_html_page(html)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.send(("ok", data, pages, usage.ru_utime + usage.ru_stime))
    except MemoryError:
        conn.send(("memory", ""))
    except Exception as exc:  # every failure becomes a message the parent reports
        log.exception("PDF page render failed")
        conn.send(("error", f"{type(exc).__name__}: {str(exc)[:300]}"))
    finally:
        conn.close()


def _too_slow(timeout: float) -> str:
    return f"Rendering the PDF took longer than {timeout:g} s, so it was stopped."


def _too_big(memory_mb: int) -> str:
    return (
        f"Rendering the PDF needed more than {memory_mb} MB of memory, so it was stopped. "
        "The letter's text may be too long or too complex."
    )


def default_processes() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _start(process: Any) -> None:
    """Start a render process without importing the caller's `__main__` module in it.
    multiprocessing (spawn, forkserver) re-imports the main module in every child so that
    functions defined there unpickle; ours live in web.pdf, so that import is only cost
    and hazard (a script without a `__main__` guard would run again in every render
    process; a REPL or stdin has no file to import and the child dies)."""
    original = spawn.get_preparation_data

    def without_main(name: str) -> dict[str, Any]:
        data: dict[str, Any] = original(name)
        data.pop("init_main_from_name", None)
        data.pop("init_main_from_path", None)
        return data

    with _START_LOCK:
        spawn.get_preparation_data = without_main
        try:
            process.start()
        finally:
            spawn.get_preparation_data = original


def _forget_forkserver() -> None:
    """After os.fork() (RQ forks a work horse per job; tests fork workers): the parent's
    forkserver is not this process's child, so multiprocessing could not manage it (its
    waitpid fails). Forget it; this process starts its own on its first render."""
    server = getattr(forkserver, "_forkserver", None)
    if server is None or getattr(server, "_forkserver_pid", None) is None:
        return
    alive = getattr(server, "_forkserver_alive_fd", None)
    if alive is not None:
        with contextlib.suppress(OSError):
            os.close(alive)
    server._forkserver_pid = None
    server._forkserver_address = None
    server._forkserver_alive_fd = None


os.register_at_fork(after_in_child=_forget_forkserver)


def _resident_mb(pid: int) -> float:
    """A process's resident set size in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


@dataclass(frozen=True)
class RenderedPart:
    """One part from its render process."""

    data: bytes
    pages: int
    cpu_seconds: float


@dataclass
class _Running:
    process: Any
    conn: Connection
    index: int


def run_parts(
    doc: LetterDoc,
    parts: Sequence[Part],
    *,
    progress: Callable[[int, int], None] | None = None,
    processes: int | None = None,
    deadline: float | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> list[RenderedPart]:
    """Each part rendered in its own process, in the parts' order."""
    ctx = _context()
    limit = processes or default_processes()
    if deadline is None:
        deadline = time.monotonic() + timeout
    cpu_seconds = max(1, int(deadline - time.monotonic()) + 5)
    waiting = sorted(range(len(parts)), key=lambda i: -parts[i].cost)
    results: list[RenderedPart | None] = [None] * len(parts)
    running: dict[Connection, _Running] = {}
    done = 0
    # WeasyPrint writes the fonts it loads to a temporary folder and removes it only when
    # its font configuration is garbage-collected, which never happens in a render process
    # (it ends with os._exit, or is killed). Each render's processes get one scratch
    # folder, removed here whatever happened: ~2 MB per part no longer piles up in /tmp.
    scratch = tempfile.mkdtemp(prefix="chorus-pdf-")
    if progress is not None:
        progress(0, len(parts))
    try:
        while waiting or running:
            while waiting and len(running) < limit:
                index = waiting.pop(0)
                ours, theirs = ctx.Pipe(duplex=False)
                process = ctx.Process(
                    target=_child,
                    args=(theirs, doc, parts[index], memory_mb, cpu_seconds, scratch),
                    name=f"chorus-pdf-{parts[index].kind}-{index}",
                    daemon=True,
                )
                _start(process)
                theirs.close()
                running[ours] = _Running(process, ours, index)
            left = deadline - time.monotonic()
            if left <= 0:
                raise RenderError(_too_slow(timeout))
            for ready in wait(list(running), timeout=min(POLL_SECONDS, left)):
                job = running.pop(ready)  # type: ignore[call-overload]
                results[job.index] = _collect(job, parts[job.index], memory_mb)
                done += 1
                if progress is not None:
                    progress(done, len(parts))
            for job in running.values():
                if _resident_mb(job.process.pid) > memory_mb:
                    raise RenderError(_too_big(memory_mb))
    finally:
        for job in running.values():
            _stop(job)
        shutil.rmtree(scratch, ignore_errors=True)
    return [r for r in results if r is not None]


def _collect(job: _Running, part: Part, memory_mb: int) -> RenderedPart:
    try:
        message = job.conn.recv()
    except (EOFError, OSError):
        message = None
    finally:
        job.conn.close()
    job.process.join(timeout=10)
    if job.process.is_alive():
        _stop(job)
    match message:
        case ("ok", bytes() as data, int() as pages, float() as cpu):
            return RenderedPart(data, pages, cpu)
        case ("memory", _):
            raise RenderError(_too_big(memory_mb))
        case ("error", str() as detail):
            raise RenderError(f"The {_label(part)} could not be rendered: {detail}")
    code = job.process.exitcode
    log.error("PDF render process for %s ended with exit code %s", part.kind, code)
    raise RenderError(
        f"The process rendering the {_label(part)} stopped unexpectedly (exit code {code}); "
        f"it may have needed more than {memory_mb} MB of memory."
    )


def _label(part: Part) -> str:
    return {
        "letter": "letter",
        "signatories": "list of signatories (annex A)",
        "voices": "signers' own words (annex B)",
        "method": "method annex (annex C)",
        "page": "page",
    }.get(part.kind, part.kind)


def _stop(job: _Running) -> None:
    if job.process.is_alive():
        job.process.kill()
    job.process.join(timeout=10)
    job.conn.close()


def _child(  # noqa: PLR0917 - Process(target=..., args=...) passes arguments by position
    conn: Connection, doc: LetterDoc, part: Part, memory_mb: int, cpu: int, scratch: str
) -> None:
    """A render process: limits first, then the part, then one message to the parent.
    Temporary files go to `scratch`, which the parent removes."""
    tempfile.tempdir = scratch
    os.environ["TMPDIR"] = scratch
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    from web.pdf.safety import ContentError, limit_memory

    limit_memory(memory_mb)
    try:
        from web.pdf.render import render_part

        data, pages = render_part(doc, part)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        conn.send(("ok", data, pages, usage.ru_utime + usage.ru_stime))
    except MemoryError:
        conn.send(("memory", ""))
    except ContentError as exc:  # already a message for people
        conn.send(("error", str(exc)))
    except Exception as exc:  # every failure becomes a message the parent reports
        log.exception("PDF part %s failed", part.kind)
        conn.send(("error", f"{type(exc).__name__}: {str(exc)[:300]}"))
    finally:
        conn.close()
