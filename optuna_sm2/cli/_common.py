"""Pieces shared by the subcommands."""

from __future__ import annotations


class CLIError(Exception):
    """A problem with the user's input, printed as one line without a traceback."""
