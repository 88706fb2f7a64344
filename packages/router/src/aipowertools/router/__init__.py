"""aipowertools.router: route LLM calls by cost, latency, quality and privacy.

``LLMRouter`` is the framework-free front door; ``aipowertools.router.langchain`` has
``RouterChatModel`` and ``aipowertools.router.llama_index`` has ``RouterLLM``.
"""

from importlib.metadata import version as _version

from aipowertools.router._complexity import (
    ComplexityClassifier,
    downgrade_factor,
    heuristic_complexity,
    quality_floor,
)
from aipowertools.router._deployment import Deployment, quality_prior, resolve
from aipowertools.router._direct import OpenAICompatibleTransport
from aipowertools.router._engine import Candidate, Decision, DecisionEngine, RouteRequest
from aipowertools.router._health import DeploymentState, HealthPolicy
from aipowertools.router._local import LocalModelManager
from aipowertools.router._result import (
    Attempt,
    NoDeploymentError,
    NoDeploymentWithinBudgetError,
    RouteResult,
)
from aipowertools.router._router import PROVIDER_MODELS, LLMRouter
from aipowertools.router._strategies import (
    STRATEGY_NAMES,
    CostOptimal,
    Fallback,
    LatencyOptimal,
    LeastBusy,
    ParallelBest,
    QualityFirst,
    Race,
    Strategy,
    Weighted,
    get_strategy,
)
from aipowertools.router._stream import RouteStream
from aipowertools.router._transport import LiteLLMTransport, Transport
from aipowertools.router._types import Chunk, Completion, ToolCall, ToolCallChunk

__version__ = _version("aipowertools-router")

__all__ = [
    "PROVIDER_MODELS",
    "STRATEGY_NAMES",
    "Attempt",
    "Candidate",
    "Chunk",
    "Completion",
    "ComplexityClassifier",
    "CostOptimal",
    "Decision",
    "DecisionEngine",
    "Deployment",
    "DeploymentState",
    "Fallback",
    "HealthPolicy",
    "LLMRouter",
    "LatencyOptimal",
    "LeastBusy",
    "LiteLLMTransport",
    "LocalModelManager",
    "NoDeploymentError",
    "NoDeploymentWithinBudgetError",
    "OpenAICompatibleTransport",
    "ParallelBest",
    "QualityFirst",
    "Race",
    "RouteRequest",
    "RouteResult",
    "RouteStream",
    "Strategy",
    "ToolCall",
    "ToolCallChunk",
    "Transport",
    "Weighted",
    "__version__",
    "downgrade_factor",
    "get_strategy",
    "heuristic_complexity",
    "quality_floor",
    "quality_prior",
    "resolve",
]
