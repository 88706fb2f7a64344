"""LangChain integration: ``RouterChatModel`` and LangChain chat models as deployments.

``RouterChatModel`` is a ``BaseChatModel`` that sends every call through an
:class:`~aipowertools.router.LLMRouter`: invoke / ainvoke / batch / stream / astream,
``bind_tools``, ``with_structured_output``, ``usage_metadata`` (streaming too) and
``response_metadata`` with the model, provider, cost, latency and routing decision.

A ``RouterChatModel`` built from configuration (``deployments`` / ``local_models`` /
``cloud_providers`` as litellm model strings, dicts of :class:`Deployment` fields or plain
``Deployment`` objects, a ``catalog`` dict, a strategy name...) serializes the LangChain way
(``langchain_core.load.dumpd`` / ``dumps`` / ``load`` / ``loads``), with ``api_key`` and every
deployment key kept out of the output as secrets. One built around live objects (``router=``,
``cost_tracker=``, a ``Strategy`` instance, a transport) dumps to LangChain's
``not_implemented`` marker, which ``load`` refuses.

``LangChainTransport`` goes the other way: any ``BaseChatModel`` instance becomes a
deployment with :func:`chat_model_deployment`.

Example:
    >>> from aipowertools.router import LLMRouter
    >>> from aipowertools.router.langchain import RouterChatModel
    >>> llm = RouterChatModel(router=LLMRouter(cloud_providers=["openai"]))  # doctest: +SKIP
    >>> (prompt | llm).invoke({"question": "..."})  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain.agents.middleware import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
)
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.load.serializable import (
    SerializedConstructor,
    SerializedNotImplemented,
    SerializedSecret,
    to_json_not_implemented,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    convert_to_messages,
    convert_to_openai_messages,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from aipowertools.core.errors import ConfigurationError
from aipowertools.router._deployment import Deployment
from aipowertools.router._result import NoDeploymentError, RouteResult
from aipowertools.router._router import LLMRouter
from aipowertools.router._types import Chunk, Completion, ToolCall, ToolCallChunk

__all__ = ["LangChainTransport", "RouterChatModel", "RouterMiddleware", "chat_model_deployment"]

#: Environment variable listing deployments (litellm model strings) when none are given.
MODELS_ENV = "AIPOWERTOOLS_ROUTER_MODELS"

_ROUTE_FIELDS = (
    "strategy",
    "complexity_score",
    "required_quality",
    "max_cost",
    "max_latency_ms",
    "confidential",
    "allow_trim",
)


# Standard content blocks that ride in ``tool_calls`` (or nowhere) on the OpenAI wire.
_NOT_CONTENT = frozenset({"tool_call", "tool_call_chunk", "invalid_tool_call", "reasoning"})


def _to_openai(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    converted: list[dict[str, Any]] = convert_to_openai_messages(list(messages))
    for message, out in zip(messages, converted, strict=True):
        content = out.get("content")
        if isinstance(content, list):
            parts = [
                p for p in content if not (isinstance(p, dict) and p.get("type") in _NOT_CONTENT)
            ]
            if all(isinstance(p, dict) and p.get("type") == "text" for p in parts):
                out["content"] = "".join(str(p.get("text", "")) for p in parts)
            else:
                out["content"] = parts
        if message.additional_kwargs.get("pinned"):
            out["pinned"] = True
    return converted


def _tool_choice(choice: Any) -> Any:
    if choice in (None, "auto", "none", "required"):
        return choice
    if choice in ("any", True):
        return "required"
    if isinstance(choice, str):
        return {"type": "function", "function": {"name": choice}}
    return choice


def _usage(input_tokens: int, output_tokens: int) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )


def _metadata(result: RouteResult) -> dict[str, Any]:
    meta = {
        "model_name": result.catalog_model or result.model,
        "model_provider": "aipowertools-router",
        "provider": result.provider,
        "deployment": result.deployment,
        "cost_usd": result.cost,
        "latency_ms": result.latency_ms,
        "request_id": result.request_id,
        "finish_reason": result.finish_reason,
        "attempts": len(result.attempts),
        "decision": result.decision.as_dict(),
    }
    if result.cache is not None:  # hit | semantic | miss, with a response cache
        meta["cache"] = result.cache
    return meta


def _message(result: RouteResult) -> AIMessage:
    tool_calls: list[dict[str, Any]] = []
    invalid: list[dict[str, Any]] = []
    for call in result.tool_calls:
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            invalid.append(
                {"name": call.name, "args": call.arguments, "id": call.id, "error": str(exc),
                 "type": "invalid_tool_call"}
            )  # fmt: skip
            continue
        if not isinstance(args, dict):
            args = {"value": args}
        tool_calls.append({"name": call.name, "args": args, "id": call.id, "type": "tool_call"})
    return AIMessage(
        content=result.content,
        tool_calls=tool_calls,
        invalid_tool_calls=invalid,
        usage_metadata=_usage(result.input_tokens, result.output_tokens),
        response_metadata=_metadata(result),
        id=f"run-{result.request_id}",
    )


def _chunk_message(chunk: Chunk) -> AIMessageChunk:
    return AIMessageChunk(
        content=chunk.content,
        tool_call_chunks=[
            {"name": t.name, "args": t.arguments, "id": t.id, "index": t.index,
             "type": "tool_call_chunk"}
            for t in chunk.tool_call_chunks
        ],
    )  # fmt: skip


#: Secret id of ``RouterChatModel.api_key`` in serialized models.
API_KEY_SECRET = "AIPOWERTOOLS_ROUTER_API_KEY"

_DEPLOYMENT_FIELDS = {f.name: f for f in dataclasses.fields(Deployment)}
_CONFIG_LISTS = ("deployments", "local_models", "cloud_providers")
_CONFIG_KEYS = (*_CONFIG_LISTS, "catalog", "deployment_api_keys")
_Spec = str | Deployment


def _plain(value: Any) -> bool:
    """Whether ``value`` is JSON data (what ``dumpd`` / ``load`` carry over unchanged)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _as_spec(entry: Any, where: str) -> _Spec:
    """A config entry as the router takes it: a model string, or a Deployment (from a dict)."""
    if isinstance(entry, (str, Deployment)):
        return entry
    if isinstance(entry, Mapping):
        unknown = sorted(str(k) for k in entry if k not in _DEPLOYMENT_FIELDS)
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown Deployment field(s) {unknown}; fields are "
                f"{', '.join(_DEPLOYMENT_FIELDS)}"
            )
        if "model" not in entry:
            raise ConfigurationError(f"{where}: a deployment dict needs 'model'")
        return Deployment(**{str(k): v for k, v in entry.items()})
    raise ConfigurationError(
        f"{where}: entries are litellm model strings, dicts of Deployment fields or "
        f"Deployment objects, got {type(entry).__name__}"
    )


