"""aipowertools.console: the operator's views over the stores the library writes.

:func:`generate_report` writes one self-contained HTML file (charts drawn as inline SVG) or a
PDF of the same content; :func:`serve_dashboard` serves a live local dashboard (needs the
``console`` extra: ``pip install 'aipowertools[console]'``). Both read the ledger, the log store
and the shared circuit state through :class:`Stores`.

Example:
    >>> from aipowertools.console import Stores, generate_report
    >>> path = generate_report("html", "/tmp/report.html", stores=Stores.resolve("memory://"))
"""

from aipowertools.console._dashboard import create_app, serve_dashboard
from aipowertools.console._report import generate_report, report_data
from aipowertools.console._stores import Stores

__all__ = ["Stores", "create_app", "generate_report", "report_data", "serve_dashboard"]
