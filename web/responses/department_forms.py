"""Forms of the department inbox: claim a department, acknowledge a letter, reply."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import EmailField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import AnyOf

from web.forms import max_length, no_control_characters, required, strip

MAX_REPLY = 50_000


def _optional_int(value: object) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


class ClaimForm(FlaskForm):
    department = SelectField(
        "Your department",
        coerce=_optional_int,
        validate_choice=False,  # the service says plainly when the choice is unknown
        validators=[required("your department")],
    )
    email = EmailField(
        "Your work email address",
        description=(
            "On one of the department's official email domains. Chorus sends a "
            "confirmation link to it."
        ),
        filters=[strip],
        validators=[
            required("your work email address"),
            max_length(254, "Your work email address"),
        ],
    )


class AcknowledgeForm(FlaskForm):
    """Acknowledge receipt in one click (only the CSRF token)."""


class ReplyForm(FlaskForm):
    kind = RadioField(
        "What kind of reply is this?",
        choices=[
            SelectChoice("substantive", "Our reply to the letter"),
            SelectChoice("holding", "A holding reply: a full reply will follow"),
        ],
        default="substantive",
        validate_choice=False,
        validators=[
            AnyOf(
                ["substantive", "holding"],
                message="Choose whether this is your reply or a holding reply.",
            )
        ],
    )
    body = TextAreaField(
        "Your reply",
        filters=[strip],
        validators=[required("your reply"), max_length(MAX_REPLY, "Your reply")],
    )
    responder_name = StringField(
        "Your name",
        filters=[strip],
        validators=[
            required("your name"),
            max_length(200, "Your name"),
            no_control_characters,
        ],
    )
    responder_role = StringField(
        "Your role (optional)",
        description="For example: Head of Correspondence, Policy Adviser.",
        filters=[strip],
        validators=[max_length(200, "Your role"), no_control_characters],
    )
    attachment = FileField(
        "Attach a document (optional)",
        description="A PDF, Word (DOCX) or OpenDocument (ODT) file, up to 20 MB.",
    )
