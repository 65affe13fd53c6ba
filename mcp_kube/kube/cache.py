"""A list+watch cache of one resource kind in one cluster, kept in a background thread.

The first reader waits for the initial list (a cold call); later readers get the current
snapshot at once (warm). Watch errors, expired resource versions (410) and dropped
connections lead to a fresh list. Objects are stored trimmed (``NodeInfo`` / ``PodInfo``), and
the cache gives up (and readers fall back to failing clearly) past ``max_objects``.

Memory: the list comes in pages (``limit`` + ``continue``), and each page is trimmed and let go
while the next one is fetched, so that the raw objects of at most two pages are alive at a
time. A list of 10,000 pods parsed whole costs ~200 MiB of short-lived dicts, and the
allocator keeps most of that resident afterwards (its arenas are pinned by the few survivors);
page by page, the high-water mark stays near what the cache keeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from mcp_kube.domain import Json
from mcp_kube.errors import ClusterUnavailable, ToolError

__all__ = ["WatchCache"]

T = TypeVar("T")
# list() -> its pages, each (items, resourceVersion of the list); watch(rv) -> event stream.
# The cache empties each page's list as it trims it: a lister must not keep a reference.
Page = tuple[list[Json], str]
Lister = Callable[[], Iterable[Page]]
Watcher = Callable[[str], Iterator[Json]]


class WatchCache(Generic[T]):
    def __init__(
        self,
        what: str,
        lister: Lister,
        watcher: Watcher,
        trim: Callable[[Json], T],
        max_objects: int,
    ) -> None:
        self.what = what
        self._lister, self._watcher, self._trim = lister, watcher, trim
        self._max = max_objects
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""
        self._last_exc: BaseException | None = None
        self._failures = 0  # failed lists since the last successful one
        self.relists = 0
        self.version = 0  # changes with every change of the cached objects

    def _key(self, obj: Json) -> str:
        meta = obj.get("metadata", {})
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"watch-{self.what}", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def snapshot(self, timeout: float) -> list[T]:
        """Current objects; waits up to ``timeout`` for the first (or a fresh) list.

        A list that fails is reported at once (no waiting out the timeout on a dead cluster).
        """
        self.start()
        deadline = time.monotonic() + timeout
        failures = self._failures
        while not self._synced.wait(0.05):
            if self._failures > failures or (failures and self._failures):
                exc = self._last_exc
                if isinstance(exc, ToolError):  # already says what failed, e.g. unavailable
                    raise type(exc)(str(exc))
                raise ClusterUnavailable(f"could not list {self.what}: {self.last_error}")
            if time.monotonic() > deadline:
                detail = f": {self.last_error}" if self.last_error else ""
                raise ClusterUnavailable(
                    f"could not list {self.what} within {timeout:.0f}s{detail}"
                )
        with self._lock:
            return list(self._items.values())

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def __len__(self) -> int:
        return len(self._items)

    def _relist(self) -> str:
        fresh: dict[str, T] = {}
        rv = ""
        for items, page_rv in self._lister():
            rv = page_rv  # every page carries the list's resourceVersion
            if len(fresh) + len(items) > self._max:
                total = len(fresh) + len(items)
                raise ClusterUnavailable(f"{total} {self.what} exceed the cache bound {self._max}")
            items.reverse()
            while items:  # each raw object goes as soon as it is trimmed
                obj = items.pop()
                fresh[self._key(obj)] = self._trim(obj)
        with self._lock:
            self._items = fresh
            self.version += 1
        self.relists += 1
        self._synced.set()
        return rv

    def _run(self) -> None:
        backoff = 0.5
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                    self.last_error, self._last_exc, self._failures = "", None, 0
                    backoff = 0.5
                for event in self._watcher(rv):
                    if self._stop.is_set():
                        return
                    kind = event.get("type")
                    obj = event.get("object") or {}
                    if kind == "ERROR":
                        # 410 Gone (resource version too old) and friends: list again
                        self.last_error = str(obj.get("message", "watch error"))[:200]
                        rv = None
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion") or rv
                    if kind == "BOOKMARK":
                        continue
                    key = self._key(obj)
                    with self._lock:
                        if kind == "DELETED":
                            self._items.pop(key, None)
                        elif len(self._items) < self._max or key in self._items:
                            self._items[key] = self._trim(obj)
                        self.version += 1
            except Exception as e:  # any failure: mark stale, back off, list again
                self.last_error = f"{type(e).__name__}: {str(e)[:200]}"
                self._last_exc = e
                rv = None
                self._synced.clear()
                self._failures += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


def iter_watch_lines(chunks: Iterator[bytes]) -> Iterator[Json]:
    """Decode a watch response body (one JSON event per line) chunk by chunk."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
    if buf.strip():
        yield json.loads(buf)
