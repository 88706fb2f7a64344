from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aipowertools.core import ModelCatalog, ModelInfo, default_catalog
from aipowertools.core.errors import ConfigurationError, UnknownModelError

SMALL_MAP = {
    "sample_spec": {"input_cost_per_token": 0.0, "litellm_provider": "docs"},
    "alpha-1": {
        "litellm_provider": "acme",
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 2e-6,
        "max_input_tokens": 100_000,
        "max_output_tokens": 4_000,
        "mode": "chat",
        "supports_function_calling": True,
        "supports_vision": True,
    },
    "beta-2": {
        "litellm_provider": "acme",
        "input_cost_per_token": 5e-7,
        "output_cost_per_token": 5e-7,
        "max_tokens": 8_000,
        "input_cost_per_token_above_128k_tokens": 1e-6,
        "output_cost_per_token_above_128k_tokens": 1e-6,
        "supports_response_schema": True,
    },
}


@pytest.fixture
def catalog() -> ModelCatalog:
    return ModelCatalog(model_map=SMALL_MAP, curated=False)


def test_get_from_map_and_flags(catalog: ModelCatalog) -> None:
    alpha = catalog.get("alpha-1")
    assert alpha.provider == "acme"
    assert alpha.litellm_model == "alpha-1"
    assert alpha.context_window == 100_000
    assert alpha.max_output_tokens == 4_000
    assert alpha.supports("tools")
    assert alpha.supports("function_calling")  # litellm's own name works too
    assert not alpha.supports("json")
    beta = catalog.get("beta-2")
    assert beta.context_window == beta.max_output_tokens == 8_000
    assert beta.supports("json")
    assert [t.above_tokens for t in beta.price_tiers] == [128_000]
    assert beta.price_tiers[0].input_cost_per_token == 1e-6
    assert catalog.get("acme/alpha-1").litellm_model == "acme/alpha-1"  # provider prefix
    assert catalog.get("alpha-1") is catalog.get("alpha-1")  # cached


def test_unknown_model_lists_close_matches(catalog: ModelCatalog) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.get("alpha1")
    assert info.value.suggestions == ("alpha-1",)
    assert "did you mean 'alpha-1'" in str(info.value)
    with pytest.raises(KeyError):
        catalog.get("sample_spec")  # litellm's documentation entry is not a model
    with pytest.raises(UnknownModelError):
        catalog.get("other/alpha-1")  # wrong provider prefix
    assert "alpha-1" in catalog
    assert "zzz" not in catalog
    assert 42 not in catalog


def test_default_catalog_suggests_curated_ids() -> None:
    with pytest.raises(UnknownModelError) as info:
        default_catalog().get("claude-sonet")
    assert "claude-sonnet" in info.value.suggestions
    assert default_catalog() is default_catalog()


def test_lookups_on_curated_catalog() -> None:
    catalog = ModelCatalog()
    assert {m.id for m in catalog.by_provider("anthropic")} == {
        "claude-opus",
        "claude-sonnet",
        "claude-haiku",
    }
    assert {m.id for m in catalog.by_provider("ollama")} >= {"ollama/llama3", "ollama/qwen2.5"}
    vision = {m.id for m in catalog.by_capability("vision")}
    assert "gpt-4o" in vision
    assert "ollama/llama3" not in vision
    reasoning = {m.id for m in catalog.by_capability("reasoning", "tools")}
    assert {"o3", "o4-mini"} <= reasoning
    assert "gpt-4o-mini" not in reasoning
    cheap = catalog.by_max_cost(0.001)
    assert [m.price_per_1k for m in cheap] == sorted(m.price_per_1k for m in cheap)
    assert "gpt-4o-mini" in {m.id for m in cheap}
    assert "claude-opus" not in {m.id for m in cheap}
    assert cheap[0].local  # free local models come first
    big = {m.id for m in catalog.by_context_window(1_000_000)}
    assert {"gpt-4.1", "gemini-pro"} <= big
    assert "gpt-4o" not in big
    assert catalog.supports("claude-sonnet", "prompt_caching")
    assert not catalog.supports("ollama/mistral", "vision")
    assert "tools" in catalog.features()


