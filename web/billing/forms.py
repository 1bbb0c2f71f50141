"""Forms of the Plan page and the operator's billing pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, RadioField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, NumberRange, Optional

from web.billing.services import DEFAULT_GRANT_MONTHS, MAX_GRANT_MONTHS, MAX_NOTE, MAX_REASON
from web.forms import max_length, no_control_characters, required, strip


class FreeSupporterForm(FlaskForm):
    reason = TextAreaField(
        "Why should your collective have the Supporter plan free?",
        description=f"A few sentences are enough, at most {MAX_REASON:,} characters: who you "
        "are, and why paying is hard for you. The platform operator reads it.",
        filters=[strip],
        validators=[required("a short reason"), max_length(MAX_REASON, "The reason")],
    )


class ColoursForm(FlaskForm):
    primary_colour = StringField(
        "Main colour (optional)",
        description="A hex code like #1d4f91, for the band at the top of your public pages "
        "and the buttons, under white text. Leave empty for Chorus's own.",
        filters=[strip],
        validators=[max_length(7, "The main colour"), no_control_characters],
    )
    accent_colour = StringField(
        "Accent colour (optional)",
        description="A hex code like #00703c, for links on white. Leave empty for Chorus's own.",
        filters=[strip],
        validators=[max_length(7, "The accent colour"), no_control_characters],
    )


class LogoForm(FlaskForm):
    logo = FileField(
        "Logo",
        description="A PNG or JPEG image, at most 1 MB, between 16 and 4,096 pixels on each "
        "side. It is shown at most 4 rem (64 pixels) high.",
        validators=[FileRequired(message="Choose the logo file to upload.")],
    )


class DecisionForm(FlaskForm):
    decision = RadioField(
        "Decision",
        choices=[
            SelectChoice("approve", "Approve: Supporter free"),
            SelectChoice("decline", "Decline"),
        ],
        validators=[InputRequired(message="Choose approve or decline.")],
        validate_choice=True,
    )
    months = IntegerField(
        "For how many months (when approving)",
        default=DEFAULT_GRANT_MONTHS,
        validators=[
            Optional(),
            NumberRange(
                min=1,
                max=MAX_GRANT_MONTHS,
                message=f"Choose between 1 and {MAX_GRANT_MONTHS} months.",
            ),
        ],
    )
    note = TextAreaField(
        "Note to the collective",
        description="Required when declining: say why, and what would change the answer. "
        "The owners receive it by email.",
        filters=[strip],
        validators=[max_length(MAX_NOTE, "The note")],
    )


class FederationForm(FlaskForm):
    name = StringField(
        "Federation name",
        filters=[strip],
        validators=[required("a name"), max_length(120, "The name"), no_control_characters],
    )
    months = IntegerField(
        "Free for how many months (0: until it subscribes)",
        default=0,
        validators=[
            Optional(),
            NumberRange(
                min=0, max=MAX_GRANT_MONTHS, message=f"Choose between 0 and {MAX_GRANT_MONTHS}."
            ),
        ],
    )


class LinkForm(FlaskForm):
    collective_slug = StringField(
        "Web address of the collective",
        description="The part after /app/, for example: tenants-union",
        filters=[strip],
        validators=[
            required("the collective's web address"),
            max_length(63, "The web address"),
            no_control_characters,
        ],
    )
    note = TextAreaField(
        "Note (optional)", filters=[strip], validators=[max_length(MAX_NOTE, "The note")]
    )


class GrantForm(FlaskForm):
    months = IntegerField(
        "Free for how many more months (0 ends the grant now)",
        default=DEFAULT_GRANT_MONTHS,
        validators=[
            InputRequired(message="Enter a number of months."),
            NumberRange(
                min=0, max=MAX_GRANT_MONTHS, message=f"Choose between 0 and {MAX_GRANT_MONTHS}."
            ),
        ],
    )
    note = TextAreaField(
        "Note (optional)", filters=[strip], validators=[max_length(MAX_NOTE, "The note")]
    )
