"""Accounts: sign-up, email verification, log in, password reset.

Services flush and never commit; emails go through the outbox and leave after commit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web import tokens
from web.accounts.models import User, UserToken
from web.db import utcnow
from web.emails import send_templated_email
from web.settings import Settings

VERIFY = "verify_email"
RESET = "reset_password"
MIN_PASSWORD = 10
MAX_PASSWORD = 256


class AccountError(ValueError):
    """A rule was broken; the message is safe to show to the person."""


def password_hasher(settings: Settings) -> PasswordHasher:
    # argon2id is PasswordHasher's default type.
    return PasswordHasher(
        time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


def find_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"Use at least {MIN_PASSWORD} characters for your password.")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"Use at most {MAX_PASSWORD} characters for your password.")


def _issue_token(
    session: Session, settings: Settings, user: User, purpose: str, ttl: timedelta
) -> str:
    secret, digest = tokens.new_secret()
    row = UserToken(user_id=user.id, purpose=purpose, secret_hash=digest, expires_at=utcnow() + ttl)
    session.add(row)
    session.flush()
    return tokens.compose(row.id, secret)


def _redeem_token(session: Session, raw: str | None, purpose: str, *, consume: bool) -> User:
    parsed = tokens.parse(raw)
    invalid = AccountError(
        "This link is not valid. It may have expired or been used already; "
        "you can ask for a new one."
    )
    if parsed is None:
        raise invalid
    row = session.get(UserToken, parsed[0], with_for_update=consume)
    if (
        row is None
        or row.purpose != purpose
        or not tokens.matches(parsed[1], row.secret_hash)
        or row.used_at is not None
        or row.expires_at <= utcnow()
    ):
        raise invalid
    if consume:
        row.used_at = utcnow()
    user = session.get(User, row.user_id)
    if user is None:
        raise invalid
    return user


@dataclass
class SignupResult:
    user: User | None
    token: str | None


def sign_up(
    session: Session, settings: Settings, *, email: str, display_name: str, password: str
) -> SignupResult:
    """Create an unverified account and email a verification link.

    Never reveals whether the address is already registered: an existing account's
    owner gets an email saying someone tried to sign up, with a link to reset.
    Sends one email (after commit). Returns the new user (None if it existed).
    """
    check_password_rules(password)
    existing = find_user_by_email(session, email)
    if existing is not None:
        send_templated_email(
            session,
            settings,
            to=existing.email,
            template="signup_existing",
            subject="Someone tried to sign up to Chorus with your email",
            context={"user": existing},
        )
        return SignupResult(user=None, token=None)
    user = User(
        email=normalise_email(email),
        display_name=display_name.strip(),
        password_hash=password_hasher(settings).hash(password),
    )
    session.add(user)
    session.flush()
    token = send_verification(session, settings, user)
    return SignupResult(user=user, token=token)


def send_verification(session: Session, settings: Settings, user: User) -> str:
    token = _issue_token(session, settings, user, VERIFY, timedelta(hours=settings.token_ttl_hours))
    send_templated_email(
        session,
        settings,
        to=user.email,
        template="verify_email",
        subject="Confirm your email address for Chorus",
        context={
            "user": user,
            "link": f"{settings.base_url}/verify/{token}",
            "hours": settings.token_ttl_hours,
        },
    )
    return token


def check_verification_token(session: Session, raw: str | None) -> User:
    return _redeem_token(session, raw, VERIFY, consume=False)


def verify_email(session: Session, raw: str | None) -> User:
    """Mark the address verified. Single-use token; idempotent for the user."""
    user = _redeem_token(session, raw, VERIFY, consume=True)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    session.flush()
    return user


def authenticate(session: Session, settings: Settings, email: str, password: str) -> User:
    """Return the user for a correct email and password, or raise AccountError.

    Takes the same time whether or not the account exists (a dummy hash is verified).
    """
    hasher = password_hasher(settings)
    user = find_user_by_email(session, email)
    failure = AccountError("That email and password do not match an account.")
    if user is None:
        with contextlib.suppress(VerificationError, InvalidHashError):
            hasher.verify(_dummy_hash(settings), password)
        raise failure
    try:
        hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise failure from None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    session.flush()
    return user


_DUMMY: dict[tuple[int, int], str] = {}


def _dummy_hash(settings: Settings) -> str:
    key = (settings.argon2_time_cost, settings.argon2_memory_kib)
    if key not in _DUMMY:
        _DUMMY[key] = password_hasher(settings).hash("not a real password, never used")
    return _DUMMY[key]


def request_password_reset(session: Session, settings: Settings, email: str) -> str | None:
    """Email a reset link if the account exists. Says nothing either way to the caller's
    user (the view shows the same message). Returns the token for tests and tools."""
    user = find_user_by_email(session, email)
    if user is None:
        return None
    token = _issue_token(session, settings, user, RESET, timedelta(hours=2))
    send_templated_email(
        session,
        settings,
        to=user.email,
        template="reset_password",
        subject="Reset your Chorus password",
        context={"user": user, "link": f"{settings.base_url}/reset/{token}"},
    )
    return token


def check_reset_token(session: Session, raw: str | None) -> User:
    return _redeem_token(session, raw, RESET, consume=False)


def reset_password(session: Session, settings: Settings, raw: str | None, password: str) -> User:
    """Set a new password with a single-use token; ends every other session."""
    check_password_rules(password)
    user = _redeem_token(session, raw, RESET, consume=True)
    user.password_hash = password_hasher(settings).hash(password)
    user.session_version += 1
    if user.email_verified_at is None:
        # Following a link sent to the address proves it as well as verification does.
        user.email_verified_at = utcnow()
    session.flush()
    return user


def purge_expired_tokens(session: Session, now: datetime | None = None) -> int:
    """Delete tokens that expired over a day ago. Idempotent."""
    cutoff = (now or utcnow()) - timedelta(days=1)
    rows = session.scalars(select(UserToken).where(UserToken.expires_at < cutoff)).all()
    for row in rows:
        session.delete(row)
    session.flush()
    return len(rows)
