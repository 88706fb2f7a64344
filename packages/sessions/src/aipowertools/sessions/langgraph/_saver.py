"""``CheckpointSaver``: a LangGraph checkpointer on the sessions' stores."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from aipowertools.core.errors import ConfigurationError
from aipowertools.sessions._codec import Codec
from aipowertools.sessions._graph_engines import GraphEngine, open_graph_engine
from aipowertools.sessions._graph_sql import StoredCheckpoint, StoredWrite
from aipowertools.sessions._seal import Sealer, frame, unframe

PRUNE_STRATEGIES = ("keep_latest", "delete")
# metadata a DeltaChannel leaves on its thread's checkpoints (see BaseCheckpointSaver.prune)
_DELTA_KEYS = ("counters_since_delta_snapshot", "delta_writes_versioned")
_PAGE = 64


def _positive(name: str, value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise ConfigurationError(f"{name}={value!r} must be a positive number of seconds or None")
    return value


class CheckpointSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer on the embedded store, Redis or PostgreSQL, chosen by URL.

    Checkpoints are serialized by LangGraph's serializer (LangChain messages, pydantic models,
    dataclasses, ...), then compressed and encrypted as the sessions ``codec`` is configured.
    Every operation of ``BaseCheckpointSaver`` is implemented, sync and async: ``put``,
    ``put_writes``, ``get_tuple``, ``list`` (``filter``, ``before``, ``limit``),
    ``delete_thread``, ``delete_for_runs``, ``copy_thread`` and ``prune``.

    Args:
        store: a store URL (``diskcache:///dir``, ``redis://...``, ``postgresql://...``,
            ``memory://name``, ``sqlite:///file``); None: ``AIPOWERTOOLS_STORE``, then the
            embedded default under the data directory.
        codec: compression and encryption for everything stored (its JSON side is unused:
            LangGraph's serializer encodes).
        ttl: seconds a thread lives after its last checkpoint (None: forever). Each ``put``
            renews it; an expired thread reads as empty and its data is deleted (natively on
            Redis, by :meth:`sweep` or the thread's next ``put`` on SQL stores).
        prefix: table / key prefix, to keep several savers apart in one database.
        serde: LangGraph serializer (default ``JsonPlusSerializer``).
        clock: the time source for TTLs (tests inject one).

    Example:
        >>> saver = CheckpointSaver("redis://localhost/0", ttl=7 * 86400)  # doctest: +SKIP
        >>> graph = builder.compile(checkpointer=saver)  # doctest: +SKIP
    """

    def __init__(
        self,
        store: str | None = None,
        *,
        codec: Codec | None = None,
        ttl: float | None = None,
        prefix: str = "aipt_lg",
        serde: SerializerProtocol | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(serde=serde)
        self.ttl = _positive("ttl", ttl)
        self._engine: GraphEngine = open_graph_engine(store, prefix)
        self._plans = self._engine.plans
        self._sealer = Sealer(codec)
        self._clock = clock

    @property
    def url(self) -> str:
        """The store URL (as given; mask it before logging)."""
        return self._engine.url

    # -- encoding -----------------------------------------------------------------------------

    def _dump(self, value: Any) -> list[bytes]:
        kind, data = self.serde.dumps_typed(value)
        return [kind.encode(), data]

    def _load(self, kind: bytes, data: bytes) -> Any:
        return self.serde.loads_typed((kind.decode(), data))

    def _tuple(self, cp: StoredCheckpoint) -> CheckpointTuple:
        ckind, cdata, mkind, mdata = unframe(
            self._sealer.unseal(cp.record, "checkpoint"), "checkpoint"
        )
        writes = sorted(cp.writes, key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))
        pending = []
        for w in writes:
            channel, kind, data = unframe(
                self._sealer.unseal(w.record, "checkpoint write"), "checkpoint write"
            )
            pending.append((w.task_id, channel.decode(), self._load(kind, data)))

        def config(cid: str) -> RunnableConfig:
            return {
                "configurable": {
                    "thread_id": cp.thread_id,
                    "checkpoint_ns": cp.ns,
                    "checkpoint_id": cid,
                }
            }

        return CheckpointTuple(
            config=config(cp.checkpoint_id),
            checkpoint=self._load(ckind, cdata),
            metadata=self._load(mkind, mdata),
            parent_config=config(cp.parent_id) if cp.parent_id else None,
            pending_writes=pending,
        )

    def _put_plan(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> tuple[Any, RunnableConfig]:
        conf = config["configurable"]
        tid, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        md = get_checkpoint_metadata(config, metadata)
        record = self._sealer.seal(frame([*self._dump(checkpoint), *self._dump(md)]))
        now = self._clock()
        run_id = md.get("run_id")
        plan = self._plans.put(
            tid,
            ns,
            checkpoint["id"],
            conf.get("checkpoint_id"),
            None if run_id is None else str(run_id),
            any(k in md for k in _DELTA_KEYS),
            record,
            None if self.ttl is None else now + self.ttl,
            now,
        )
        out: RunnableConfig = {
            "configurable": {
                "thread_id": tid,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
        return plan, out

    def _writes_plan(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> tuple[Any, bool]:
        conf = config["configurable"]
        rows = [
            StoredWrite(
                task_id,
                WRITES_IDX_MAP.get(channel, idx),
                task_path,
                self._sealer.seal(frame([channel.encode(), *self._dump(value)])),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        mixed = len({w.idx < 0 for w in rows}) > 1
        plan = self._plans.put_writes(
            str(conf["thread_id"]), conf.get("checkpoint_ns", ""), conf["checkpoint_id"], rows
        )
        return plan, mixed

    def _get_plan(self, config: RunnableConfig) -> Any:
        conf = config["configurable"]
        return self._plans.get(
            str(conf["thread_id"]),
            conf.get("checkpoint_ns", ""),
            get_checkpoint_id(config),
            self._clock(),
        )

    def _list_args(
        self, config: RunnableConfig | None, before: RunnableConfig | None
    ) -> tuple[str | None, str | None, str | None, str | None]:
        conf = (config or {}).get("configurable", {})
        tid = conf.get("thread_id")
        return (
            None if tid is None else str(tid),
            conf.get("checkpoint_ns"),
            conf.get("checkpoint_id"),
            get_checkpoint_id(before) if before else None,
        )

    @staticmethod
    def _matches(t: CheckpointTuple, filter: dict[str, Any] | None) -> bool:
        return not filter or all(t.metadata.get(k) == v for k, v in filter.items())

    def _check_prune(self, thread_ids: Sequence[str], strategy: str) -> list[str]:
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(f"Unknown prune strategy: {strategy!r}; use one of {PRUNE_STRATEGIES}")
        return [str(t) for t in thread_ids]

    @staticmethod
    def _refuse_delta(delta: list[str]) -> None:
        if delta:
            raise NotImplementedError(
                "keep_latest can't prune threads that use a DeltaChannel (their latest value is "
                f"rebuilt from older checkpoints): {', '.join(delta)}; use strategy='delete' "
                "or leave them unpruned"
            )

    # -- sync ---------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest: one round trip, O(1)."""
        found = self._engine.run(self._get_plan(config))
        return None if found is None else self._tuple(found)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first, by thread (None: every thread), namespace and metadata.

        ``filter`` is matched against decoded metadata (metadata is encrypted with the rest),
        so a filtered listing reads the thread's checkpoints page by page until ``limit``.
        """
        tid, ns, cid, before_id = self._list_args(config, before)
        after: tuple[str, str, str] | None = None
        left = limit
        while left is None or left > 0:
            page = self._engine.run(
                self._plans.list_page(tid, ns, cid, before_id, after, _PAGE, self._clock())
            )
            for cp in page:
                t = self._tuple(cp)
                if self._matches(t, filter):
                    yield t
                    if left is not None:
                        left -= 1
                        if left <= 0:
                            return
            if len(page) < _PAGE:
                return
            last = page[-1]
            after = (last.checkpoint_id, last.thread_id, last.ns)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (one statement or one pipeline; a transaction with a TTL)."""
        plan, out = self._put_plan(config, checkpoint, metadata)
        self._engine.run(plan, atomic=self.ttl is not None)
        return out

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes; repeating a write is a no-op (special ones replace)."""
        plan, mixed = self._writes_plan(config, writes, task_id, task_path)
        self._engine.run(plan, atomic=mixed)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of ``thread_id``."""
        self._engine.run(self._plans.delete_threads([str(thread_id)]), atomic=True)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata ``run_id`` is listed."""
        self._engine.run(self._plans.delete_runs([str(r) for r in run_ids]), atomic=True)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint (the whole parent chain) and write to another thread."""
        now = self._clock()
        exp = None if self.ttl is None else now + self.ttl
        plan = self._plans.copy_thread(str(source_thread_id), str(target_thread_id), exp, now)
        self._engine.run(plan, atomic=True)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep each namespace's newest checkpoint; ``"delete"``: all.

        Raises:
            NotImplementedError: ``keep_latest`` on a thread that uses a ``DeltaChannel``
                (nothing is pruned then).
        """
        tids = self._check_prune(thread_ids, strategy)
        if not tids:
            return
        if strategy == "delete":
            self._engine.run(self._plans.delete_threads(tids), atomic=True)
            return
        self._refuse_delta(self._engine.run(self._plans.delta_threads(tids)))
        self._engine.run(self._plans.keep_latest(tids), atomic=True)

    def sweep(self) -> int:
        """Delete expired threads now; returns how many (Redis expires them by itself)."""
        return int(self._engine.run(self._plans.expired_threads(self._clock()), atomic=True))

    # -- async --------------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple`."""
        found = await self._engine.arun(self._get_plan(config))
        return None if found is None else self._tuple(found)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`."""
        tid, ns, cid, before_id = self._list_args(config, before)
        after: tuple[str, str, str] | None = None
        left = limit
        while left is None or left > 0:
            page = await self._engine.arun(
                self._plans.list_page(tid, ns, cid, before_id, after, _PAGE, self._clock())
            )
            for cp in page:
                t = self._tuple(cp)
                if self._matches(t, filter):
                    yield t
                    if left is not None:
                        left -= 1
                        if left <= 0:
                            return
            if len(page) < _PAGE:
                return
            last = page[-1]
            after = (last.checkpoint_id, last.thread_id, last.ns)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`."""
        plan, out = self._put_plan(config, checkpoint, metadata)
        await self._engine.arun(plan, atomic=self.ttl is not None)
        return out

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        plan, mixed = self._writes_plan(config, writes, task_id, task_path)
        await self._engine.arun(plan, atomic=mixed)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`."""
        await self._engine.arun(self._plans.delete_threads([str(thread_id)]), atomic=True)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async :meth:`delete_for_runs`."""
        await self._engine.arun(self._plans.delete_runs([str(r) for r in run_ids]), atomic=True)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async :meth:`copy_thread`."""
        now = self._clock()
        exp = None if self.ttl is None else now + self.ttl
        plan = self._plans.copy_thread(str(source_thread_id), str(target_thread_id), exp, now)
        await self._engine.arun(plan, atomic=True)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async :meth:`prune`."""
        tids = self._check_prune(thread_ids, strategy)
        if not tids:
            return
        if strategy == "delete":
            await self._engine.arun(self._plans.delete_threads(tids), atomic=True)
            return
        self._refuse_delta(await self._engine.arun(self._plans.delta_threads(tids)))
        await self._engine.arun(self._plans.keep_latest(tids), atomic=True)

    async def asweep(self) -> int:
        """Async :meth:`sweep`."""
        return int(await self._engine.arun(self._plans.expired_threads(self._clock()), atomic=True))
