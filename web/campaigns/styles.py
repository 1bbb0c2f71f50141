"""Audience styles: how a letter greets, signs off and summarises for its reader.

A policy official reads differently from a minister: the guidance beside the editor
says how, and the summary's word limit follows the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from web.campaigns.models import AudienceStyle


@dataclass(frozen=True)
class Style:
    label: str
    salutation: str  # {name} is the addressee's name or role
    sign_off: str
    summary_words: int
    guidance: tuple[str, ...]


STYLES: dict[AudienceStyle, Style] = {
    AudienceStyle.MINISTER: Style(
        label="Minister",
        salutation="Dear {name}",
        sign_off="Yours sincerely",
        summary_words=120,
        guidance=(
            "Lead with the decision you want and why it matters to people now.",
            "Name the human impact in one or two sentences; ministers read many letters a day.",
            "Keep the summary short enough to read in thirty seconds.",
            "Ask for something the minister can say yes to: a meeting, a review, a statement.",
        ),
    ),
    AudienceStyle.SENIOR_OFFICIAL: Style(
        label="Senior official (director or permanent secretary)",
        salutation="Dear {name}",
        sign_off="Yours sincerely",
        summary_words=150,
        guidance=(
            "Say which policy or process you are writing about, and what is going wrong.",
            "Give the scale: how many people, since when, with what evidence.",
            "Make each ask specific and within the department's power.",
        ),
    ),
    AudienceStyle.POLICY_TEAM: Style(
        label="Policy team",
        salutation="Dear {name}",
        sign_off="Yours faithfully",
        summary_words=250,
        guidance=(
            "Policy officials want detail: cite the regulation, guidance or scheme by name.",
            "Separate evidence (what you know) from experience (what people tell you).",
            "Suggest practical changes and say what they would cost or save, if you know.",
            "Link your evidence so it can be checked.",
        ),
    ),
    AudienceStyle.SELECT_COMMITTEE: Style(
        label="Select committee",
        salutation="Dear {name}",
        sign_off="Yours sincerely",
        summary_words=200,
        guidance=(
            "Committees scrutinise government: say what the department has or has not done.",
            "Point to the inquiry or question you are contributing to, if there is one.",
            "Number your points so the committee can quote them.",
        ),
    ),
    AudienceStyle.LOCAL_AUTHORITY: Style(
        label="Local authority",
        salutation="Dear {name}",
        sign_off="Yours faithfully",
        summary_words=150,
        guidance=(
            "Name the service, the area and the people affected.",
            "Say which council decision or duty you are asking about.",
            "Ask for a reply within the council's published complaints or correspondence time.",
        ),
    ),
}


def style_for(value: str) -> Style:
    return STYLES[AudienceStyle(value)]


def salutation(style_value: str, addressee_name: str, addressee_role: str) -> str:
    name = addressee_name.strip() or addressee_role.strip() or "Sir or Madam"
    return style_for(style_value).salutation.format(name=name)
