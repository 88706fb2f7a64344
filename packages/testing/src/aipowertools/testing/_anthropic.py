"""The Anthropic Messages wire format (``POST /v1/messages``)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from aipowertools.testing._replies import chunk_text
from aipowertools.testing._request import SimRequest
from aipowertools.testing._wire import Codec, ErrorCategory, Exchange, dumps

__all__ = ["AnthropicCodec", "to_openai_messages"]

_ERROR_TYPES = {
    ErrorCategory.RATE_LIMIT: "rate_limit_error",
    ErrorCategory.SERVER: "api_error",
    ErrorCategory.BAD_GATEWAY: "api_error",
    ErrorCategory.UNAVAILABLE: "overloaded_error",
    ErrorCategory.CONTEXT: "invalid_request_error",
    ErrorCategory.AUTH: "authentication_error",
    ErrorCategory.CONTENT_POLICY: "invalid_request_error",
    ErrorCategory.NOT_FOUND: "not_found_error",
    ErrorCategory.BAD_REQUEST: "invalid_request_error",
}


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if isinstance(block, list):
        return "".join(_block_text(b) for b in block)
    if isinstance(block, dict):
        if block.get("type") == "text":
            return str(block.get("text", ""))
        if block.get("type") == "tool_result":
            return _block_text(block.get("content", ""))
    return ""


def to_openai_messages(system: Any, messages: list[Any]) -> list[dict[str, Any]]:
    """Anthropic ``system`` + ``messages`` as OpenAI chat messages (for token counting)."""
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": _block_text(system)})
    for message in messages:
        role = message.get("role", "user")
        content = message.get("content", "")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "tool_use":
                calls.append(
                    {
                        "id": block.get("id", ""),
                        "type": "function",
                        "function": {
                            "name": block.get("name", ""),
                            "arguments": json.dumps(block.get("input", {})),
                        },
                    }
                )
            elif kind == "tool_result":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id", ""),
                        "content": _block_text(block.get("content", "")),
                    }
                )
            elif kind == "image":
                texts.append("[image]")
            else:
                texts.append(_block_text(block))
        if texts or calls:
            entry: dict[str, Any] = {"role": role, "content": "".join(texts)}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
    return out


class AnthropicCodec(Codec):
    """``POST /v1/messages`` as documented in Anthropic's Messages API reference."""

    flavor = "anthropic"
    messages: ClassVar[dict[str, str]] = {
        **Codec.messages,
        ErrorCategory.RATE_LIMIT: (
            "This request would exceed the rate limit for your organization of {limit_value} "
            "{limit} per minute. (simulated)"
        ),
        ErrorCategory.SERVER: "Internal server error (simulated)",
        ErrorCategory.BAD_GATEWAY: "Bad gateway (simulated)",
        ErrorCategory.UNAVAILABLE: "Overloaded (simulated)",
        ErrorCategory.CONTEXT: "prompt is too long: {prompt_tokens} tokens > {window} maximum",
        ErrorCategory.AUTH: "invalid x-api-key (simulated)",
        ErrorCategory.CONTENT_POLICY: "Output blocked by content filtering policy (simulated)",
        ErrorCategory.NOT_FOUND: "model: {model}",
    }

    def parse(self, body: dict[str, Any], headers: Mapping[str, str], model: str) -> SimRequest:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise ValueError("'messages' must be a list of message objects")
        tools = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema", {"type": "object"}),
                },
            }
            for t in body.get("tools") or []
            if isinstance(t, dict) and "name" in t
        ]
        max_tokens = body.get("max_tokens")
        return SimRequest(
            flavor=self.flavor,
            model=model,
            messages=to_openai_messages(body.get("system"), messages),
            tools=tools,
            stream=bool(body.get("stream")),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            body=body,
            headers=headers,
        )

    @staticmethod
    def _usage(ex: Exchange, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": ex.prompt_tokens - ex.cached_tokens - ex.cache_creation_tokens,
            "cache_creation_input_tokens": ex.cache_creation_tokens,
            "cache_read_input_tokens": ex.cached_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    @staticmethod
    def _stop_reason(ex: Exchange) -> str:
        if ex.truncated:
            return "max_tokens"
        return "tool_use" if ex.reply.tool_calls else "end_turn"

    def _content(self, ex: Exchange) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if ex.reply.text or not ex.reply.tool_calls:
            blocks.append({"type": "text", "text": ex.reply.text})
        blocks.extend(
            {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments_obj}
            for c in ex.reply.tool_calls
        )
        return blocks

    def render(self, ex: Exchange) -> dict[str, Any]:
        return {
            "id": f"msg_sim{ex.serial:020d}",
            "type": "message",
            "role": "assistant",
            "model": ex.request.model,
            "content": self._content(ex),
            "stop_reason": self._stop_reason(ex),
            "stop_sequence": None,
            "usage": self._usage(ex, ex.completion_tokens),
        }

    def stream(self, ex: Exchange) -> Iterator[bytes]:
        def event(name: str, data: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"

        message = {
            **self.render(ex),
            "content": [],
            "stop_reason": None,
            "usage": self._usage(ex, 1),
        }
        yield event("message_start", {"type": "message_start", "message": message})
        index = 0
        if ex.reply.text or not ex.reply.tool_calls:
            yield event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            yield event("ping", {"type": "ping"})
            for piece in chunk_text(ex.reply.text):
                yield event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            index = 1
        for call in ex.reply.tool_calls:
            yield event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {
                        "type": "tool_use",
                        "id": call.id,
                        "name": call.name,
                        "input": {},
                    },
                },
            )
            yield event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": call.arguments},
                },
            )
            yield event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        yield event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop_reason(ex), "stop_sequence": None},
                "usage": {"output_tokens": ex.completion_tokens},
            },
        )
        yield event("message_stop", {"type": "message_stop"})

    def error(self, status: int, category: str, message: str) -> tuple[int, dict[str, Any]]:
        if category == ErrorCategory.UNAVAILABLE and status == 503:
            status = 529
        kind = _ERROR_TYPES.get(category, "invalid_request_error")
        return status, {"type": "error", "error": {"type": kind, "message": message}}

    def malformed_chunk(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index\n\n'
