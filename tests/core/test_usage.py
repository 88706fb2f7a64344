from __future__ import annotations

from types import SimpleNamespace

import pytest

from aipowertools.core import Usage, litellm
from aipowertools.core.errors import ConfigurationError

# Building a litellm ModelResponse makes pydantic rebuild litellm's TypedDicts, which warns
# about their ReadOnly items (litellm's types, not ours), depending on what was imported first.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"
)


def test_usage_validation_and_arithmetic() -> None:
    a = Usage(100, 20, cached_input_tokens=30, cache_creation_tokens=10, reasoning_tokens=5)
    b = Usage(1, 2)
    assert (a + b).input_tokens == 101
    assert (a + b).reasoning_tokens == 5
    assert a.total_tokens == 120
    assert a.__add__(3) is NotImplemented  # type: ignore[operator]
    with pytest.raises(ConfigurationError, match="input_tokens must be a whole number"):
        Usage(-1, 0)
    with pytest.raises(ConfigurationError, match="whole number"):
        Usage(1.5, 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must include them"):
        Usage(10, 0, cached_input_tokens=8, cache_creation_tokens=5)
    with pytest.raises(ConfigurationError, match="output_tokens must include"):
        Usage(10, 1, reasoning_tokens=2)


def test_from_litellm_model_response() -> None:
    lt = litellm()
    response = lt.ModelResponse(
        model="gpt-4o",
        choices=[{"message": {"role": "assistant", "content": "hi"}}],
        usage={
            "prompt_tokens": 50,
            "completion_tokens": 10,
            "total_tokens": 60,
            "prompt_tokens_details": {"cached_tokens": 20},
            "completion_tokens_details": {"reasoning_tokens": 4},
        },
    )
    assert Usage.from_any(response) == Usage(50, 10, 20, 0, 4)


def test_from_openai_sdk_objects() -> None:
    from openai.types.chat import ChatCompletion
    from openai.types.responses import ResponseUsage

    completion = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o",
            "choices": [],
            "usage": {
                "prompt_tokens": 30,
                "completion_tokens": 7,
                "total_tokens": 37,
                "prompt_tokens_details": {"cached_tokens": 10},
                "completion_tokens_details": {"reasoning_tokens": 3},
            },
        }
    )
    assert Usage.from_any(completion) == Usage(30, 7, 10, 0, 3)
    responses_usage = ResponseUsage.model_validate(
        {
            "input_tokens": 40,
            "output_tokens": 9,
            "total_tokens": 49,
            "input_tokens_details": {"cached_tokens": 16, "cache_write_tokens": 8},
            "output_tokens_details": {"reasoning_tokens": 5},
        }
    )
    assert Usage.from_any(responses_usage) == Usage(40, 9, 16, 8, 5)


def test_from_anthropic_message_counts_cache_into_input() -> None:
    from anthropic.types import Message

    message = Message.model_validate(
        {
            "id": "msg",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 12,
                "output_tokens": 30,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 50,
            },
        }
    )
    assert Usage.from_any(message) == Usage(162, 30, 100, 50, 0)
    raw = {
        "usage": {
            "input_tokens": 5,
            "output_tokens": 1,
            "cache_read_input_tokens": None,
            "cache_creation_input_tokens": 0,
        }
    }
    assert Usage.from_any(raw) == Usage(5, 1)


def test_from_ollama_reply() -> None:
    reply = {
        "model": "llama3",
        "message": {"role": "assistant", "content": "x"},
        "prompt_eval_count": 26,
        "eval_count": 298,
        "done": True,
    }
    assert Usage.from_any(reply) == Usage(26, 298)
    assert Usage.from_any(SimpleNamespace(eval_count=3)) == Usage(0, 3)


def test_from_langchain_ai_message_and_dict() -> None:
    from langchain_core.messages import AIMessage

    metadata = {
        "input_tokens": 350,
        "output_tokens": 240,
        "total_tokens": 590,
        "input_token_details": {"cache_read": 100, "cache_creation": 200},
        "output_token_details": {"reasoning": 200},
    }
    message = AIMessage(content="x", usage_metadata=metadata)
    assert Usage.from_any(message) == Usage(350, 240, 100, 200, 200)
    assert Usage.from_any(metadata) == Usage(350, 240, 100, 200, 200)
    # LangChain's llm_output / response_metadata shape
    assert Usage.from_any({"token_usage": {"prompt_tokens": 3, "completion_tokens": 4}}) == Usage(
        3, 4
    )


def test_from_llama_index_chat_response() -> None:
    from llama_index.core.base.llms.types import ChatMessage, ChatResponse

    raw = {
        "id": "x",
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 6,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }
    response = ChatResponse(message=ChatMessage(role="assistant", content="hi"), raw=raw)
    assert Usage.from_any(response) == Usage(11, 6, 4)
    via_kwargs = ChatResponse(
        message=ChatMessage(role="assistant", content="hi"),
        additional_kwargs={"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10},
    )
    assert Usage.from_any(via_kwargs) == Usage(8, 2)


def test_inconsistent_details_are_clamped_not_fatal() -> None:
    odd = {
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 9},
    }
    assert Usage.from_any(odd) == Usage(10, 2, 10, 0, 2)
    floats = {"prompt_tokens": 10.0, "completion_tokens": "x"}
    assert Usage.from_any(floats) == Usage(10, 0)


class Exploding:
    @property
    def usage(self) -> object:
        raise RuntimeError("boom")


@pytest.mark.parametrize("obj", [None, "text", 3, object(), {}, {"usage": None}, Exploding()])
def test_no_usage_is_a_clear_error(obj: object) -> None:
    with pytest.raises(ConfigurationError, match="cannot find token usage"):
        Usage.from_any(obj)


def test_usage_passes_through() -> None:
    usage = Usage(1, 1)
    assert Usage.from_any(usage) is usage
