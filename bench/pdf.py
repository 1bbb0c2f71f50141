"""`python -m bench pdf`: render letters with 1,000, 10,000 and 100,000 signatories
(issue #5 §7) and report wall time and the peak resident memory of every process.

The data is synthetic and built directly as contract objects (no database): names drawn
from Welsh, English, Irish, Polish, South Asian, Arabic, Chinese, Cyrillic and Devanagari
first names and surnames, a town for most, and 10% of signatories with a statement of
about 300 characters. Statements are all distinct (no near-duplicate grouping), the worst
case for annex B. Two measurements per size:

- the whole document: `web.pdf.engine.render_letter` (letter, annexes A, B and C);
- annex A alone: its chunks rendered and merged, as the whole render does (two columns
  up to 20,000 names, one wide column beyond: `web.pdf.engine.COLUMN_LIMIT`).

Memory is sampled every 20 ms over this process and all its descendants (the forkserver
and the render processes): each process's peak is the larger of its sampled RSS and its
kernel high-water mark (VmHWM). Results and the command belong in docs/benchmarks.md.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psutil

from web.pdf.contract import LetterDoc, MethodFacts, Party, Signatory, Voice

FIRST = (
    "Siân", "Dafydd", "Gwen", "Rhys", "Ffion", "Aled", "Catrin", "Iolo", "Mair", "Tomos",
    "Emma", "Oliver", "Amelia", "Jack", "Zoë", "Chloë", "Aoife", "Niamh", "Seán", "Tomasz",
    "Agnieszka", "Priya", "Rahul", "Aisha", "Fatima", "Mohammed", "Olga", "Dmitri", "Wei",
    "Mei", "Kwame", "Adaeze", "José", "Inês", "Björn", "محمد", "فاطمة", "王", "李", "Иван",
    "Ольга", "अमित", "प्रिया",
)  # fmt: skip
LAST = (
    "Jones", "Williams", "Davies", "Evans", "Thomas", "ap Rhys", "Llywelyn", "Ŵyn", "Smith",
    "Brown", "O'Brien", "Ní Bhriain", "Kowalski", "Nowak", "Patel", "Sharma", "Khan",
    "Begum", "Ivanova", "Chen", "Okafor", "Mensah", "García", "Brontë", "Müller", "علي",
    "حسن", "小明", "丽", "Петров", "Смирнова", "शर्मा", "पटेल",
)  # fmt: skip
PLACES = (
    "Cardiff", "Caerdydd", "Swansea", "Llanidloes", "Aberystwyth", "Ynys Môn", "Machynlleth",
    "Leeds", "Bristol", "Glasgow", "Belfast", "Derry/Londonderry", "Norwich", "",
)  # fmt: skip
STATEMENT = (
    "the bus was my only way to reach the surgery and since the timetable was cut I have "
    "missed two appointments my neighbour drives me when she can but she works shifts and "
    "the taxi costs more than my weekly food shop please restore the hourly service so "
    "people like me can stay independent and see our families"
)
WORDS = STATEMENT.split()
SIZES = (1_000, 10_000, 100_000)


def synthetic(count: int, seed: int = 5) -> tuple[LetterDoc, list[Signatory], list[Voice]]:
    rng = random.Random(seed)
    people = [
        Signatory(f"{rng.choice(FIRST)} {rng.choice(LAST)}", rng.choice(PLACES))
        for _ in range(count)
    ]
    voices = []
    for i in range(count // 10):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 300:
            words.append(rng.choice(WORDS))
        voices.append(Voice(" ".join(words).capitalize() + ".", 1 + i % 3, people[i].name))
    doc = LetterDoc(
        reference="CH-bench-buses-v1",
        title="Restore the T4 bus service",
        subject="The T4 bus service between Newtown and Cardiff",
        date="25 November 2026",
        kind="open_letter",
        audience_style="minister",
        sender=Party(name="Bench Bus Users", address_lines=("1 Stryd Fawr", "Llanidloes")),
        recipient=Party(name="Cabinet Secretary for Transport", organisation="Welsh Government"),
        salutation="Dear Cabinet Secretary",
        summary="Since April the T4 runs twice a day. People miss hospital appointments.",
        body_html="<p>" + " ".join(WORDS) + "</p>",
        asks=("Restore the hourly T4.", "Consult bus users before any cut."),
        closing="We would be grateful for your reply to each of our asks.",
        sign_off="Yours sincerely",
        method=MethodFacts(
            verified_total=count,
            by_method=(("Online", count),),
            statements_total=len(voices),
            distinct_statements=len(voices),
            letter_sha256="ab" * 32,
            verify_url="https://chorus.example/verify",
        ),
        letter_sha256="ab" * 32,
        verify_url="https://chorus.example/verify",
        author="Bench Bus Users",
    )
    return doc, people, voices


@dataclass
class Peaks:
    """Peak RSS (bytes) by process, sampled from outside."""

    by_pid: dict[int, tuple[str, int]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        me = psutil.Process()
        while not self.stop.is_set():
            for proc in [me, *me.children(recursive=True)]:
                try:
                    rss = proc.memory_info().rss
                    with open(f"/proc/{proc.pid}/status") as status:
                        hwm = next(
                            int(line.split()[1]) * 1024
                            for line in status
                            if line.startswith("VmHWM:")
                        )
                    name = "this process" if proc.pid == me.pid else _role(proc, me.pid)
                except (psutil.Error, OSError, StopIteration):
                    continue
                old = self.by_pid.get(proc.pid, (name, 0))[1]
                self.by_pid[proc.pid] = (name, max(old, rss, hwm))
            time.sleep(0.02)

    def summary(self) -> tuple[int, str, int]:
        """(largest peak, its process, this process's peak)."""
        me = os.getpid()
        role, peak = max(self.by_pid.values(), key=lambda item: item[1])
        return peak, role, self.by_pid.get(me, ("", 0))[1]


def _role(proc: psutil.Process, me: int) -> str:
    # The forkserver is this process's child; render processes are forked from it.
    if proc.ppid() != me:
        return "render process"
    return "forkserver" if "forkserver" in " ".join(proc.cmdline()) else "child process"


def measure(work: Callable[[], Any]) -> tuple[Any, float, Peaks]:
    peaks = Peaks()
    sampler = threading.Thread(target=peaks.sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        result = work()
    finally:
        elapsed = time.monotonic() - started
        time.sleep(0.05)
        peaks.stop.set()
        sampler.join()
    return result, elapsed, peaks


def annex_a_alone(doc: LetterDoc, people: list[Signatory]) -> tuple[int, float]:
    """Annex A's chunks rendered and merged, as render_letter does them: its page count
    and the render processes' CPU time."""
    from web.pdf.engine import plan_parts, run_parts
    from web.pdf.merge import PartPdf, Stamp, merge_parts

    parts = [p for p in plan_parts(doc, people, []) if p.kind == "signatories"]
    rendered = run_parts(doc, parts, timeout=600)
    pdfs = [PartPdf(r.data, r.pages, p.columns) for p, r in zip(parts, rendered, strict=True)]
    merged = merge_parts(pdfs, Stamp(doc.reference))
    return merged.pages, sum(r.cpu_seconds for r in rendered)


MB = 1024 * 1024


def bench_pdf(sizes: tuple[int, ...] = SIZES) -> None:
    from web.pdf.engine import default_processes, render_letter

    print(
        f"python -m bench pdf: {default_processes()} render processes, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start"
    )
    # Start the forkserver (it imports WeasyPrint once) outside the measurements.
    warm_doc, _people, _voices = synthetic(10)
    render_letter(warm_doc, [], [])
    rows = []
    for count in sizes:
        doc, people, voices = synthetic(count)
        pdf, whole, whole_peaks = measure(lambda: render_letter(doc, people, voices, timeout=600))  # noqa: B023
        (pages_a, cpu_a), annex, annex_peaks = measure(lambda: annex_a_alone(doc, people))  # noqa: B023
        peak, role, own = whole_peaks.summary()
        peak_a, role_a, _own_a = annex_peaks.summary()
        rows.append((count, whole, annex))
        print(
            f"{count:>7,} signatories, {len(voices):>6,} statements: whole {whole:5.1f} s "
            f"({pdf.pages:,} pages, {len(pdf.data) / MB:.1f} MB; largest process "
            f"{peak / MB:.0f} MB ({role}), this process {own / MB:.0f} MB, "
            f"{len(whole_peaks.by_pid)} processes; render CPU {pdf.cpu_seconds:.0f} s) | "
            f"annex A alone {annex:5.1f} s ({pages_a:,} pages; largest process "
            f"{peak_a / MB:.0f} MB ({role_a}); render CPU {cpu_a:.0f} s)"
        )
        over = [(name, rss) for name, rss in whole_peaks.by_pid.values() if rss > 300 * MB]
        if over:
            print(f"  over 300 MB: {[(n, round(r / MB)) for n, r in over]}")
    if len(rows) > 1:
        base_count, base_whole, base_annex = rows[1] if len(rows) > 2 else rows[0]
        for count, whole, annex in rows:
            print(
                f"per 1,000 signatories at {count:>7,}: whole {whole / count * 1000:.2f} s, "
                f"annex A {annex / count * 1000:.2f} s"
            )
        count, whole, annex = rows[-1]
        growth = (whole / count) / (base_whole / base_count)
        growth_a = (annex / count) / (base_annex / base_count)
        print(
            f"time per signatory at {count:,} vs {base_count:,}: whole x{growth:.2f}, "
            f"annex A x{growth_a:.2f} (1.00 = linear)"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
