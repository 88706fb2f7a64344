"""The Ollama wire format (``POST /api/chat``, NDJSON streaming) and its model endpoints."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from aipowertools.testing._config import SimModel
from aipowertools.testing._replies import chunk_text
from aipowertools.testing._request import SimRequest
from aipowertools.testing._wire import Codec, ErrorCategory, Exchange, dumps

__all__ = ["OllamaCodec", "show_payload", "tags_payload"]

_CREATED_AT = "2024-01-01T00:00:00Z"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "8B",
        "quantization_level": "Q4_K_M",
    }


def tags_payload(models: list[SimModel]) -> dict[str, Any]:
    """Body of ``GET /api/tags``."""
    return {
        "models": [
            {
                "name": m.name if ":" in m.name else f"{m.name}:latest",
                "model": m.name,
                "modified_at": _CREATED_AT,
                "size": 4_920_753_328,
                "digest": hashlib.sha256(m.name.encode()).hexdigest(),
                "details": _details(),
            }
            for m in models
        ]
    }


def show_payload(model: SimModel) -> dict[str, Any]:
    """Body of ``POST /api/show``."""
    return {
        "modelfile": f"# simulated model {model.name}\nFROM {model.name}\n",
        "parameters": "",
        "template": "{{ .Prompt }}",
        "details": _details(),
        "model_info": {
            "general.architecture": "llama",
            "llama.context_length": model.context_window or 131072,
        },
        "capabilities": ["completion", "tools"],
        "modified_at": _CREATED_AT,
    }


class OllamaCodec(Codec):
    """``POST /api/chat`` as documented in Ollama's API reference (``docs/api.md``)."""

    flavor = "ollama"
    stream_content_type = "application/x-ndjson"
    messages: ClassVar[dict[str, str]] = {
        **Codec.messages,
        ErrorCategory.CONTEXT: (
            "the input length of {prompt_tokens} tokens exceeds the maximum context length "
            "of {window} tokens"
        ),
        ErrorCategory.NOT_FOUND: 'model "{model}" not found, try pulling it first',
    }

    def parse(self, body: dict[str, Any], headers: Mapping[str, str], model: str) -> SimRequest:
        raw = body.get("messages")
        if not isinstance(raw, list):
            raise ValueError("'messages' must be a list of message objects")
        messages: list[dict[str, Any]] = []
        for message in raw:
            entry = {k: v for k, v in message.items() if k not in ("images", "tool_calls")}
            calls = message.get("tool_calls")
            if calls:
                entry["tool_calls"] = [
                    {
                        "id": c.get("id", f"call_{i}"),
                        "type": "function",
                        "function": {
                            "name": c.get("function", {}).get("name", ""),
                            "arguments": json.dumps(c.get("function", {}).get("arguments", {})),
                        },
                    }
                    for i, c in enumerate(calls)
                ]
            messages.append(entry)
        fmt = body.get("format")
        response_format: dict[str, Any] | None = None
        if fmt == "json":
            response_format = {"type": "json_object"}
        elif isinstance(fmt, dict):
            response_format = {"type": "json_schema", "json_schema": {"schema": fmt}}
        options = body.get("options") or {}
        max_tokens = options.get("num_predict") if isinstance(options, dict) else None
        return SimRequest(
            flavor=self.flavor,
            model=model,
            messages=messages,
            tools=[t for t in body.get("tools") or [] if isinstance(t, dict)],
            stream=body.get("stream", True) is not False,
            max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None,
            response_format=response_format,
            body=body,
            headers=headers,
        )

    @staticmethod
    def _final(ex: Exchange) -> dict[str, Any]:
        ttft_ns = int(ex.model.ttft_ms * 1e6)
        eval_ns = int(ex.model.per_token_ms * ex.completion_tokens * 1e6)
        return {
            "done_reason": "length" if ex.truncated else "stop",
            "done": True,
            "total_duration": ttft_ns + eval_ns,
            "load_duration": 0,
            "prompt_eval_count": ex.prompt_tokens,
            "prompt_eval_duration": ttft_ns,
            "eval_count": ex.completion_tokens,
            "eval_duration": eval_ns,
        }

    @staticmethod
    def _tool_calls(ex: Exchange) -> list[dict[str, Any]]:
        return [
            {"function": {"name": c.name, "arguments": c.arguments_obj}}
            for c in ex.reply.tool_calls
        ]

    def render(self, ex: Exchange) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": ex.reply.text}
        if ex.reply.tool_calls:
            message["tool_calls"] = self._tool_calls(ex)
        return {
            "model": ex.request.model,
            "created_at": _now_iso(),
            "message": message,
            **self._final(ex),
        }

    def stream(self, ex: Exchange) -> Iterator[bytes]:
        created = _now_iso()
        if ex.reply.text:
            for piece in chunk_text(ex.reply.text):
                yield (
                    dumps(
                        {
                            "model": ex.request.model,
                            "created_at": created,
                            "message": {"role": "assistant", "content": piece},
                            "done": False,
                        }
                    )
                    + b"\n"
                )
        if ex.reply.tool_calls:
            yield (
                dumps(
                    {
                        "model": ex.request.model,
                        "created_at": created,
                        "message": {
                            "role": "assistant",
                            "content": "",
                            "tool_calls": self._tool_calls(ex),
                        },
                        "done": False,
                    }
                )
                + b"\n"
            )
        yield (
            dumps(
                {
                    "model": ex.request.model,
                    "created_at": created,
                    "message": {"role": "assistant", "content": ""},
                    **self._final(ex),
                }
            )
            + b"\n"
        )

    def error(self, status: int, category: str, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"error": message}

    def malformed_chunk(self) -> bytes:
        return b'{"model": "broken", "message": {"role": \n'
