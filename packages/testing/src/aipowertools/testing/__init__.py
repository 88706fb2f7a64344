"""A provider simulator for tests: a real HTTP server speaking the LLM providers' wire formats.

Start a :class:`Simulator` with some :class:`SimModel`\\ s, point litellm, the OpenAI or
Anthropic SDK or a framework at :meth:`Simulator.base_url`, and inject faults with
:meth:`Simulator.fail_next` or per-model fault rates. The pytest plugin gives a ready
simulator as the ``llm_simulator`` fixture.
"""

from importlib.metadata import version as _version

from aipowertools.testing._config import ECHO, Fault, FaultKind, Reply, SimModel, ToolCall
from aipowertools.testing._request import SimRequest
from aipowertools.testing._server import Simulator, SimulatorStopError
from aipowertools.testing._stats import ModelStats, RequestRecord, SimStats

__version__ = _version("aipowertools-testing")

__all__ = [
    "ECHO",
    "Fault",
    "FaultKind",
    "ModelStats",
    "Reply",
    "RequestRecord",
    "SimModel",
    "SimRequest",
    "SimStats",
    "Simulator",
    "SimulatorStopError",
    "ToolCall",
    "__version__",
]
