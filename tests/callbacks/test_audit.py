from __future__ import annotations

import pytest

from aipowertools.callbacks import SQLiteSink, StructuredLogger


@pytest.fixture
def chain(tmp_path):
    sink = SQLiteSink(tmp_path / "audit.db")
    log = StructuredLogger("audit", store=sink)
    log.info("not_audited")
    for i in range(1, 6):
        log.audit("access", action=f"read-{i}", resource="doc", actor="ann", result="ok")
    report = log.verify()
    assert report.ok
    assert report.checked == 5
    assert bool(report)
    return log, sink


def _db(sink):
    return sink._db()


def test_changed_record_is_named(chain) -> None:
    log, sink = chain
    _db(sink).execute(
        "UPDATE audit SET payload = replace(payload, 'read-3', 'delete-3') WHERE seq = 3"
    )
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.checked == 2
    assert "changed" in report.reason
    assert report.record is not None
    assert report.record["action"] == "delete-3"


def test_deleted_record_is_named(chain) -> None:
    log, sink = chain
    _db(sink).execute("DELETE FROM audit WHERE seq = 2")
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "record 2" in report.reason
    assert "deleted" in report.reason


def test_deleted_first_record_is_detected(chain) -> None:
    log, sink = chain
    _db(sink).execute("DELETE FROM audit WHERE seq = 1")
    assert log.verify().first_bad_seq == 2


def test_inserted_record_is_detected(chain) -> None:
    log, sink = chain
    db = _db(sink)
    db.execute("UPDATE audit SET seq = seq + 100 WHERE seq >= 3")
    db.execute("UPDATE audit SET seq = seq - 99 WHERE seq >= 103")
    forged_prev = db.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0]
    db.execute(
        "INSERT INTO audit(seq, ts, event_type, prev_hash, hash, payload) "
        "VALUES (3, 0, 'x', ?, ?, ?)",
        (forged_prev, "f" * 64, '{"action":"forged"}'),
    )
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == 3
    assert "changed" in report.reason


def test_forged_but_rehashed_insert_breaks_the_next_link(chain) -> None:
    from aipowertools.callbacks._audit import chain_hash

    log, sink = chain
    db = _db(sink)
    db.execute("UPDATE audit SET seq = seq + 100 WHERE seq >= 3")
    db.execute("UPDATE audit SET seq = seq - 99 WHERE seq >= 103")
    prev = db.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()[0]
    payload = '{"action":"forged"}'
    db.execute(
        "INSERT INTO audit(seq, ts, event_type, prev_hash, hash, payload) "
        "VALUES (3, 0, 'x', ?, ?, ?)",
        (prev, chain_hash(prev, 3, payload), payload),
    )
    report = log.verify()
    # Record 3 is a valid-looking forgery; record 4 (the old 3) no longer links to it.
    assert not report.ok
    assert report.first_bad_seq == 4
    assert "previous-hash link" in report.reason


def test_rehashed_change_with_a_rewritten_next_link_is_detected(chain) -> None:
    # A forger without the key rewrites record 3, rehashes it and points record 4's link at
    # the new hash: record 4's own hash covers its link, so the chain still breaks there.
    from aipowertools.callbacks._audit import chain_hash

    log, sink = chain
    db = _db(sink)
    prev, payload = db.execute("SELECT prev_hash, payload FROM audit WHERE seq = 3").fetchone()
    payload = payload.replace("read-3", "delete-3")
    forged = chain_hash(prev, 3, payload)
    db.execute("UPDATE audit SET payload = ?, hash = ? WHERE seq = 3", (payload, forged))
    db.execute("UPDATE audit SET prev_hash = ? WHERE seq = 4", (forged,))
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == 4
    assert "changed" in report.reason


def test_reordered_records_are_detected(chain) -> None:
    log, sink = chain
    db = _db(sink)
    db.execute("UPDATE audit SET seq = -1 WHERE seq = 2")
    db.execute("UPDATE audit SET seq = 2 WHERE seq = 4")
    db.execute("UPDATE audit SET seq = 4 WHERE seq = -1")
    report = log.verify()
    assert not report.ok
    assert report.first_bad_seq == 2


def test_truncation_detected_with_saved_head(chain) -> None:
    log, sink = chain
    head = log.verify().head_hash
    assert log.verify(expected_head=head).ok
    _db(sink).execute("DELETE FROM audit WHERE seq = 5")
    assert log.verify().ok  # without an anchor a cut tail is invisible ...
    report = log.verify(expected_head=head)  # ... with one it is not
    assert not report.ok
    assert "deleted from the end" in report.reason


def test_hmac_key_prevents_rebuilding_chain(tmp_path) -> None:
    sink = SQLiteSink(tmp_path / "k.db", audit_key=b"k1")
    log = StructuredLogger("audit_key", store=sink)
    log.audit("a", action="x")
    log.audit("a", action="y")
    assert log.verify().ok
    assert not sink.verify_audit(key=b"other").ok
    events = log.query(kind="audit")
    assert [e["audit_seq"] for e in events] == [1, 2]
    log.close()


def test_corrupt_payload_is_reported(chain) -> None:
    log, sink = chain
    _db(sink).execute("UPDATE audit SET payload = 'not json' WHERE seq = 1")
    report = log.verify()
    assert report.first_bad_seq == 1
    assert report.record is None


def test_two_processes_extend_one_chain(tmp_path) -> None:
    import subprocess
    import sys

    db = tmp_path / "shared.db"
    code = (
        "import sys\n"
        "from aipowertools.callbacks import StructuredLogger\n"
        f"log = StructuredLogger('p', store='sqlite:///{db}')\n"
        "for i in range(40):\n"
        "    log.audit('access', action=f'{sys.argv[1]}-{i}')\n"
        "    log.flush()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, name]) for name in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    log = StructuredLogger("check", store=SQLiteSink(db))
    report = log.verify()
    assert report.ok
    assert report.checked == 80
    log.close()
