from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, Form, HiddenField, StringField, TextAreaField

from web.forms import email_address, max_length, no_control_characters, required, strip


class SignFields(Form):
    """The signing form's fields and validators, without CSRF or a request: the Flask
    view uses them through `SignForm`, the WSGI fast path (web/signatures/fastpath.py)
    directly, so both judge a submission by the same rules."""

    name = StringField(
        "Your name",
        filters=[strip],
        validators=[required("your name"), max_length(120, "Your name"), no_control_characters],
    )
    email = EmailField(
        "Email address",
        description="We send you one email to confirm your signature.",
        filters=[strip],
        validators=[
            required("your email address"),
            max_length(254, "Your email address"),
            email_address(),
        ],
    )
    postcode = StringField(
        "Postcode",
        description="So the department can see where signatures come from. Only the area "
        "(for example SW1A) is shown.",
        filters=[strip],
        validators=[max_length(10, "Your postcode"), no_control_characters],
    )
    statement = TextAreaField(
        "In your own words (optional)",
        description="Why this matters to you. Up to 2,000 characters. Shown on this page "
        "only if you tick “Show my words publicly”, after a check by the organisers.",
        filters=[strip],
        validators=[max_length(2000, "Your own words")],
    )
    show_name = BooleanField("Show my name on the campaign page")
    show_statement = BooleanField("Show my words publicly")
    wants_updates = BooleanField("Send me updates about this campaign")
    # Anti-abuse without barriers: a field people never see, and when the form was shown.
    website = StringField("Leave this empty", filters=[strip])
    started = HiddenField()


class SignForm(FlaskForm, SignFields):
    """`SignFields` with Flask-WTF's CSRF token, for the page and the view."""