def test_unknown_capability_is_a_configuration_error() -> None:
    catalog = ModelCatalog()
    with pytest.raises(ConfigurationError, match="did you mean vision"):
        catalog.by_capability("vison")
    with pytest.raises(ConfigurationError, match="unknown capability"):
        catalog.supports("gpt-4o", "teleportation")


def test_latency_feed(catalog: ModelCatalog) -> None:
    assert catalog.by_latency(10_000) == []
    catalog.add(id="mine", provider="acme", litellm_model="alpha-1")
    assert catalog.record_latency("mine", 400) == 400
    assert catalog.record_latency("mine", 200, weight=0.5) == 300
    catalog.add(id="slow", provider="acme")
    catalog.record_latency("slow", 2_000)
    assert catalog.get("mine").latency_ms == 300
    assert [m.id for m in catalog.by_latency(2_500)] == ["mine", "slow"]
    assert [m.id for m in catalog.by_latency(500)] == ["mine"]
    with pytest.raises(ConfigurationError):
        catalog.record_latency("mine", -1)
    with pytest.raises(ConfigurationError):
        catalog.record_latency("mine", float("nan"))
    with pytest.raises(ConfigurationError):
        catalog.record_latency("mine", 10, weight=0)
    with pytest.raises(UnknownModelError):
        catalog.record_latency("nope", 10)


def test_add_and_update(catalog: ModelCatalog) -> None:
    added = catalog.add(id="ollama/phi3", provider="ollama", context_window=4096, quality=0.4)
    assert added.local
    assert added.litellm_model == "ollama/phi3"
    assert catalog.ids() == ["ollama/phi3"]
    with pytest.raises(ConfigurationError, match="already in the catalog"):
        catalog.add(added)
    updated = catalog.update("ollama/phi3", quality=0.5, capabilities=["tools"])
    assert updated.quality == 0.5
    assert catalog.get("ollama/phi3").supports("tools")
    # overriding a model from the map registers it
    cheaper = catalog.update("alpha-1", input_cost_per_token=5e-7)
    assert cheaper.input_cost_per_token == 5e-7
    assert catalog.get("alpha-1").input_cost_per_token == 5e-7
    assert "alpha-1" in catalog.ids()
    info = ModelInfo(id="ready", provider="acme", litellm_model="x")
    assert catalog.add(info) is info


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"id": "x", "provider": "acme", "input_cost_per_token": -1}, "input_cost_per_token"),
        ({"id": "x", "provider": "acme", "quality": 1.5}, "quality"),
        ({"id": "x", "provider": "acme", "colour": "red"}, "colour"),
        ({"id": "x"}, "provider"),
        ({"id": "", "provider": "acme"}, "id"),
    ],
)
def test_invalid_models_are_configuration_errors(
    catalog: ModelCatalog, fields: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        catalog.add(**fields)


def test_update_validates(catalog: ModelCatalog) -> None:
    with pytest.raises(ConfigurationError, match="quality"):
        catalog.update("alpha-1", quality=-0.1)
    with pytest.raises(UnknownModelError):
        catalog.update("nope", quality=0.1)


def test_load_toml_and_yaml(catalog: ModelCatalog, tmp_path: Path) -> None:
    toml = tmp_path / "models.toml"
    toml.write_text(
        """
[models.alpha-1]
quality = 0.9

[models."my-finetune"]
provider = "openai"
litellm_model = "ft:gpt-4o-mini:acme::abc123"
input_cost_per_token = 3e-7
output_cost_per_token = 1.2e-6
capabilities = ["tools", "json"]
"""
    )
    loaded = catalog.load(toml)
    assert [m.id for m in loaded] == ["alpha-1", "my-finetune"]
    assert catalog.get("alpha-1").quality == 0.9
    assert catalog.get("my-finetune").supports("json")
    yaml_file = tmp_path / "models.yaml"
    yaml_file.write_text("models:\n  my-finetune:\n    quality: 0.7\n")
    assert catalog.load(yaml_file)[0].quality == 0.7


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("m.toml", "models = 3", "expected a 'models' table"),
        ("m.toml", "[models]\nx = 3", "must be a table"),
        ("m.toml", "[models.x]\nprovider = 'a'\nquality = 7", "m.toml: invalid model"),
        ("m.toml", "not toml [", "cannot parse"),
        ("m.yaml", "- a list", "top level"),
        ("m.yaml", "models: [unclosed", "cannot parse"),
        ("m.json", "{}", "use a .toml"),
    ],
)
def test_bad_files(
    catalog: ModelCatalog, tmp_path: Path, name: str, text: str, fragment: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=fragment):
        catalog.load(path)


