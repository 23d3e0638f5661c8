"""The CLI's one error of its own: bad input from the user."""

from __future__ import annotations

import click

__all__ = ["EXIT_USAGE", "BadInput"]

EXIT_USAGE = 2


class BadInput(click.ClickException):
    """Bad input from the user: ``Error: <message>`` on stderr, exit code 2, no traceback."""

    exit_code = EXIT_USAGE