def _deployment_dict(deployment: Deployment) -> dict[str, Any]:
    """The deployment's fields that differ from their defaults, as plain data.

    ``api_key`` and ``transport`` are left out (a key is a secret; a transport is code).
    """
    out: dict[str, Any] = {}
    for name, spec in _DEPLOYMENT_FIELDS.items():
        if name in ("api_key", "transport"):
            continue
        value = getattr(deployment, name)
        if spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        else:
            default = spec.default
        if name != "model" and value == default:
            continue
        if name == "tags":
            value = sorted(value)
        elif name == "params":
            value = dict(value)
        out[name] = value
    return out


def _secret_id(name: str, taken: set[str]) -> str:
    """``AIPOWERTOOLS_ROUTER_API_KEY_<NAME>``: the secret id of a deployment's key."""
    stem = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper() or "DEPLOYMENT"
    candidate = base = f"{API_KEY_SECRET}_{stem}"
    n = 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


class RouterChatModel(BaseChatModel):
    """A LangChain chat model that routes each call through an :class:`LLMRouter`.

    Give it a ``router``, or the router's arguments (``deployments``, ``local_models``,
    ``cloud_providers``, ``budget_usd_per_month``, ``cost_tracker``, ``catalog``) and one is
    built; with none of them, ``AIPOWERTOOLS_ROUTER_MODELS`` (comma-separated litellm model
    strings). Deployments are litellm model strings, :class:`Deployment` objects or dicts of
    ``Deployment`` fields (``{"model": "openai/gpt-4o", "name": "big", "quality": 0.9}``).
    Routing options (``strategy``, ``complexity_score``, ``required_quality``, ``max_cost``,
    ``max_latency_ms``, ``confidential``, ``allow_trim``) apply to every call and can be
    overridden per call with ``.bind(...)`` or ``invoke(..., required_quality=0.9)``;
    ``invoke(..., model="openai/gpt-4o")`` restricts one call to the deployments of that
    name or model.

    A model built from configuration serializes with ``langchain_core.load.dumpd`` /
    ``dumps``: ``api_key`` (secret id ``AIPOWERTOOLS_ROUTER_API_KEY``) and each deployment's
    key (``AIPOWERTOOLS_ROUTER_API_KEY_<NAME>``, in ``deployment_api_keys``) are written as
    secret references, never as values. Load it with ``loads(text,
    allowed_objects=[RouterChatModel], valid_namespaces=["aipowertools"], secrets_map={...})``
    (or ``secrets_from_env=True``). A model holding live objects (``router=``,
    ``cost_tracker=``, a ``Strategy`` instance, a non-dict ``catalog``, a deployment with a
    ``transport`` or non-JSON ``params``) dumps to LangChain's ``not_implemented`` marker,
    whose ``repr`` says why; ``load`` refuses it.

    Example:
        >>> llm = RouterChatModel(local_models=["llama3"], cloud_providers=["openai"])
        >>> msg = llm.invoke("Explain recursion in one line")
        >>> msg.response_metadata["deployment"], msg.response_metadata["cost_usd"]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    router: Any = Field(default=None, exclude=True)
    deployments: list[Any] = Field(default_factory=list, exclude=True)
    local_models: list[Any] = Field(default_factory=list, exclude=True)
    cloud_providers: list[Any] = Field(default_factory=list, exclude=True)
    deployment_api_keys: dict[str, SecretStr | None] = Field(default_factory=dict, exclude=True)
    """API keys by deployment name, for deployments given as dicts / ``Deployment`` objects
    (or ``deployments=`` strings) without a key of their own; serialized models keep their
    deployment keys here, as secrets."""
    budget_usd_per_month: float | None = None
    cost_tracker: Any = Field(default=None, exclude=True)
    catalog: Any = Field(default=None, exclude=True)
    model_name: str = Field(default="aipowertools-router", alias="model")
    strategy: Any = None
    complexity_score: float | None = None
    required_quality: float | None = None
    max_cost: float | None = None
    max_latency_ms: float | None = None
    confidential: bool | None = None
    allow_trim: bool | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    timeout: float | None = None
    max_retries: int | None = None
    api_key: SecretStr | None = None
    streaming: bool = False

    # What the router was built from (deployment specs with their keys applied); None when
    # the model was given a live router.
    _specs: tuple[list[_Spec], list[_Spec], list[_Spec]] | None = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._build_router()

    def _build_router(self) -> None:
        if self.router is None:
            if not (self.deployments or self.local_models or self.cloud_providers):
                env = os.environ.get(MODELS_ENV, "")
                self.deployments = [m.strip() for m in env.split(",") if m.strip()]
            if not (self.deployments or self.local_models or self.cloud_providers):
                raise ConfigurationError(
                    "RouterChatModel needs router= (an LLMRouter), deployments= / "
                    f"local_models= / cloud_providers=, or {MODELS_ENV} (comma-separated "
                    "litellm model strings) to build one"
                )
            deployments, local_models, cloud_providers = specs = self._config_specs()
            self.router = LLMRouter(
                deployments,
                local_models=local_models,
                cloud_providers=cloud_providers,
                strategy="cost_optimal" if self.strategy is None else self.strategy,
                budget_usd_per_month=self.budget_usd_per_month,
                cost_tracker=self.cost_tracker,
                catalog=self.catalog,
            )
            self._specs = specs
            # Dict entries become Deployment objects, whose repr hides their api_key.
            self.deployments, self.local_models, self.cloud_providers = (list(x) for x in specs)
        elif not isinstance(self.router, LLMRouter):
            raise ConfigurationError(
                f"router= must be an LLMRouter, got {type(self.router).__name__}"
            )
        elif self.deployment_api_keys:
            raise ConfigurationError(
                "deployment_api_keys= applies to deployments the model builds; with router= "
                "give the keys to the router's deployments"
            )

    def _config_specs(self) -> tuple[list[_Spec], list[_Spec], list[_Spec]]:
        """The three deployment lists as the router takes them, ``deployment_api_keys`` applied."""
        keys = self.deployment_api_keys
        used: set[str] = set()

        def with_key(spec: _Spec, keyed_strings: bool) -> _Spec:
            if isinstance(spec, str):
                if not (keyed_strings and spec in keys):
                    return spec
                spec = Deployment(spec)
            if spec.name not in keys:
                return spec
            used.add(spec.name)
            secret = keys[spec.name]
            if secret is None:
                return spec
            if spec.api_key is None:
                return spec.replace(api_key=secret.get_secret_value())
            if spec.api_key != secret.get_secret_value():
                raise ConfigurationError(
                    f"deployment {spec.name!r} has an api_key and deployment_api_keys gives "
                    "it another one"
                )
            return spec

        lists = tuple(
            [with_key(_as_spec(e, field), field == "deployments") for e in getattr(self, field)]
            for field in _CONFIG_LISTS
        )
        unused = sorted(set(keys) - used)
        if unused:
            raise ConfigurationError(
                f"deployment_api_keys names no deployment given as a dict, a Deployment or a "
                f"deployments= string: {unused}"
            )
        return lists[0], lists[1], lists[2]

    # ------------------------------------------------------------------ serialization
    @classmethod
    def is_lc_serializable(cls) -> bool:
        """True: models built from configuration serialize (see the class docstring)."""
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        """``api_key`` and the deployment keys are secrets (references, never values).

        Each entry of ``deployment_api_keys`` is its own secret,
        ``AIPOWERTOOLS_ROUTER_API_KEY_<DEPLOYMENT NAME>``; the entry here only tells ``dumpd``
        that the field holds secret references.
        """
        return {
            "api_key": API_KEY_SECRET,
            "deployment_api_keys": f"{API_KEY_SECRET}_<DEPLOYMENT>",
        }

    def serialization_problem(self) -> str | None:
        """Why this model cannot be serialized faithfully, or None when it can.

        ``dumpd`` gives LangChain's ``not_implemented`` marker (which ``load`` refuses) for
        such a model rather than a configuration that would load into a different one.
        """
        if self._specs is None:
            return (
                "it was given a live router= (an LLMRouter object); build it from "
                "deployments= / local_models= / cloud_providers= to serialize it"
            )
        if self.cost_tracker is not None:
            return "cost_tracker= is a live object (budget_usd_per_month= serializes)"
        if self.strategy is not None and not isinstance(self.strategy, str):
            return "strategy= is a Strategy object; give a strategy name to serialize it"
        if self.catalog is not None and not (
            isinstance(self.catalog, Mapping) and _plain(self.catalog)
        ):
            return (
                f"catalog= is a {type(self.catalog).__name__}; only a dict of plain model "
                "data serializes"
            )
        for spec in (s for specs in self._specs for s in specs):
            if isinstance(spec, Deployment):
                if spec.transport is not None:
                    return f"deployment {spec.name!r} has a transport= object"
                if not _plain(_deployment_dict(spec)):
                    return f"deployment {spec.name!r} has fields that are not plain JSON data"
        return None

    def to_json(self) -> SerializedConstructor | SerializedNotImplemented:
        """The LangChain serialized form (what ``dumpd`` writes); see the class docstring."""
        problem = self.serialization_problem()
        if problem is not None or self._specs is None:
            marker = to_json_not_implemented(self)
            marker["repr"] = f"RouterChatModel is not serializable: {problem}"
            return marker
        serialized = super().to_json()
        if serialized["type"] != "constructor":  # pragma: no cover - is_lc_serializable is True
            return serialized
        config: dict[str, Any] = {}
        keys: dict[str, SerializedSecret] = {}
        taken: set[str] = set()
        for field, specs in zip(_CONFIG_LISTS, self._specs, strict=True):
            entries: list[Any] = []
            for spec in specs:
                if isinstance(spec, str):
                    entries.append(spec)
                    continue
                entries.append(_deployment_dict(spec))
                if spec.api_key is not None:
                    secret_id = _secret_id(spec.name, taken)
                    keys[spec.name] = {"lc": 1, "type": "secret", "id": [secret_id]}
            if entries:
                config[field] = entries
        if self.catalog is not None:
            config["catalog"] = self.catalog
        if keys:
            config["deployment_api_keys"] = keys
        kwargs = {k: v for k, v in serialized["kwargs"].items() if k not in _CONFIG_KEYS}
        return {**serialized, "kwargs": {**config, **kwargs}}

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str:
        # LangChain keys its LLM cache on dumpd(self) for serializable classes. A
        # not_implemented marker carries no configuration, so models that cannot serialize
        # are keyed on their invocation params, as LangChain does for unserializable models.
        if self.serialization_problem() is None:
            return super()._get_llm_string(stop=stop, **kwargs)
        params = {**self._get_invocation_params(stop=stop, **kwargs), **kwargs}
        return str(sorted(params.items()))

    @property
    def deployment_names(self) -> list[str]:
        """Names of the deployments this model routes between."""
        return [d.name for d in self.router.deployments]

    @property
    def _llm_type(self) -> str:
        return "aipowertools-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "deployments": [d.name for d in self.router.deployments],
            "strategy": self.router.strategy.name if self.strategy is None else str(self.strategy),
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="aipowertools",
            ls_model_name=kwargs.get("model", self.model_name),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stop = stop or kwargs.get("stop") or self.stop
        if stop:
            params["ls_stop"] = stop
        return params

    # ------------------------------------------------------------------ call arguments
    def _route_kwargs(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        call: dict[str, Any] = {"messages": _to_openai(messages)}
        for name in _ROUTE_FIELDS:
            value = kwargs.pop(name, getattr(self, name))
            if value is not None:
                call[name] = value
        for name in ("temperature", "max_tokens", "timeout"):
            value = kwargs.pop(name, getattr(self, name))
            if value is not None:
                call[name] = value
        stop = stop or kwargs.pop("stop", None) or self.stop
        if stop:
            call["stop"] = stop
        tools = kwargs.pop("tools", None)
        if tools:
            call["tools"] = tools
            choice = _tool_choice(kwargs.pop("tool_choice", None))
            if choice is not None:
                call["tool_choice"] = choice
        kwargs.pop("ls_structured_output_format", None)
        model = kwargs.pop("model", None)
        if model and model != self.model_name:
            call["deployments"] = self._matching(str(model))
        call.update(kwargs)
        return call

    def _matching(self, model: str) -> list[str]:
        """Deployments a per-call ``model=`` override names (by name or model string)."""
        names = [
            d.name
            for d in self.router.deployments
            if model in (d.name, d.model) or d.model.endswith("/" + model)
        ]
        if not names:
            known = ", ".join(d.name for d in self.router.deployments)
            raise ConfigurationError(
                f"model={model!r} names no deployment of this router; known: {known}"
            )
        return names

    # ------------------------------------------------------------------ generate
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with _run_span(run_manager):
            result = self.router.route_sync(**self._route_kwargs(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=_message(result))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with _run_span(run_manager):
            result = await self.router.route(**self._route_kwargs(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=_message(result))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with _run_span(run_manager):
            stream = self.router.stream(**self._route_kwargs(messages, stop, kwargs))
        from aipowertools.router._sync import iterate_sync

        for chunk in iterate_sync(stream.__aiter__()):
            generation = ChatGenerationChunk(message=_chunk_message(chunk))
            if run_manager is not None and chunk.content:
                run_manager.on_llm_new_token(chunk.content, chunk=generation)
            yield generation
        yield self._final_chunk(stream.result)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        with _run_span(run_manager):
            stream = self.router.stream(**self._route_kwargs(messages, stop, kwargs))
        async for chunk in stream:
            generation = ChatGenerationChunk(message=_chunk_message(chunk))
            if run_manager is not None and chunk.content:
                await run_manager.on_llm_new_token(chunk.content, chunk=generation)
            yield generation
        yield self._final_chunk(stream.result)

    @staticmethod
    def _final_chunk(result: RouteResult | None) -> ChatGenerationChunk:
        assert result is not None  # set when the stream is exhausted
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=_usage(result.input_tokens, result.output_tokens),
                response_metadata=_metadata(result),
                chunk_position="last",
            )
        )

    # ------------------------------------------------------------------ tools
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (any format ``convert_to_openai_tool`` accepts) to the model.

        Only deployments that support tool calling are eligible for calls with tools.
        ``tool_choice`` is ``"auto"``, ``"none"``, ``"any"`` / ``True`` (must call a tool)
        or a tool name.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_choice"] = tool_choice
        return super().bind(tools=formatted, **kwargs)

    # ------------------------------------------------------------------ structured output
    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        function_calling_fallback: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Structured output by tool calling or by the provider's native ``response_format``.

        ``method="function_calling"`` (the default) binds the schema as a forced tool;
        ``"json_schema"`` sends ``response_format={"type": "json_schema", ...}`` and
        ``"json_mode"`` sends ``{"type": "json_object"}`` (the prompt must ask for JSON and
        describe the shape). With a ``response_format`` the router only routes to deployments
        that support structured output (``supports_json``, from the catalog's
        ``supports_response_schema`` unless set on the deployment); when none does, the call
        raises :class:`NoDeploymentError`, or, with ``function_calling_fallback=True``, is
        made again by function calling.

        Args:
            schema: A Pydantic class (parsed into it), a TypedDict, a JSON schema or an
                OpenAI tool schema (parsed into a dict). Optional with ``json_mode`` only.
            method: ``"function_calling"``, ``"json_schema"`` or ``"json_mode"``.
            include_raw: Return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``.
            strict: Ask the provider to follow the schema exactly (``json_schema`` and
                ``function_calling``).
            function_calling_fallback: Fall back to function calling when no deployment
                takes a ``response_format``.
            **kwargs: Not supported (an error names them).

        Returns:
            A runnable that returns the parsed output.
        """
        if kwargs:
            raise ConfigurationError(f"with_structured_output: unsupported arguments {kwargs}")
        if method == "function_calling":
            if schema is None:
                raise ConfigurationError("with_structured_output: method='function_calling' "
                                         "needs a schema")  # fmt: skip
            if strict is not None:
                tool = convert_to_openai_tool(schema, strict=strict)
                return self._structured(
                    self.bind_tools([tool], tool_choice=tool["function"]["name"],
                                    ls_structured_output_format={"kwargs": {"method": method},
                                                                 "schema": schema}),
                    _tools_parser(schema), include_raw,
                )  # fmt: skip
            return super().with_structured_output(schema, include_raw=include_raw)
        if method == "json_schema":
            if schema is None:
                raise ConfigurationError(
                    "with_structured_output: method='json_schema' needs a schema"
                )
            function = convert_to_openai_tool(schema, strict=strict)["function"]
            spec: dict[str, Any] = {"name": function["name"], "schema": function["parameters"]}
            if function.get("description"):
                spec["description"] = function["description"]
            if strict is not None:
                spec["strict"] = strict
            response_format: dict[str, Any] = {"type": "json_schema", "json_schema": spec}
        elif method == "json_mode":
            response_format = {"type": "json_object"}
        else:
            raise ConfigurationError(
                f"with_structured_output: method must be 'function_calling', 'json_schema' or "
                f"'json_mode', got {method!r}"
            )
        bound = self.bind(
            response_format=response_format,
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": schema,
            },
        )
        parser: Runnable[Any, Any] = (
            PydanticOutputParser(pydantic_object=schema)
            if isinstance(schema, type) and issubclass(schema, BaseModel)
            else JsonOutputParser()
        )
        structured = self._structured(bound, parser, include_raw)
        if not function_calling_fallback or schema is None:
            return structured
        return structured.with_fallbacks(
            [self.with_structured_output(schema, include_raw=include_raw, strict=strict)],
            exceptions_to_handle=(NoDeploymentError,),
        )

    @staticmethod
    def _structured(
        bound: Runnable[Any, Any], parser: Runnable[Any, Any], include_raw: bool
    ) -> Runnable[LanguageModelInput, Any]:
        if not include_raw:
            return bound | parser
        assign = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        none = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=bound) | assign.with_fallbacks([none], exception_key="parsing_error")


