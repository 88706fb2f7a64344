"""``python -m aipowertools.cli``: the ``aipowertools`` command."""

from aipowertools.cli._app import main

main()
