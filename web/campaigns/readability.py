"""Word counts and the Flesch reading-ease score for the executive summary."""

from __future__ import annotations

import re

_WORD = re.compile(r"[A-Za-zÀ-ÿ0-9']+")
_SENTENCE = re.compile(r"[.!?]+(?:\s|$)")
_VOWELS = re.compile(r"[aeiouy]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text or "")


def word_count(text: str) -> int:
    return len(words(text))


def syllables(word: str) -> int:
    w = word.lower()
    if len(w) <= 3:
        return 1
    w = re.sub(r"(?:[^laeiouy]es|ed|[^laeiouy]e)$", "", w)
    w = re.sub(r"^y", "", w)
    return max(1, len(_VOWELS.findall(w)))


def reading_ease(text: str) -> float | None:
    """Flesch reading ease (higher is easier; 60–70 is plain English). None if empty."""
    found = words(text)
    if not found:
        return None
    sentences = max(1, len(_SENTENCE.findall(text.strip() + " ")))
    total_syllables = sum(syllables(w) for w in found)
    score = 206.835 - 1.015 * (len(found) / sentences) - 84.6 * (total_syllables / len(found))
    return round(score, 1)


def reading_ease_label(score: float | None) -> str:
    if score is None:
        return "Write a summary to see how easy it is to read."
    if score >= 60:
        return "Plain English: easy for most readers."
    if score >= 50:
        return "Fairly difficult: shorter sentences and words would help."
    return "Difficult: try shorter sentences and everyday words."
