"""The OpenAI chat-completions wire format (also served by llama.cpp's server)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aipowertools.testing._replies import chunk_text
from aipowertools.testing._request import SimRequest
from aipowertools.testing._wire import Codec, ErrorCategory, Exchange, dumps

__all__ = ["OpenAICodec"]

_ERRORS: dict[str, tuple[str, str | None, str | None]] = {
    # category: (type, code, param)
    ErrorCategory.RATE_LIMIT: ("requests", "rate_limit_exceeded", None),
    ErrorCategory.SERVER: ("server_error", None, None),
    ErrorCategory.BAD_GATEWAY: ("server_error", None, None),
    ErrorCategory.UNAVAILABLE: ("server_error", "service_unavailable", None),
    ErrorCategory.CONTEXT: ("invalid_request_error", "context_length_exceeded", "messages"),
    ErrorCategory.AUTH: ("invalid_request_error", "invalid_api_key", None),
    ErrorCategory.CONTENT_POLICY: ("invalid_request_error", "content_policy_violation", None),
    ErrorCategory.NOT_FOUND: ("invalid_request_error", "model_not_found", "model"),
    ErrorCategory.BAD_REQUEST: ("invalid_request_error", None, None),
}


def _usage(ex: Exchange) -> dict[str, Any]:
    return {
        "prompt_tokens": ex.prompt_tokens,
        "completion_tokens": ex.completion_tokens,
        "total_tokens": ex.prompt_tokens + ex.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": ex.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": ex.reply.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_reason(ex: Exchange) -> str:
    if ex.truncated:
        return "length"
    return "tool_calls" if ex.reply.tool_calls else "stop"


class OpenAICodec(Codec):
    """``POST /v1/chat/completions`` as documented in OpenAI's API reference."""

    flavor = "openai"

    def parse(self, body: dict[str, Any], headers: Mapping[str, str], model: str) -> SimRequest:
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise ValueError("'messages' must be a list of message objects")
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        functions = body.get("functions")
        if not tools and isinstance(functions, list):
            tools = [{"type": "function", "function": f} for f in functions]
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        response_format = body.get("response_format")
        return SimRequest(
            flavor=self.flavor,
            model=model,
            messages=messages,
            tools=tools,
            stream=bool(body.get("stream")),
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
            response_format=response_format if isinstance(response_format, dict) else None,
            body=body,
            headers=headers,
        )

    def _message(self, ex: Exchange) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": ex.reply.text if (ex.reply.text or not ex.reply.tool_calls) else None,
            "refusal": None,
            "annotations": [],
        }
        if ex.reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in ex.reply.tool_calls
            ]
        return message

    def render(self, ex: Exchange) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-sim{ex.serial:012d}",
            "object": "chat.completion",
            "created": ex.created,
            "model": ex.request.model,
            "choices": [
                {
                    "index": 0,
                    "message": self._message(ex),
                    "logprobs": None,
                    "finish_reason": _finish_reason(ex),
                }
            ],
            "usage": _usage(ex),
            "service_tier": "default",
            "system_fingerprint": "fp_simulator",
        }

    def stream(self, ex: Exchange) -> Iterator[bytes]:
        base = {
            "id": f"chatcmpl-sim{ex.serial:012d}",
            "object": "chat.completion.chunk",
            "created": ex.created,
            "model": ex.request.model,
            "system_fingerprint": "fp_simulator",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return b"data: " + dumps({**base, "choices": [choice]}) + b"\n\n"

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if ex.reply.text:
            for piece in chunk_text(ex.reply.text):
                yield chunk({"content": piece})
        for index, call in enumerate(ex.reply.tool_calls):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            yield chunk(
                {"tool_calls": [{"index": index, "function": {"arguments": call.arguments}}]}
            )
        yield chunk({}, _finish_reason(ex))
        options = ex.request.body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            yield b"data: " + dumps({**base, "choices": [], "usage": _usage(ex)}) + b"\n\n"
        yield b"data: [DONE]\n\n"

    def error(self, status: int, category: str, message: str) -> tuple[int, dict[str, Any]]:
        kind, code, param = _ERRORS.get(category, ("invalid_request_error", None, None))
        return status, {"error": {"message": message, "type": kind, "param": param, "code": code}}
