from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired

from web.collectives.models import Role
from web.forms import email_address, max_length, no_control_characters, required, strip

ROLE_CHOICES = [SelectChoice(r.value, r.label) for r in Role]


class CollectiveForm(FlaskForm):
    name = StringField(
        "Name of the collective",
        filters=[strip],
        validators=[required("a name"), max_length(120, "The name"), no_control_characters],
    )
    slug = StringField(
        "Web address",
        description="Lower-case letters, numbers and hyphens, for example: disability-voices",
        filters=[strip],
        validators=[required("a web address"), max_length(63, "The web address")],
    )
    contact_address = TextAreaField(
        "Contact address",
        description="Printed as the sender on your letters. A postal address or an email "
        "address that replies can reach.",
        filters=[strip],
        validators=[required("a contact address"), max_length(1000, "The contact address")],
    )


SECOND_APPROVER_CHOICES = [
    SelectChoice("auto", "When the collective has two or more organisers (recommended)"),
    SelectChoice("on", "Always"),
    SelectChoice("off", "Never"),
]


class CollectiveSettingsForm(FlaskForm):
    name = CollectiveForm.name
    contact_address = CollectiveForm.contact_address
    second_approver = SelectField(
        "Ask a second organiser to approve letters before publication",
        choices=SECOND_APPROVER_CHOICES,
        default="auto",
        validate_choice=True,
        validators=[InputRequired(message="Choose when a second organiser must approve letters.")],
    )


class InviteForm(FlaskForm):
    email = EmailField(
        "Email address",
        filters=[strip],
        validators=[
            required("their email address"),
            max_length(254, "Email address"),
            email_address(),
        ],
    )
    role = SelectField(
        "Role",
        choices=ROLE_CHOICES,
        default=Role.ORGANISER.value,
        validate_choice=True,
    )


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES, validate_choice=True)
