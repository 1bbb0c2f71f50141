"""Forms for closing a campaign and delivering its letter. Every field is capped; the
services (web/delivery/sending.py) check the rules and say what is wrong."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, RadioField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional

from web.forms import max_length, strip

METHODS = [SelectChoice("email", "By email"), SelectChoice("post", "By post")]
WHEN = [
    SelectChoice("now", "Now: close the campaign (if it is still collecting) and deliver"),
    SelectChoice("date", "On a date"),
    SelectChoice("target", "When the campaign reaches its signature target"),
]


class PlanForm(FlaskForm):
    method = RadioField(
        "How should the letter be delivered?",
        choices=METHODS,
        default="email",
        validators=[InputRequired(message="Choose how to deliver the letter.")],
    )
    when = RadioField(
        "When?",
        choices=WHEN,
        default="now",
        validators=[InputRequired(message="Choose when to deliver the letter.")],
    )
    scheduled_for = DateField(
        "Date to deliver on",
        validators=[Optional()],
        description="Only for “On a date”. At most a year from today.",
    )
    to_email = StringField(
        "Recipient's email address",
        filters=[strip],
        validators=[max_length(254, "An email address")],
        description="From the directory, if it lists one. Change it if you know a better one.",
    )


class SendForm(FlaskForm):
    to_email = StringField(
        "Send to this email address",
        filters=[strip],
        validators=[max_length(254, "An email address")],
    )
    key = HiddenField(validators=[max_length(64, "The form key")])
    document_id = HiddenField(validators=[max_length(20, "The document")])


class PostalForm(FlaskForm):
    key = HiddenField(validators=[max_length(64, "The form key")])
    document_id = HiddenField(validators=[max_length(20, "The document")])


class PostingForm(FlaskForm):
    posted_on = DateField(
        "Date you posted the letter",
        validators=[InputRequired(message="Enter the date you posted the letter.")],
    )
    tracking = StringField(
        "Tracking reference (optional)",
        filters=[strip],
        validators=[max_length(100, "A tracking reference")],
        description="For example the Royal Mail Signed For reference.",
    )
