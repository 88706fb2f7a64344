"""Curated model aliases on top of litellm's model map.

Each alias names the litellm model it stands for and a quality score (0-1) the router uses to
pick "good enough" models. Prices, context windows and capabilities come from litellm's map;
local models (Ollama, llama.cpp) cost $0 unless the user says otherwise. Quality scores are a
rough, documented ordering for routing, not a benchmark; override them with
``catalog.update(id, quality=...)`` or a catalog file.
"""

from __future__ import annotations

from typing import Any

# alias id -> litellm model name, quality
CURATED: dict[str, tuple[str, float]] = {
    # Anthropic
    "claude-opus": ("claude-opus-4-5", 0.97),
    "claude-sonnet": ("claude-sonnet-4-5", 0.92),
    "claude-haiku": ("claude-haiku-4-5", 0.78),
    # OpenAI
    "gpt-4o": ("gpt-4o", 0.85),
    "gpt-4o-mini": ("gpt-4o-mini", 0.70),
    "gpt-4.1": ("gpt-4.1", 0.88),
    "gpt-4.1-mini": ("gpt-4.1-mini", 0.76),
    "gpt-4.1-nano": ("gpt-4.1-nano", 0.60),
    "o3": ("o3", 0.95),
    "o4-mini": ("o4-mini", 0.87),
    # Google
    "gemini-pro": ("gemini/gemini-2.5-pro", 0.93),
    "gemini-flash": ("gemini/gemini-2.5-flash", 0.80),
    # Mistral
    "mistral-large": ("mistral/mistral-large-latest", 0.84),
    "mistral-medium": ("mistral/mistral-medium-latest", 0.78),
    "mistral-small": ("mistral/mistral-small-latest", 0.65),
    "codestral": ("mistral/codestral-latest", 0.72),
    # DeepSeek
    "deepseek-chat": ("deepseek/deepseek-chat", 0.82),
    # Local, in litellm's map at $0
    "ollama/llama3": ("ollama/llama3", 0.55),
    "ollama/llama3.1": ("ollama/llama3.1", 0.58),
    "ollama/mistral": ("ollama/mistral", 0.45),
    "ollama/codellama": ("ollama/codellama", 0.40),
}

# Local models litellm does not list: described here in full, at $0.
LOCAL: dict[str, dict[str, Any]] = {
    "ollama/deepseek-coder": {
        "provider": "ollama",
        "litellm_model": "ollama/deepseek-coder",
        "context_window": 16384,
        "max_output_tokens": 4096,
        "quality": 0.50,
    },
    "ollama/qwen2.5": {
        "provider": "ollama",
        "litellm_model": "ollama/qwen2.5",
        "context_window": 32768,
        "max_output_tokens": 8192,
        "capabilities": ["tools", "json"],
        "quality": 0.60,
    },
    "llamacpp/llama3": {
        "provider": "llamacpp",
        "litellm_model": "openai/llama3",  # llama.cpp's server speaks the OpenAI wire format
        "context_window": 8192,
        "max_output_tokens": 4096,
        "quality": 0.55,
    },
    "llamacpp/qwen2.5": {
        "provider": "llamacpp",
        "litellm_model": "openai/qwen2.5",
        "context_window": 32768,
        "max_output_tokens": 8192,
        "capabilities": ["tools", "json"],
        "quality": 0.60,
    },
}

LOCAL_PROVIDERS = frozenset({"ollama", "ollama_chat", "llamacpp", "llamafile", "lm_studio"})
