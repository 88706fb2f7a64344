"""Sessions without a framework: values, append-only lists, compare-and-set, locks, backups.

Uses a temporary embedded store (diskcache), so it needs no server:

    python examples/sessions_basics.py
"""

from __future__ import annotations

import tempfile
from multiprocessing import get_context
from pathlib import Path

from aipowertools.core.errors import SessionConflictError
from aipowertools.sessions import AESGCMEncryption, Codec, Session


def writer(store: str, worker: int) -> None:
    session = Session("project-abc", store=store)
    for i in range(50):
        session.append("events", {"worker": worker, "i": i})


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = f"diskcache://{Path(tmp) / 'sessions'}"

        print("1. the seed API:")
        session = Session("project-abc", store=store, auto_save=True)
        session.set("user_context", {"id": 123, "role": "admin"})
        session.append("conversation_history", {"role": "user", "content": "Hello"})
        session.append("conversation_history", {"role": "assistant", "content": "Hi!"})
        print(f"  user_context: {session.get('user_context')}")
        print(f"  history: {len(session.get('conversation_history'))} messages")

        print("2. four processes append 50 events each to one session:")
        ctx = get_context("spawn")
        procs = [ctx.Process(target=writer, args=(store, w)) for w in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        events = Session.recover("project-abc", store=store).get("events")
        print(
            f"  stored {len(events)} events, {len({(e['worker'], e['i']) for e in events})} unique"
        )

        print("3. compare-and-set: a stale version is refused, not silently overwritten:")
        value, version = session.get_versioned("user_context")
        session.set("user_context", {**value, "role": "owner"}, expected_version=version)
        try:
            session.set("user_context", {**value, "role": "guest"}, expected_version=version)
        except SessionConflictError as exc:
            print(f"  SessionConflictError: {exc}")
        print(f"  role is now {session.get('user_context')['role']!r}")

        print("4. a read-modify-write under the store's lock:")
        with session.lock():
            counter = session.get("counter", 0)
            session.set("counter", counter + 1)
        print(f"  counter = {session.get('counter')}")

        print("5. a sliding window of the 3 newest items, and explicit paging:")
        window = Session("window", store=store, max_items=3)
        window.extend("log", range(10))
        print(f"  kept {window.get('log')}; page items(-2) = {window.items('log', -2)}")

        print("6. backup and restore:")
        path = session.create_backup(Path(tmp) / "project-abc.backup")
        session.clear()
        restored = Session.restore_backup(path, store=store)
        print(f"  restored keys: {restored.keys()}")

        print("7. encrypted at rest (AES-GCM, rotatable keys):")
        codec = Codec(encryption=AESGCMEncryption({"2025": AESGCMEncryption.generate_key()}))
        secret = Session("vault", store=store, codec=codec)
        secret.set("api_token", "s3cr3t")
        raw = secret.backend.get("default", "vault", "api_token")
        assert raw is not None
        print(f"  token visible in the stored bytes: {b's3cr3t' in raw.data}")
        print(f"  read back: {secret.get('api_token')}")


if __name__ == "__main__":
    main()
