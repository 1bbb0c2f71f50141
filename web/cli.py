"""`flask --app web.app:create_app ...` commands."""

from __future__ import annotations

import click
from flask import Flask


def register(app: Flask) -> None:
    from web.recipients.cli import recipients_cli

    app.cli.add_command(recipients_cli)

    @app.cli.command("seed-demo")
    def seed_demo_command() -> None:
        """Create the Demo Collective and its owner (once)."""
        from web.demo import seed_demo

        email, password, created = seed_demo(app)
        click.echo(f"{'Created' if created else 'Found'} demo owner {email} / {password}")
