"""Shared form pieces: every field trims, caps its length and speaks plainly."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import Field
from wtforms.validators import Email, InputRequired, Length, ValidationError


def strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def required(what: str) -> InputRequired:
    return InputRequired(message=f"Enter {what}.")


def max_length(n: int, what: str) -> Length:
    return Length(max=n, message=f"{what} must be {n} characters or fewer.")


def email_address() -> Email:
    return Email(
        message="Enter an email address in the correct format, like name@example.org.",
        check_deliverability=False,
    )


def no_control_characters(_form: Any, field: Field) -> None:
    """For one-line fields (names): no control characters, line breaks included. A name
    ends up in email headers, which refuse line breaks, so such a name would stop every
    email that carries it."""
    value = field.data if isinstance(field.data, str) else ""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValidationError(
            "Remove the line breaks and invisible control characters from this field."
        )
    if any(ch in BIDI_CONTROLS for ch in value):
        # Right-to-left overrides let a name display as something else ("spoofing");
        # names in right-to-left scripts never need them.
        raise ValidationError("Remove the invisible text-direction characters from this field.")


BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


class ConfirmForm(FlaskForm):
    """A form with only its CSRF token, for one-button POSTs."""
