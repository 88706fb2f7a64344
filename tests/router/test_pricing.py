"""The router prices with core's cost(): a deployment's own prices win, the rest is the
catalog's."""

from __future__ import annotations

import pytest

from aipowertools.core import Usage, cost, default_catalog
from aipowertools.router import Deployment, LLMRouter
from aipowertools.router._pricing import _FLAT, call_cost, model_info, worst_cost


def test_a_deployments_own_prices_keep_the_catalogs_cache_prices() -> None:
    (d,) = LLMRouter(
        deployments=[Deployment("openai/gpt-4o-mini", local=False, input_cost_per_token=1e-6)]
    ).deployments
    info = model_info(d)
    catalog = default_catalog().get("gpt-4o-mini")
    assert info.input_cost_per_token == 1e-6  # the deployment's price
    assert info.cache_read_input_token_cost == catalog.cache_read_input_token_cost
    usage = Usage(input_tokens=1000, output_tokens=10, cached_input_tokens=800)
    assert call_cost(d, usage) == pytest.approx(cost(usage, info))
    d.input_cost_per_token = 2e-6  # prices changed later: priced anew
    assert model_info(d).input_cost_per_token == 2e-6


def test_unknown_models_are_priced_at_the_deployments_two_prices() -> None:
    d = Deployment("acme/model-x", local=False, input_cost_per_token=1e-6,
                   output_cost_per_token=2e-6)  # fmt: skip
    assert call_cost(d, Usage(input_tokens=10, output_tokens=5)) == pytest.approx(2e-5)
    _FLAT.clear()
    assert worst_cost(d, 10, 5) == pytest.approx(2e-5)
