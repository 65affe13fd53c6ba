"""The list+watch cache: applies events, relists after watch errors, fails fast, stays bounded."""

from __future__ import annotations

import threading
import time

import pytest

from mcp_kube.errors import ClusterUnavailable
from mcp_kube.kube.cache import WatchCache, iter_watch_lines


def obj(name: str, rv: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


def test_events_update_the_snapshot_and_errors_trigger_a_relist() -> None:
    lists = []
    release = threading.Event()

    def lister():
        lists.append(1)
        return [([obj("a", "1"), obj("b", "1")] if len(lists) == 1 else [obj("z", "9")], "1")]

    def watcher(rv):
        if len(lists) == 1:
            yield {"type": "ADDED", "object": obj("c", "2")}
            yield {"type": "DELETED", "object": obj("a", "3")}
            yield {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "4"}}}
            release.wait(5)
            yield {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}
        else:
            release.wait(5)
            time.sleep(5)
            yield from ()

    cache = WatchCache("things", lister, watcher, lambda o: o["metadata"]["name"], 100)
    try:
        deadline = time.monotonic() + 5
        while sorted(cache.snapshot(5)) != ["b", "c"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        release.set()
        deadline = time.monotonic() + 5
        while sorted(cache.snapshot(5)) != ["z"]:  # the 410 made it list again
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert cache.relists == 2
    finally:
        cache.stop()
        release.set()


def test_a_failing_list_is_reported_at_once_not_after_the_timeout() -> None:
    def lister():
        raise ClusterUnavailable("cluster unavailable: dead (MaxRetryError)")

    cache = WatchCache("things", lister, lambda rv: iter(()), lambda o: o, 100)
    try:
        t0 = time.monotonic()
        with pytest.raises(ClusterUnavailable, match="cluster unavailable: dead"):
            cache.snapshot(30)
        assert time.monotonic() - t0 < 5
    finally:
        cache.stop()


def test_a_list_beyond_the_bound_is_refused() -> None:
    cache = WatchCache(
        "things",
        lambda: [([obj(str(i), "1") for i in range(6)], "1"), ([obj("x", "1")] * 5, "1")],
        lambda rv: iter(()),
        lambda o: o,
        10,
    )
    try:
        with pytest.raises(ClusterUnavailable, match="exceed the cache bound 10"):
            cache.snapshot(5)
    finally:
        cache.stop()


def test_a_paged_list_is_trimmed_page_by_page_and_watched_from_its_version() -> None:
    """Each page is trimmed (and its raw objects let go) before the next one is fetched."""
    pages = [[obj("a", "1"), obj("b", "1")], [obj("c", "1")]]
    held: list[int] = []  # raw objects still in earlier pages when the next one is fetched
    watched: list[str] = []

    def lister():
        for i, page in enumerate(pages):
            held.append(sum(len(p) for p in pages[:i]))
            yield page, "7"

    def watcher(rv):
        watched.append(rv)
        time.sleep(5)
        yield from ()

    cache = WatchCache("things", lister, watcher, lambda o: o["metadata"]["name"], 100)
    try:
        assert cache.snapshot(5) == ["a", "b", "c"]  # in list order
        assert held == [0, 0]
        deadline = time.monotonic() + 5
        while not watched:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert watched == ["7"]
    finally:
        cache.stop()


def test_watch_lines_split_across_chunks() -> None:
    chunks = [b'{"type": "ADDED", "ob', b'ject": {}}\n{"type"', b': "DELETED", "object": {}}\n']
    assert [e["type"] for e in iter_watch_lines(iter(chunks))] == ["ADDED", "DELETED"]
