from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    Field,
    FieldList,
    FormField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional, ValidationError

from web.campaigns.models import AudienceStyle, CampaignKind
from web.campaigns.services import MAX_SIGNING_LINE, MAX_SIGNING_LINES
from web.campaigns.styles import STYLES
from web.forms import BIDI_CONTROLS, max_length, no_control_characters, required, strip

KIND_CHOICES = [SelectChoice(k.value, k.label) for k in CampaignKind]
STYLE_CHOICES = [SelectChoice(s.value, STYLES[s].label) for s in AudienceStyle]


class NewCampaignForm(FlaskForm):
    kind = RadioField(
        "What are you writing?",
        choices=KIND_CHOICES,
        default=CampaignKind.OPEN_LETTER.value,
        validate_choice=True,
    )
    title = StringField(
        "Campaign title",
        description="People see this when you share the campaign.",
        filters=[strip],
        validators=[required("a title"), max_length(200, "The title"), no_control_characters],
    )
    slug = StringField(
        "Web address",
        description="Lower-case letters, numbers and hyphens, for example: fix-pip-assessments",
        filters=[strip],
        validators=[required("a web address"), max_length(63, "The web address")],
    )


class SettingsForm(FlaskForm):
    title = NewCampaignForm.title
    slug = NewCampaignForm.slug
    recipient_id = SelectField("Recipient", coerce=str, validate_choice=True)
    addressee_name = StringField(
        "Addressee's name (optional)",
        description="For example: Rt Hon Jane Smith MP. Leave empty to greet them by role.",
        filters=[strip],
        validators=[max_length(200, "The name"), no_control_characters],
    )
    addressee_role = StringField(
        "Addressee's role",
        description="For example: Secretary of State for Work and Pensions",
        filters=[strip],
        validators=[max_length(200, "The role"), no_control_characters],
    )
    audience_style = SelectField("Who will read it?", choices=STYLE_CHOICES, validate_choice=True)
    signature_target = IntegerField(
        "Signature target (optional)",
        validators=[
            Optional(),
            NumberRange(min=1, max=100_000_000, message="Enter a whole number above zero."),
        ],
    )
    closes_on = DateField("Closing date (optional)", validators=[Optional()])
    statements_auto_approve = BooleanField(
        "Approve signers’ own words automatically",
        description="Their words appear on the campaign page as soon as they confirm their "
        "signature, if they agreed to show them. You can still hide any of them. Words "
        "already waiting for review keep waiting for you.",
    )
    suggest_text = StringField(
        "Describe the issue in a few words to get suggestions",
        filters=[strip],
        validators=[max_length(2000, "The description")],
    )


class LinkForm(FlaskForm):
    class Meta:
        csrf = False

    title = StringField(
        "Title",
        filters=[strip],
        validators=[max_length(300, "A link title"), no_control_characters],
    )
    url = StringField(
        "Address (https://…)", filters=[strip], validators=[max_length(2000, "A link")]
    )


class SlotForm(FlaskForm):
    class Meta:
        csrf = False

    when = StringField(
        "Date and time, or a window",
        filters=[strip],
        validators=[max_length(200, "A time"), no_control_characters],
    )
    place = StringField(
        "Place, or “online”",
        filters=[strip],
        validators=[max_length(200, "A place"), no_control_characters],
    )


class OneALine:
    """A list typed one item a line: at most `max_lines` lines of `max_chars` characters,
    no control or text-direction characters (each line ends up as one line of the PDF)."""

    def __init__(self, what: str, max_lines: int, max_chars: int) -> None:
        self.what = what
        self.max_lines = max_lines
        self.max_chars = max_chars

    def __call__(self, _form: Any, field: Field) -> None:
        value = field.data if isinstance(field.data, str) else ""
        if any((ord(ch) < 32 and ch not in "\r\n\t") or ord(ch) == 127 for ch in value):
            raise ValidationError(f"Remove the invisible control characters from the {self.what}.")
        if any(ch in BIDI_CONTROLS for ch in value):
            raise ValidationError(
                f"Remove the invisible text-direction characters from the {self.what}."
            )
        items = [line.strip() for line in value.splitlines() if line.strip()]
        if len(items) > self.max_lines:
            raise ValidationError(
                f"List at most {self.max_lines} {self.what}, one a line (you have {len(items)})."
            )
        for number, item in enumerate(items, 1):
            if len(item) > self.max_chars:
                raise ValidationError(
                    f"Line {number} of the {self.what} is {len(item):,} characters long; keep "
                    f"each line to {self.max_chars} characters or fewer."
                )


class LetterForm(FlaskForm):
    subject = StringField(
        "Subject line",
        filters=[strip],
        validators=[max_length(200, "The subject line"), no_control_characters],
    )
    summary = TextAreaField(
        "Executive summary",
        filters=[strip],
        validators=[max_length(5000, "The summary")],
    )
    body_markdown = TextAreaField(
        "Body of the letter",
        description="Write in paragraphs. Markdown works: **bold**, *italic*, lists with -, "
        "links as [text](https://…). Images and HTML are not allowed.",
        filters=[strip],
        validators=[max_length(60_000, "The body")],
    )
    asks = FieldList(
        StringField(
            "Ask", filters=[strip], validators=[max_length(1000, "An ask"), no_control_characters]
        ),
        min_entries=3,
        max_entries=10,
    )
    evidence_links = FieldList(FormField(LinkForm), min_entries=2, max_entries=10)
    easy_read_markdown = TextAreaField(
        "Easy Read version (optional)",
        description="Short sentences, one idea each, everyday words.",
        filters=[strip],
        validators=[max_length(20_000, "The Easy Read version")],
    )
    meeting_purpose = TextAreaField(
        "Purpose of the meeting",
        filters=[strip],
        validators=[max_length(3000, "The purpose")],
    )
    meeting_attendees = TextAreaField(
        "Who would attend",
        description="Names and roles, one per line.",
        filters=[strip],
        validators=[max_length(3000, "The attendees")],
    )
    meeting_slots = FieldList(FormField(SlotForm), min_entries=3, max_entries=10)
    lead_signatories = TextAreaField(
        "Lead signatories (optional)",
        description="The people who sign the letter first, one a line: name, then role. For "
        "example: Amina Khan, Chair, Riverside Tenants’ Association. At most "
        f"{MAX_SIGNING_LINES} lines of {MAX_SIGNING_LINE} characters.",
        filters=[strip],
        validators=[
            max_length(20_000, "The lead signatories"),
            OneALine("lead signatories", MAX_SIGNING_LINES, MAX_SIGNING_LINE),
        ],
    )
    signing_organisations = TextAreaField(
        "Signing organisations (optional)",
        description="Organisations that support the letter, one a line. At most "
        f"{MAX_SIGNING_LINES} lines of {MAX_SIGNING_LINE} characters.",
        filters=[strip],
        validators=[
            max_length(20_000, "The signing organisations"),
            OneALine("signing organisations", MAX_SIGNING_LINES, MAX_SIGNING_LINE),
        ],
    )


class CommentForm(FlaskForm):
    comment = TextAreaField(
        "Comment",
        filters=[strip],
        validators=[max_length(5000, "The comment")],
    )
