"""LlamaIndex integration: ``RouterLLM``, a function-calling LLM that routes every call.

Example:
    >>> from llama_index.core import Settings
    >>> from aipowertools.router import LLMRouter
    >>> from aipowertools.router.llama_index import RouterLLM
    >>> Settings.llm = RouterLLM(router=LLMRouter(cloud_providers=["openai"]))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from aipowertools.core.errors import ConfigurationError
from aipowertools.router._result import NoDeploymentError, RouteResult
from aipowertools.router._router import LLMRouter
from aipowertools.router._sync import iterate_sync, run_sync
from aipowertools.router._types import Chunk

if TYPE_CHECKING:
    from llama_index.core.prompts import BasePromptTemplate
    from llama_index.core.tools.types import BaseTool

Model = TypeVar("Model", bound=BaseModel)
StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]

__all__ = ["RouterLLM"]

_ROUTE_FIELDS = (
    "strategy",
    "complexity_score",
    "required_quality",
    "max_cost",
    "max_latency_ms",
    "confidential",
    "allow_trim",
)


def _to_openai(message: ChatMessage) -> dict[str, Any]:
    text = "".join(b.text for b in message.blocks if isinstance(b, TextBlock))
    out: dict[str, Any] = {"role": message.role.value, "content": text}
    calls = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    if calls:
        out["tool_calls"] = [
            {
                "id": c.tool_call_id or f"call_{i}",
                "type": "function",
                "function": {
                    "name": c.tool_name,
                    "arguments": c.tool_kwargs
                    if isinstance(c.tool_kwargs, str)
                    else json.dumps(c.tool_kwargs),
                },
            }
            for i, c in enumerate(calls)
        ]
    elif message.additional_kwargs.get("tool_calls"):
        out["tool_calls"] = message.additional_kwargs["tool_calls"]
    if message.role == MessageRole.TOOL:
        out["tool_call_id"] = message.additional_kwargs.get("tool_call_id", "")
    if message.additional_kwargs.get("pinned"):
        out["pinned"] = True
    return out


def _raw(result: RouteResult) -> dict[str, Any]:
    raw = {
        "model": result.model,
        "provider": result.provider,
        "deployment": result.deployment,
        "cost_usd": result.cost,
        "latency_ms": result.latency_ms,
        "request_id": result.request_id,
        "usage": {
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "prompt_tokens": result.input_tokens,
            "completion_tokens": result.output_tokens,
            "total_tokens": result.input_tokens + result.output_tokens,
        },
        "decision": result.decision.as_dict(),
    }
    if result.cache is not None:  # hit | semantic | miss, with a response cache
        raw["cache"] = result.cache
    return raw


def _chat_response(result: RouteResult) -> ChatResponse:
    blocks: list[Any] = [TextBlock(text=result.content)] if result.content else []
    for call in result.tool_calls:
        try:
            args: dict[str, Any] | str = json.loads(call.arguments or "{}")
        except json.JSONDecodeError:
            args = call.arguments
        blocks.append(ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=args))
    message = ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)
    return ChatResponse(
        message=message,
        raw=_raw(result),
        additional_kwargs={
            "prompt_tokens": result.input_tokens,
            "completion_tokens": result.output_tokens,
            "total_tokens": result.input_tokens + result.output_tokens,
        },
    )


class RouterLLM(FunctionCallingLLM):
    """A LlamaIndex LLM that sends every call through an :class:`LLMRouter`.

    ``metadata`` reports the smallest context window and output limit among the deployments
    (so prompt helpers never build a prompt some deployment cannot take), and function calling
    when any deployment supports tools. Routing options apply to every call and can be passed
    per call as keyword arguments. ``raw`` on each response holds the deployment, cost, latency,
    usage and decision.

    ``structured_predict`` uses function calling by default; with
    ``structured_output_method="json_schema"`` (or ``"json_mode"``) it sends the provider a
    ``response_format`` instead and routes only to deployments that support one (falling back
    to function calling when none does, if ``function_calling_fallback=True``).

    Example:
        >>> llm = RouterLLM(router=router)  # doctest: +SKIP
        >>> llm.complete("Say hi").raw["deployment"]  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = Field(default="aipowertools-router", description="Name shown in metadata.")
    strategy: Any = Field(default=None, description="Routing strategy for every call.")
    complexity_score: float | None = Field(default=None)
    required_quality: float | None = Field(default=None)
    max_cost: float | None = Field(default=None)
    max_latency_ms: float | None = Field(default=None)
    confidential: bool | None = Field(default=None)
    allow_trim: bool | None = Field(default=None)
    temperature: float | None = Field(default=None)
    max_tokens: int | None = Field(default=None)
    structured_output_method: StructuredMethod = Field(
        default="function_calling",
        description="How structured_predict asks for structured output: 'function_calling', "
        "or natively with a response_format ('json_schema' / 'json_mode'), routed only to "
        "deployments that support it.",
    )
    function_calling_fallback: bool = Field(
        default=False,
        description="With a native method, fall back to function calling when no deployment "
        "takes a response_format.",
    )
    _router: LLMRouter = PrivateAttr()

    def __init__(self, router: LLMRouter, **kwargs: Any) -> None:
        if not isinstance(router, LLMRouter):
            raise ConfigurationError(f"router= must be an LLMRouter, got {type(router).__name__}")
        if not router.deployments:
            raise ConfigurationError("RouterLLM needs a router with at least one deployment")
        super().__init__(**kwargs)
        self._router = router

    @classmethod
    def class_name(cls) -> str:
        """Name LlamaIndex uses for this class."""
        return "aipowertools_router_llm"

    @property
    def router(self) -> LLMRouter:
        """The router every call goes through."""
        return self._router

    @property
    def metadata(self) -> LLMMetadata:
        """Limits every deployment can honour; function calling if any deployment has it."""
        deployments = self._router.deployments
        return LLMMetadata(
            context_window=min(d.context_window or 8192 for d in deployments),
            num_output=self.max_tokens or -1,
            is_chat_model=True,
            is_function_calling_model=any(d.supports_tools for d in deployments),
            model_name=self.model,
        )

    def _kwargs(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> dict[str, Any]:
        call: dict[str, Any] = {"messages": [_to_openai(m) for m in messages]}
        for name in (*_ROUTE_FIELDS, "temperature", "max_tokens"):
            value = kwargs.pop(name, getattr(self, name))
            if value is not None:
                call[name] = value
        kwargs.pop("formatted", None)
        call.update(kwargs)
        return call

    # ------------------------------------------------------------------ chat
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Route one chat call."""
        return _chat_response(run_sync(self._router.route(**self._kwargs(messages, kwargs))))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Route one chat call (async)."""
        return _chat_response(await self._router.route(**self._kwargs(messages, kwargs)))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Route one chat call and stream the answer."""
        stream = self._router.stream(**self._kwargs(messages, kwargs))

        def gen() -> Generator[ChatResponse, None, None]:
            text = ""
            for chunk in iterate_sync(stream.__aiter__()):
                text += chunk.content
                yield _delta(text, chunk)
            assert stream.result is not None
            yield _chat_response(stream.result).model_copy(update={"delta": ""})

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Route one chat call and stream the answer (async)."""
        stream = self._router.stream(**self._kwargs(messages, kwargs))

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            text = ""
            async for chunk in stream:
                text += chunk.content
                yield _delta(text, chunk)
            assert stream.result is not None
            yield _chat_response(stream.result).model_copy(update={"delta": ""})

        return gen()

    # ------------------------------------------------------------------ complete
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Route one completion (the prompt as a user message)."""
        response = self.chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)
        return CompletionResponse(text=response.message.content or "", raw=response.raw)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Route one completion (async)."""
        response = await self.achat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)
        return CompletionResponse(text=response.message.content or "", raw=response.raw)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Route one completion and stream it."""
        chats = self.stream_chat([ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs)

        def gen() -> Generator[CompletionResponse, None, None]:
            for r in chats:
                yield CompletionResponse(text=r.message.content or "", delta=r.delta, raw=r.raw)

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Route one completion and stream it (async)."""
        chats = await self.astream_chat(
            [ChatMessage(role=MessageRole.USER, content=prompt)], **kwargs
        )

        async def gen() -> AsyncGenerator[CompletionResponse, None]:
            async for r in chats:
                yield CompletionResponse(text=r.message.content or "", delta=r.delta, raw=r.raw)

        return gen()

    # ------------------------------------------------------------------ structured output
    def _structured_call(
        self, output_cls: type[BaseModel], prompt: BasePromptTemplate, prompt_args: Any
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        messages = list(prompt.format_messages(llm=self, **prompt_args))
        schema = output_cls.model_json_schema()
        if self.structured_output_method == "json_schema":
            spec: dict[str, Any] = {"name": output_cls.__name__, "schema": schema}
            return messages, {"type": "json_schema", "json_schema": spec}
        if self.structured_output_method != "json_mode":
            raise ConfigurationError(
                "structured_output_method must be 'function_calling', 'json_schema' or "
                f"'json_mode', got {self.structured_output_method!r}"
            )
        # JSON mode guarantees JSON, not the shape: the prompt has to describe it.
        hint = ChatMessage(
            role=MessageRole.SYSTEM,
            content="Answer with one JSON object that matches this JSON schema: "
            + json.dumps(schema),
        )
        return [hint, *messages], {"type": "json_object"}

    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Predict an ``output_cls`` by function calling or a native ``response_format``."""
        if self.structured_output_method != "function_calling":
            messages, response_format = self._structured_call(output_cls, prompt, prompt_args)
            try:
                response = self.chat(
                    messages, response_format=response_format, **(llm_kwargs or {})
                )
            except NoDeploymentError:
                if not self.function_calling_fallback:
                    raise
            else:
                return output_cls.model_validate_json(response.message.content or "")
        result: Model = super().structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)
        return result

    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: BasePromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        """Async form of :meth:`structured_predict`."""
        if self.structured_output_method != "function_calling":
            messages, response_format = self._structured_call(output_cls, prompt, prompt_args)
            try:
                response = await self.achat(
                    messages, response_format=response_format, **(llm_kwargs or {})
                )
            except NoDeploymentError:
                if not self.function_calling_fallback:
                    raise
            else:
                return output_cls.model_validate_json(response.message.content or "")
        result: Model = await super().astructured_predict(
            output_cls, prompt, llm_kwargs, **prompt_args
        )
        return result

    # ------------------------------------------------------------------ tools
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
        prepared: dict[str, Any] = {"messages": messages, **kwargs}
        if specs:
            prepared["tools"] = specs
            prepared["tool_choice"] = "required" if tool_required else "auto"
        return prepared

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls of a response, as ``ToolSelection`` objects."""
        calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError("expected at least one tool call in the response, got none")
        selections = []
        for call in calls:
            args = call.tool_kwargs
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    args = {}
            selections.append(
                ToolSelection(
                    tool_id=call.tool_call_id or "",
                    tool_name=call.tool_name,
                    tool_kwargs=args if isinstance(args, dict) else {},
                )
            )
        return selections


def _delta(text: str, chunk: Chunk) -> ChatResponse:
    return ChatResponse(
        message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=chunk.content
    )
