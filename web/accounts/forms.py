from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import Length

from web.accounts.services import MAX_PASSWORD, MIN_PASSWORD
from web.forms import email_address, max_length, no_control_characters, required, strip


def password_length() -> Length:
    return Length(
        min=MIN_PASSWORD,
        max=MAX_PASSWORD,
        message=f"Use between {MIN_PASSWORD} and {MAX_PASSWORD} characters for your password.",
    )


class SignupForm(FlaskForm):
    display_name = StringField(
        "Your name",
        filters=[strip],
        validators=[required("your name"), max_length(120, "Your name"), no_control_characters],
    )
    email = EmailField(
        "Email address",
        filters=[strip],
        validators=[
            required("your email address"),
            max_length(254, "Email address"),
            email_address(),
        ],
    )
    password = PasswordField("Password", validators=[required("a password"), password_length()])


class LoginForm(FlaskForm):
    email = EmailField(
        "Email address",
        filters=[strip],
        validators=[required("your email address"), max_length(254, "Email address")],
    )
    password = PasswordField(
        "Password", validators=[required("your password"), max_length(MAX_PASSWORD, "Password")]
    )


class ResetRequestForm(FlaskForm):
    email = EmailField(
        "Email address",
        filters=[strip],
        validators=[
            required("your email address"),
            max_length(254, "Email address"),
            email_address(),
        ],
    )


class ResetForm(FlaskForm):
    password = PasswordField(
        "New password", validators=[required("a new password"), password_length()]
    )
