"""Imported once by the render forkserver (`web.pdf.engine`): WeasyPrint, the templates and
one small render, so fontconfig, Pango and our fonts are loaded before any render process
is forked and every process starts warm (about 0.1 s of CPU saved per part).

A failure here is not fatal: multiprocessing ignores a preload that raises, and each
render process then warms up on its own."""

from __future__ import annotations

from web.pdf.render import warm_up

warm_up()
