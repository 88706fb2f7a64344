"""Two processes on one diskcache store: a clear by one never hides the other's new data."""

from __future__ import annotations

from pathlib import Path

from aipowertools.sessions import Session
from aipowertools.sessions._diskcache import DiskCacheBackend


def test_key_index_after_another_process_clears(tmp_path: Path) -> None:
    a, b = DiskCacheBackend(str(tmp_path)), DiskCacheBackend(str(tmp_path))  # two "processes"
    sa = Session("shared", store=a)
    sa.append("history", 1)
    Session("shared", store=b).clear()
    sa.append("history", 2)  # a's cache said "history" was indexed; b's clear dropped it
    assert sa.keys() == ["history"]
    assert sa.get_all() == {"history": [2]}
    assert Session("shared", store=b).keys() == ["history"]
    a.close()
    b.close()
