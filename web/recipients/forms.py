"""Forms for recipients. They check shape and length; the rules live in services.

Topics and email domains are typed as comma-separated text and handed to the service
as lists.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import Field, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from web.forms import max_length, no_control_characters, required, strip
from web.recipients.models import Nation
from web.recipients.services import COLLECTIVE_KINDS, DIRECTORY_KINDS, MAX_DAYS

NATION_CHOICES = [
    SelectChoice(Nation.ENGLAND_AND_WALES.value, "England and Wales"),
    SelectChoice(Nation.SCOTLAND.value, "Scotland"),
    SelectChoice(Nation.NORTHERN_IRELAND.value, "Northern Ireland"),
]


def split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def join_list(values: list[str] | None) -> str:
    return ", ".join(values or [])


def working_days(_form: Any, field: Field) -> None:
    value = field.data if isinstance(field.data, str) else ""
    if not value.isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise ValidationError(f"Enter a whole number of working days from 1 to {MAX_DAYS}.")


def no_control_characters_but_line_breaks(_form: Any, field: Field) -> None:
    value = field.data if isinstance(field.data, str) else ""
    if any((ord(ch) < 32 or ord(ch) == 127) and ch not in "\r\n" for ch in value):
        raise ValidationError("Remove the invisible control characters from this field.")


def _days_field(label: str, description: str) -> StringField:
    return StringField(
        label,
        description=description,
        filters=[strip],
        validators=[required("a number of working days"), working_days],
        render_kw={"inputmode": "numeric"},
    )


class RecipientForm(FlaskForm):
    """A collective's own recipient."""

    name = StringField(
        "Name",
        description="For example: Leeds City Council, or the name of your MP.",
        filters=[strip],
        validators=[required("a name"), max_length(200, "The name"), no_control_characters],
    )
    kind = SelectField(
        "Kind of recipient",
        choices=[SelectChoice(k.value, k.label) for k in COLLECTIVE_KINDS],
        validate_choice=True,
    )
    short_name = StringField(
        "Short name (optional)",
        description="An abbreviation people know it by, for example: Ofcom.",
        filters=[strip],
        validators=[max_length(60, "The short name"), no_control_characters],
    )
    postal_address = TextAreaField(
        "Postal address (optional)",
        filters=[strip],
        validators=[
            max_length(1000, "The postal address"),
            no_control_characters_but_line_breaks,
        ],
    )
    correspondence_email = StringField(
        "Email address for letters (optional)",
        description="Where the letter is sent by email. Use an address they publish.",
        filters=[strip],
        validators=[max_length(254, "The email address"), no_control_characters],
        render_kw={"autocomplete": "off", "inputmode": "email", "spellcheck": "false"},
    )
    email_domains = StringField(
        "Their email domains (optional)",
        description="Separate them with commas, for example: leeds.gov.uk. Replies from "
        "these domains are recognised as theirs.",
        filters=[strip],
        validators=[max_length(1000, "The email domains"), no_control_characters],
        render_kw={"spellcheck": "false"},
    )
    website = StringField(
        "Website (optional)",
        description="The full address, starting with https://",
        filters=[strip],
        validators=[max_length(300, "The website"), no_control_characters],
        render_kw={"inputmode": "url", "spellcheck": "false"},
    )
    remit_keywords = TextAreaField(
        "Topics they deal with (optional)",
        description="Separate them with commas, for example: bin collections, libraries. "
        "Chorus uses them to suggest who to write to.",
        filters=[strip],
        validators=[max_length(2500, "The topics"), no_control_characters_but_line_breaks],
    )
    nation = SelectField(
        "Whose bank holidays apply",
        description="Deadlines are counted in working days in this nation.",
        choices=NATION_CHOICES,
        validate_choice=True,
    )
    ack_target_days = _days_field(
        "Working days to acknowledge", "How soon they should confirm they received it."
    )
    reply_target_days = _days_field(
        "Working days to reply", "Government departments aim to reply within 20."
    )

    def service_values(self) -> dict[str, Any]:
        """The form's data in the shape the services take."""
        values: dict[str, Any] = {}
        for name in (
            "kind",
            "name",
            "short_name",
            "postal_address",
            "website",
            "nation",
            "correspondence_email",
            "ack_target_days",
            "reply_target_days",
        ):
            values[name] = getattr(self, name).data or ""
        values["remit_keywords"] = split_list((self.remit_keywords.data or "").replace("\n", ","))
        values["email_domains"] = split_list(self.email_domains.data)
        escalation = getattr(self, "escalation_email", None)
        if escalation is not None:
            values["escalation_email"] = escalation.data or ""
        return values

    def fill_from(self, recipient: Any) -> None:
        """Show a stored recipient in the form (lists as comma-separated text)."""
        for name in (
            "kind",
            "name",
            "short_name",
            "postal_address",
            "website",
            "nation",
            "correspondence_email",
        ):
            getattr(self, name).data = getattr(recipient, name)
        self.ack_target_days.data = str(recipient.ack_target_days)
        self.reply_target_days.data = str(recipient.reply_target_days)
        self.remit_keywords.data = join_list(recipient.remit_keywords)
        self.email_domains.data = join_list(recipient.email_domains)
        escalation = getattr(self, "escalation_email", None)
        if escalation is not None:
            escalation.data = recipient.escalation_email


class DirectoryEntryForm(RecipientForm):
    """The platform operator's form for a directory entry: every field but the key."""

    kind = SelectField(
        "Kind",
        choices=[SelectChoice(k.value, k.label) for k in DIRECTORY_KINDS],
        validate_choice=True,
    )
    name = StringField(
        "Name",
        filters=[strip],
        validators=[required("a name"), max_length(200, "The name"), no_control_characters],
    )
    short_name = StringField(
        "Short name (optional)",
        description="For example: DWP.",
        filters=[strip],
        validators=[max_length(60, "The short name"), no_control_characters],
    )
    correspondence_email = StringField(
        "Correspondence email (optional)",
        description="Only an address the department publishes, at one of its email "
        "domains. Leave it empty when unsure: delivery then asks the organiser.",
        filters=[strip],
        validators=[max_length(254, "The email address"), no_control_characters],
        render_kw={"autocomplete": "off", "inputmode": "email", "spellcheck": "false"},
    )
    escalation_email = StringField(
        "Escalation email (optional)",
        description="Where chasers go when a reply is overdue, if the department "
        "publishes one. Also at one of its email domains.",
        filters=[strip],
        validators=[max_length(254, "The email address"), no_control_characters],
        render_kw={"autocomplete": "off", "inputmode": "email", "spellcheck": "false"},
    )
    email_domains = StringField(
        "Email domains (optional)",
        description="The department's official domains, separated by commas, for "
        "example: dwp.gov.uk",
        filters=[strip],
        validators=[max_length(1000, "The email domains"), no_control_characters],
        render_kw={"spellcheck": "false"},
    )
    remit_keywords = TextAreaField(
        "Remit keywords",
        description="Lower-case topics, separated by commas. They drive the suggestions "
        "organisers see.",
        filters=[strip],
        validators=[max_length(2500, "The keywords"), no_control_characters_but_line_breaks],
    )
