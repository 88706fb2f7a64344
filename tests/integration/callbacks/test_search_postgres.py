"""Free-text search on PostgreSQL: the GIN tsvector expression index, used by the query."""

from __future__ import annotations

import uuid

from aipowertools.callbacks import PostgresSink, StructuredLogger


def test_postgres_search_uses_its_full_text_index(postgres_url: str) -> None:
    table = f"ev_{uuid.uuid4().hex[:12]}"
    sink = PostgresSink(postgres_url, table=table)
    log = StructuredLogger("pg", store=sink)
    log.info("llm_call", message="The provider's rate-limit was hit", model="gpt-4o")
    log.warning("retry", reason="rate limited", nested={"why": "quota exceeded"}, attempt=2)
    log.error("boom", error="connection reset by peer")
    assert [e["event"] for _, e in log.search("rate limit")] == ["llm_call"]
    assert [e["event"] for _, e in log.search("quota")] == ["retry"]
    assert [e["event"] for _, e in log.search(level="warning")] == ["boom", "retry"]
    assert [e["event"] for _, e in log.search(filters={"attempt": 2})] == ["retry"]
    assert [e["event"] for _, e in log.search(filters={"model": ["gpt-4o", "x"]})] == ["llm_call"]
    first = log.search(newest_first=False)[0][0]
    assert [e["event"] for _, e in log.search(after_id=first, newest_first=False)] == [
        "retry",
        "boom",
    ]
    sink._db().execute("SET enable_seqscan = off")  # a tiny table would be scanned otherwise
    plan = sink._fetch(
        "EXPLAIN SELECT id FROM " + table + " WHERE jsonb_to_tsvector('simple', data, "
        "'[\"string\"]') @@ plainto_tsquery('simple', 'quota')",
        (),
    )
    assert any(f"{table}_fts" in row[0] for row in plan), plan
    log.close()
