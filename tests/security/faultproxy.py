"""A TLS proxy in front of a testbed API server that injects faults: hang, an HTTP status, or
an outage. Loopback only; it serves the API server's own certificate (SAN 127.0.0.1) and
connects upstream with the kubeconfig user's client certificate, so a kubeconfig that points
at it differs from the real one only in the port.

Each request gets its own connection (``Connection: close`` is forced), so a rule applies to
every request made after it is set; ``cut()`` drops open connections (watches) too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

REASONS = {409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error"}


@dataclass
class Rule:
    method: str  # "*" for any
    path: str  # regular expression on the path (no query)
    action: str  # "hang" | "status" | "refuse"
    status: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and re.fullmatch(self.path, path) is not None


@dataclass
class FaultProxy:
    upstream: tuple[str, int]
    serving: tuple[Path, Path]  # cert, key presented to clients
    client: tuple[Path, Path]  # cert, key presented upstream
    ca: Path
    rules: list[Rule] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._open: set[asyncio.StreamWriter] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # ---------------------------------------------------------------- control (any thread)
    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for w in list(self._open):
                w.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def set(self, *rules: Rule) -> None:
        """Replace the rules (none: pass everything) and drop open connections."""
        with self._lock:
            self.rules = list(rules)
            self.seen.clear()
        self.cut()

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.seen if m == method and re.fullmatch(path, p))

    def cut(self) -> None:
        def close_all() -> None:
            for w in list(self._open):
                w.transport.abort()

        self._loop.call_soon_threadsafe(close_all)

    # ---------------------------------------------------------------- the proxy
    async def _serve(self) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*map(str, self.serving))
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    def _rule(self, method: str, path: str) -> Rule | None:
        with self._lock:
            self.seen.append((method, path))
            return next((r for r in self.rules if r.matches(method, path)), None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            path = target.split("?", 1)[0]
            rule = self._rule(method, path)
            if rule is None:
                await self._forward(head, reader, writer)
            elif rule.action == "hang":
                while await reader.read(65536):  # until the client gives up
                    pass
            elif rule.action == "status":
                body = json.dumps(
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "message": f"injected {rule.status}",
                        "reason": REASONS.get(rule.status, "Error").replace(" ", ""),
                        "code": rule.status,
                    }
                ).encode()
                extra = "Retry-After: 1\r\n" if rule.status == 429 else ""
                writer.write(
                    f"HTTP/1.1 {rule.status} {REASONS.get(rule.status, 'Error')}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    f"{extra}Connection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
            # "refuse": closed without an answer
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._open.discard(writer)
            await _close(writer)

    async def _forward(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        lines = [
            line
            for line in head.rstrip(b"\r\n").split(b"\r\n")
            if not line.lower().startswith(b"connection:")
        ]
        head = b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n"
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(*map(str, self.client))
        up_reader, up_writer = await asyncio.open_connection(*self.upstream, ssl=ctx)
        self._open.add(up_writer)
        try:
            up_writer.write(head)

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(OSError):
                    while chunk := await src.read(65536):
                        dst.write(chunk)
                        await dst.drain()

            upload = asyncio.ensure_future(pump(reader, up_writer))
            await pump(up_reader, writer)  # the answer; upstream closes after it
            upload.cancel()
        finally:
            self._open.discard(up_writer)
            await _close(up_writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Flush what is buffered, then close (an aborted transport would drop it)."""
    writer.close()
    with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
        await asyncio.wait_for(writer.wait_closed(), 2)
    writer.transport.abort()
