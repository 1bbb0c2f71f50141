"""`flask --app web.app:create_app recipients ...`: load the directory of departments."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from web.recipients import services

recipients_cli = AppGroup("recipients", help="The directory of government departments.")


@recipients_cli.command("import")
@click.argument(
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=services.DIRECTORY_FILE,
)
def import_command(file: Path) -> None:
    """Create or update the directory from FILE (by default the shipped
    web/data/uk_departments.json). Idempotent; all or nothing."""
    try:
        entries = services.read_directory_file(file)
    except services.RecipientError as exc:
        raise click.ClickException(f"Nothing was imported. {exc}") from None
    with current_app.extensions["chorus.db"].session_scope() as session:
        report = services.import_directory(session, entries)
    click.echo(f"Directory imported from {file}: {report.summary()}.")