def test_missing_file(catalog: ModelCatalog, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        catalog.load(tmp_path / "absent.toml")


@pytest.fixture
def price_server() -> Iterator[str]:
    body = json.dumps(
        {
            "gamma-3": {
                "litellm_provider": "acme",
                "input_cost_per_token": 4e-6,
                "output_cost_per_token": 8e-6,
            }
        }
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = body if self.path == "/prices.json" else b"not json"
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_refresh_from_loopback_url(catalog: ModelCatalog, price_server: str) -> None:
    assert catalog.refresh(f"{price_server}/prices.json") == 1
    assert catalog.get("gamma-3").input_cost_per_token == 4e-6
    with pytest.raises(UnknownModelError):
        catalog.get("alpha-1")
    with pytest.raises(ConfigurationError, match="cannot refresh"):
        catalog.refresh(f"{price_server}/garbage")


def test_refresh_with_injected_fetcher(catalog: ModelCatalog) -> None:
    with pytest.raises(ConfigurationError, match="not a litellm model map"):
        catalog.refresh("mem://x", fetcher=lambda url: b'{"a": 1}')

    def failing(url: str) -> bytes:
        raise OSError("network down")

    with pytest.raises(ConfigurationError, match="network down"):
        catalog.refresh("mem://x", fetcher=failing)
    curated = ModelCatalog(model_map=SMALL_MAP)
    new_map = {"claude-sonnet-4-5": {"litellm_provider": "anthropic", "input_cost_per_token": 1e-6}}
    curated.refresh("mem://x", fetcher=lambda url: json.dumps(new_map).encode())
    assert curated.get("claude-sonnet").input_cost_per_token == 1e-6  # aliases rebuilt


def test_any_local_model_is_known_and_free() -> None:
    catalog = ModelCatalog()
    chat = catalog.get("ollama_chat/llama3")  # the simulator's and litellm's chat route
    assert chat.local
    assert chat.input_cost_per_token == chat.output_cost_per_token == 0.0
    assert chat.context_window == 8192  # from litellm's "ollama/llama3"
    phi = catalog.get("ollama/phi3:mini")
    assert phi.local
    assert phi.context_window is None
    assert catalog.get("llamacpp/anything").provider == "llamacpp"
    with pytest.raises(UnknownModelError):
        catalog.get("ollama/")
    with pytest.raises(UnknownModelError):
        catalog.get("openai/not-a-model")


def test_default_catalog_loads_the_file_named_in_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aipowertools.core import _catalog

    path = tmp_path / "models.yaml"
    path.write_text("models:\n  claude-haiku:\n    quality: 0.11\n")
    monkeypatch.setenv("AIPOWERTOOLS_CATALOG", str(path))
    monkeypatch.setattr(_catalog, "_default", None)
    assert default_catalog().get("claude-haiku").quality == 0.11
    monkeypatch.setenv("AIPOWERTOOLS_CATALOG", str(tmp_path / "missing.toml"))
    monkeypatch.setattr(_catalog, "_default", None)
    with pytest.raises(ConfigurationError, match="cannot read"):
        default_catalog()
    monkeypatch.delenv("AIPOWERTOOLS_CATALOG")
    monkeypatch.setattr(_catalog, "_default", None)
    assert default_catalog().get("claude-haiku").quality == 0.78
