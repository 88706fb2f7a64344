"""Entry point of ``python -m aipowertools.testing``."""

from aipowertools.testing._cli import main

raise SystemExit(main())
