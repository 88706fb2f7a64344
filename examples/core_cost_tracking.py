"""Track what every call costs, enforce budgets, report and forecast spend.

Runs offline against the provider simulator: ``python examples/core_cost_tracking.py``.
"""

from __future__ import annotations

import asyncio
import tempfile

from aipowertools.core import BudgetAlert, CostTracker, litellm
from aipowertools.core.errors import BudgetExceededError
from aipowertools.testing import SimModel, Simulator

MESSAGES = [{"role": "user", "content": "Summarize the plot of Hamlet in two sentences."}]


async def main(base_url: str, ledger: str) -> None:
    llm = litellm()
    alerts: list[BudgetAlert] = []
    # A global budget of $0.05 a month with an alert at $0.002, and $0.005 a day per user.
    tracker = CostTracker(
        budget_usd=0.05, alert_threshold_usd=0.002, store=ledger, on_alert=alerts.append
    )
    tracker.add_budget(0.005, scope="user:*", period="day")

    async def ask(model: str, task: str, user: str) -> None:
        async with tracker.track_call(
            task_name=task, model=model, user=user, messages=MESSAGES, max_tokens=300
        ) as span:
            response = await llm.acompletion(
                model=f"openai/{model}",
                api_base=base_url,
                api_key="sim",
                messages=MESSAGES,
                max_tokens=300,
            )
            span.record(response)

    # 1. Tracked calls: cost from the response's usage and the catalog's prices.
    for model, task, user in [
        ("gpt-4o-mini", "summarize", "ann"),
        ("gpt-4o", "summarize", "bob"),
        ("gpt-4o-mini", "translate", "ann"),
        ("claude-haiku", "translate", "cy"),
    ]:
        await ask(model, task, user)
    for r in tracker.records():
        print(
            f"{r.request_id}  {r.model:<24} {r.user:<4} {r.output_tokens:>3} tok  ${r.cost_usd:.6f}"
        )

    # 2. The same response recorded twice (router + callback handler) counts once.
    first = tracker.records()[0]
    again = tracker.record(model=first.model, request_id=first.request_id, cost_usd=1.0)
    print("second write of", first.request_id, "->", "written" if again else "no-op")

    # 3. A hard budget refuses a call before any provider sees it.
    try:
        while True:
            await ask("gpt-4o", "summarize", "bob")
    except BudgetExceededError as exc:
        print(f"refused: {exc.scope} limit ${exc.limit_usd} (spent or held ${exc.spent_usd:.6f})")
    print("alerts:", [str(a) for a in alerts] or "none")

    # 4. Reports, efficiency, forecast, export.
    daily = tracker.get_daily_report()
    print(f"today: ${daily.total:.6f} over {daily.task_count} calls, ${daily.remaining:.6f} left")
    for row in tracker.breakdown("model"):
        per_1k = row.cost_per_1k_output_tokens or 0.0
        print(f"  {row.key:<24} {row.calls} calls  ${row.cost_usd:.6f}  ${per_1k:.5f}/1k out")
    print("per user:", {k: round(v, 6) for k, v in tracker.cost_per_user().items()})
    forecast = tracker.forecast_monthly()
    print(
        f"forecast: ${forecast.projected_cost:.4f} this month "
        f"(rate ${forecast.daily_rate:.4f}/day) -> will exceed: {forecast.will_exceed}"
    )
    csv_text = tracker.export_csv() or ""
    print("CSV export:", csv_text.splitlines()[0][:60], f"... ({len(csv_text.splitlines())} lines)")
    tracker.close()


if __name__ == "__main__":
    models = [
        SimModel("gpt-4o-mini", reply="Hamlet avenges his father and everyone dies."),
        SimModel("gpt-4o", reply="A prince feigns madness to avenge his murdered father. " * 3),
        SimModel("claude-haiku", reply="Revenge, doubt, and a tragic end."),
    ]
    with Simulator(models=models) as sim, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(main(sim.base_url("openai"), f"sqlite:///{tmp}/ledger.db"))
