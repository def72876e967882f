"""What the `assistant` sub-commands share: settings loaded once, errors printed the same way."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

from assistant.core.errors import ConfigurationError
from assistant.core.settings import Settings, load_settings

err_console = Console(stderr=True)


def log_format(settings: Settings) -> str:
    """The configured log format; ``auto`` is JSON in production and console otherwise."""
    if settings.log.format != "auto":
        return settings.log.format
    return "json" if settings.is_production else "console"


def settings_or_exit() -> Settings:
    """Load the settings and set up logging; on a configuration error print every problem
    and exit 2.

    Log lines go through the redacting pipeline to stderr, so that stdout carries only
    what a command prints (a table, a token, a JSON report a script parses).
    """
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        err_console.print(f"[red]configuration error[/red]: {exc.detail}")
        for problem in exc.problems:
            err_console.print(f"  - {problem}")
        raise typer.Exit(2) from None
    from assistant.core.logging import configure_logging

    configure_logging(settings.log.level, log_format(settings))
    # Alembic announces its plugins at INFO when first imported; that is not news here.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return settings
