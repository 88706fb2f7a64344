"""aipowertools.core: model catalog, tokens and cost, error taxonomy, store URLs, cost tracking.

Importing this package is cheap: litellm is loaded on first use through :func:`litellm`.
"""

from importlib.metadata import version as _version

from aipowertools.core._budget import BudgetAlert, BudgetLimit, Reservation
from aipowertools.core._catalog import ModelCatalog, ModelInfo, PriceTier, default_catalog
from aipowertools.core._cost import (
    cost,
    estimate_cost,
    prompt_upper_bound,
    worst_case_cost,
    worst_case_rates,
)
from aipowertools.core._forecast import MonthlyForecast
from aipowertools.core._ledger import LedgerRecord
from aipowertools.core._litellm import litellm
from aipowertools.core._monitor import ProviderMonitor, ProviderStats
from aipowertools.core._reports import BreakdownRow, DailyReport, TrendPoint
from aipowertools.core._span import CallSpan, current_call
from aipowertools.core._tokens import TokenCount, count_tokens
from aipowertools.core._tracker import CostTracker
from aipowertools.core._usage import Usage

__version__ = _version("aipowertools-core")

__all__ = [
    "BreakdownRow",
    "BudgetAlert",
    "BudgetLimit",
    "CallSpan",
    "CostTracker",
    "DailyReport",
    "LedgerRecord",
    "ModelCatalog",
    "ModelInfo",
    "MonthlyForecast",
    "PriceTier",
    "ProviderMonitor",
    "ProviderStats",
    "Reservation",
    "TokenCount",
    "TrendPoint",
    "Usage",
    "__version__",
    "cost",
    "count_tokens",
    "current_call",
    "default_catalog",
    "estimate_cost",
    "litellm",
    "prompt_upper_bound",
    "worst_case_cost",
    "worst_case_rates",
]