@contextlib.contextmanager
def _run_span(run_manager: Any) -> Iterator[None]:
    """Make the span a callback handler opened for this chat-model run the active one.

    The router's spans then sit under LangChain's chat span (a handler such as
    ``LoggingCallbackHandler`` exposes it through ``span_for(run_id)``); without such a
    handler they are children of whatever span is active (the user's).
    """
    span = None
    if run_manager is not None:
        for handler in run_manager.handlers:
            span_for = getattr(handler, "span_for", None)
            if callable(span_for):
                span = span_for(run_manager.run_id)
                if span is not None:
                    break
    if span is None:
        yield
        return
    from opentelemetry import trace

    with trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        yield


def _tools_parser(schema: Any) -> Runnable[Any, Any]:
    from langchain_core.output_parsers.openai_tools import (
        JsonOutputKeyToolsParser,
        PydanticToolsParser,
    )

    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return PydanticToolsParser(tools=[schema], first_tool_only=True)
    name = convert_to_openai_tool(schema)["function"]["name"]
    return JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)


class LangChainTransport:
    """Calls a LangChain ``BaseChatModel`` as a deployment (see :func:`chat_model_deployment`)."""

    def __init__(self, model: BaseChatModel) -> None:
        self.model = model

    def _bound(self, params: Mapping[str, Any]) -> Any:
        params = dict(params)
        tools = params.pop("tools", None)
        choice = params.pop("tool_choice", None)
        params.pop("response_format", None)
        model: Any = self.model
        if tools:
            if choice == "required":
                choice = "any"
            elif isinstance(choice, dict):
                choice = choice.get("function", {}).get("name")
            model = model.bind_tools(tools, tool_choice=choice)
        return model.bind(**params) if params else model

    async def complete(
        self, deployment: Deployment, messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> Completion:  # fmt: skip
        """One ``ainvoke`` of the wrapped model, bounded by the deployment's timeout."""
        call = self._bound(params).ainvoke(convert_to_messages([dict(m) for m in messages]))
        message = await asyncio.wait_for(call, deployment.timeout)
        usage = getattr(message, "usage_metadata", None) or {}
        content = message.content if isinstance(message.content, str) else message.text
        return Completion(
            content=content,
            tool_calls=[
                ToolCall(c.get("id") or f"call_{i}", c["name"], json.dumps(c["args"]))
                for i, c in enumerate(getattr(message, "tool_calls", []) or [])
            ],
            input_tokens=int(usage.get("input_tokens", 0)),
            output_tokens=int(usage.get("output_tokens", 0)),
            finish_reason=message.response_metadata.get("finish_reason"),
            model=message.response_metadata.get("model_name"),
            usage_estimated=not usage,
            raw=message,
        )

    async def stream(
        self, deployment: Deployment, messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> AsyncIterator[Chunk]:  # fmt: skip
        """``astream`` of the wrapped model, as router chunks."""
        async for piece in self._bound(params).astream(
            convert_to_messages([dict(m) for m in messages])
        ):
            usage = getattr(piece, "usage_metadata", None)
            content = piece.content if isinstance(piece.content, str) else piece.text
            yield Chunk(
                content=content,
                tool_call_chunks=[
                    ToolCallChunk(int(t.get("index") or 0), t.get("id"), t.get("name"),
                                  t.get("args"))
                    for t in getattr(piece, "tool_call_chunks", []) or []
                ],
                input_tokens=usage["input_tokens"] if usage else None,
                output_tokens=usage["output_tokens"] if usage else None,
                finish_reason=piece.response_metadata.get("finish_reason"),
            )  # fmt: skip


def chat_model_deployment(
    model: BaseChatModel,
    *,
    name: str,
    local: bool = False,
    input_cost_per_token: float | None = None,
    output_cost_per_token: float | None = None,
    catalog_model: str | None = None,
    **options: Any,
) -> Deployment:
    """Make a LangChain chat model a routing deployment.

    Prices come from ``catalog_model`` (or the model's own ``model_name`` / ``model``) in the
    catalog unless given. Other ``options`` are :class:`Deployment` fields (``quality``,
    ``context_window``, ``supports_tools``, ``timeout``...).

    Example:
        >>> from langchain_openai import ChatOpenAI
        >>> d = chat_model_deployment(ChatOpenAI(model="gpt-4o-mini"), name="lc-mini")
    """
    known = catalog_model or getattr(model, "model_name", None) or getattr(model, "model", None)
    return Deployment(
        f"langchain/{name}",
        name=name,
        local=local,
        catalog_model=str(known) if known else None,
        input_cost_per_token=input_cost_per_token,
        output_cost_per_token=output_cost_per_token,
        transport=LangChainTransport(model),
        **options,
    )


class RouterMiddleware(AgentMiddleware[AgentState[Any], Any]):
    """``create_agent`` middleware: every model call of the agent goes through an LLMRouter.

    Each step is routed on its own: the router scores the step's conversation (or
    ``complexity(request)`` does, e.g. hard for the planning step, easy for summarising tool
    results) and picks the cheapest deployment good enough for it, among those that can take
    the step's tools and, with a ``ProviderStrategy``, its ``response_format``. Tools, tool
    choice, structured output (``ToolStrategy`` / ``ProviderStrategy``) and the agent's
    ``model_settings`` are kept; the model given to ``create_agent`` is not called.

    Args:
        router: An :class:`LLMRouter`, or a :class:`RouterChatModel` to route with.
        complexity: ``request -> 0..1`` difficulty of a step (default: the router's classifier
            on the step's messages).
        **options: Routing options for every step (``strategy``, ``required_quality``,
            ``max_cost``, ``max_latency_ms``, ``confidential``, ...), as
            :class:`RouterChatModel` takes them (only with an ``LLMRouter``).

    Example:
        >>> routed = RouterMiddleware(
        ...     router, complexity=lambda req: 0.9 if len(req.messages) == 1 else 0.2
        ... )  # doctest: +SKIP
        >>> agent = create_agent(model, tools, middleware=[routed])  # doctest: +SKIP
    """

    def __init__(
        self,
        router: LLMRouter | RouterChatModel,
        *,
        complexity: Callable[[ModelRequest[Any]], float] | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if isinstance(router, RouterChatModel):
            if options:
                raise ConfigurationError(
                    "RouterMiddleware: give routing options to the RouterChatModel, or pass an "
                    "LLMRouter with them"
                )
            self.model = router
        elif isinstance(router, LLMRouter):
            self.model = RouterChatModel(router=router, **options)
        else:
            raise ConfigurationError(
                "RouterMiddleware needs an LLMRouter or a RouterChatModel, got "
                f"{type(router).__name__}"
            )
        self.complexity = complexity

    def _routed(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        settings = dict(request.model_settings)
        if self.complexity is not None:
            score = float(self.complexity(request))
            if not 0.0 <= score <= 1.0:
                raise ConfigurationError(f"complexity() must return 0..1, got {score}")
            settings["complexity_score"] = score
        return request.override(model=self.model, model_settings=settings)

    def wrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> ModelResponse[Any]:
        """Send this step's model call through the router."""
        return handler(self._routed(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """Async form of :meth:`wrap_model_call`."""
        return await handler(self._routed(request))
