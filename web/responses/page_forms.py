"""Forms of the department's response page (/respond/<token>).

Every form posts to its own address; the CSRF token is checked for every POST by
Flask-WTF's CSRFProtect before the view runs (the page prints it with the `csrf()`
macro), so the forms here do not carry their own. Each form has a prefix, so the field
ids of the five forms on one page never collide.

Long text (a reply, a reason, a note) keeps its line breaks and loses control and
text-direction characters (`clean_long_text`); one-line fields (names, roles) refuse
them with a message, as everywhere else (web/forms.py).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    DateField,
    FormField,
    RadioField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Optional, ValidationError

from web.forms import (
    BIDI_CONTROLS,
    email_address,
    max_length,
    no_control_characters,
    required,
    strip,
)
from web.responses.models import MAX_ATTACHMENT_BYTES

MAX_REPLY = 50_000
MAX_REASON = 5_000
MAX_NOTE = 2_000


def clean_long_text(value: Any) -> Any:
    """Trim, normalise line breaks, drop control characters (but tabs and line breaks)
    and text-direction overrides."""
    if not isinstance(value, str):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = "".join(
        ch
        for ch in value
        if ch in "\n\t"
        or (ch not in BIDI_CONTROLS and unicodedata.category(ch) not in ("Cc", "Cs"))
    )
    return value.strip()


class _NoCsrf(FlaskForm):
    """A form of the page, with its own prefix (`PREFIX`) unless given another."""

    PREFIX = ""

    class Meta:
        csrf = False  # CSRFProtect checks every POST before the view (module docstring)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", self.PREFIX)
        super().__init__(*args, **kwargs)


def _name() -> StringField:
    return StringField(
        "Your name",
        filters=[strip],
        validators=[required("your name"), max_length(200, "Your name"), no_control_characters],
    )


def _role(label: str = "Your role") -> StringField:
    return StringField(
        label,
        description="For example: Correspondence Officer, Policy Lead.",
        filters=[strip],
        validators=[max_length(200, "Your role"), no_control_characters],
    )


class AcknowledgeForm(_NoCsrf):
    PREFIX = "ack"

    name = StringField(
        "Your name (optional)",
        filters=[strip],
        validators=[max_length(200, "Your name"), no_control_characters],
    )
    role = _role("Your role (optional)")


class ReplyForm(_NoCsrf):
    PREFIX = "reply"

    body = TextAreaField(
        "Your reply",
        description=f"Up to {MAX_REPLY:,} characters.",
        filters=[clean_long_text],
        validators=[required("your reply"), max_length(MAX_REPLY, "The reply")],
    )
    kind = RadioField(
        "Is this your full reply?",
        choices=[
            SelectChoice("substantive", "This is our full reply"),
            SelectChoice("holding", "This is a holding reply: a full reply will follow"),
        ],
        default="substantive",
        validators=[required("whether this is your full reply")],
    )
    attachment = FileField(
        "Attach a document (optional)",
        description=(
            f"A PDF, Word (.docx) or OpenDocument (.odt) file, up to "
            f"{MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB."
        ),
    )
    name = _name()
    role = StringField(
        "Your role",
        description="For example: Correspondence Officer, Policy Lead.",
        filters=[strip],
        validators=[required("your role"), max_length(200, "Your role"), no_control_characters],
    )
    email = StringField(
        "Your email address (optional)",
        description="If you would like the organisers to be able to write back to you.",
        filters=[strip],
        validators=[Optional(), max_length(254, "The email address"), email_address()],
    )


class AcceptForm(_NoCsrf):
    PREFIX = "accept"

    slot = RadioField("Which proposed time do you accept?", coerce=int, validate_choice=False)
    day = DateField(
        "Exact date (if the time you chose is a window)",
        validators=[Optional()],
        description="Leave empty if the time you chose already gives a date and time.",
    )
    start = TimeField("Start time (UK time)", validators=[Optional()])
    end = TimeField("End time (UK time)", validators=[Optional()])
    location = StringField(
        "Place or video link (optional)",
        description="An address, a room, or a video link starting with https://. "
        "Leave empty to meet where the letter proposed.",
        filters=[strip],
        validators=[max_length(300, "The place or link")],
    )
    name = _name()
    role = _role("Your role (optional)")
    email = StringField(
        "Your email address",
        description="The calendar invitation is sent here.",
        filters=[strip],
        validators=[
            required("your email address"),
            max_length(254, "The email address"),
            email_address(),
        ],
    )

    def validate_slot(self, field: Any) -> None:
        if field.data is None or field.data not in [c.value for c in field.choices]:
            raise ValidationError("Choose one of the proposed times.")


class TimeRangeForm(FlaskForm):
    class Meta:
        csrf = False

    day = DateField("Date", validators=[Optional()])
    start = TimeField("From (UK time)", validators=[Optional()])
    end = TimeField("To (UK time)", validators=[Optional()])


class AlternativesForm(_NoCsrf):
    PREFIX = "alt"

    # Three fixed groups rather than a FieldList: a FieldList given groups 1 and 3 pads
    # itself back to three with a copy of the last one.
    time1 = FormField(TimeRangeForm, label="Time 1")
    time2 = FormField(TimeRangeForm, label="Time 2 (optional)")
    time3 = FormField(TimeRangeForm, label="Time 3 (optional)")
    note = TextAreaField(
        "A note for the organisers (optional)",
        filters=[clean_long_text],
        validators=[max_length(MAX_NOTE, "The note")],
    )
    name = _name()
    role = _role("Your role (optional)")
    email = StringField(
        "Your email address (optional)",
        filters=[strip],
        validators=[Optional(), max_length(254, "The email address"), email_address()],
    )

    @property
    def times(self) -> list[FormField]:
        return [self.time1, self.time2, self.time3]


class DeclineForm(_NoCsrf):
    PREFIX = "decline"

    reason = TextAreaField(
        "Why are you declining?",
        filters=[clean_long_text],
        validators=[required("a reason"), max_length(MAX_REASON, "The reason")],
    )
    name = _name()
    role = _role("Your role (optional)")
    email = StringField(
        "Your email address (optional)",
        filters=[strip],
        validators=[Optional(), max_length(254, "The email address"), email_address()],
    )
