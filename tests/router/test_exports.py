import aipowertools.router as router
import aipowertools.router.langchain as lc
import aipowertools.router.llama_index as li


def test_public_api_is_exactly_this() -> None:
    assert router.__all__ == [
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
    assert all(hasattr(router, name) for name in router.__all__)
    assert lc.__all__ == [
        "LangChainTransport",
        "RouterChatModel",
        "RouterMiddleware",
        "chat_model_deployment",
    ]
    assert li.__all__ == ["RouterLLM"]


def test_import_is_light() -> None:
    import subprocess
    import sys

    heavy = "('litellm', 'langchain_core', 'llama_index', 'httpx')"
    code = f"import sys, aipowertools.router; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
