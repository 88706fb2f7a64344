"""The ``aipowertools`` command line."""

from aipowertools.cli._app import app, main

__all__ = ["app", "main"]
