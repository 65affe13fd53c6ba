"""Supervising the testbed's processes: start, wait until ready, stop, and read ``/proc``.

Why ``/proc`` and not only ``Popen``: ``status``, ``restart`` and ``down`` usually run in
another process than the ``up`` that started the components, so a recorded process is checked
by its command line (:func:`is_running`: alive, and still the binary we started - never a
stranger that reused the PID), and its listeners and memory are read from ``/proc`` too.
Every component runs in its own session, so a stop signals its whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from mcp_kube.errors import ComponentFailed
from mcp_kube.testbed.state import ComponentState

__all__ = [
    "Proc",
    "Watch",
    "cmdline",
    "free_port",
    "http_ok",
    "is_running",
    "kill",
    "listeners",
    "port_in_use",
    "rss_kib",
    "start",
    "stop",
    "wait",
]


class Proc(Protocol):
    def poll(self) -> int | None: ...


# Components started by this process, kept so their exit can be reaped (no zombies, and no
# "still running" warnings when the objects would otherwise be collected while they serve).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Something listens on the port (connections in TIME_WAIT do not count: the components
    bind with SO_REUSEADDR, as Go does, so a restarted one gets its port back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def is_running(comp: ComponentState) -> bool:
    """The recorded process is alive and is still the binary we started (not a reused PID)."""
    cmd = cmdline(comp.pid)
    if not cmd or cmd[0] != comp.binary:
        return False
    try:
        stat = Path(f"/proc/{comp.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Watch:
    """A Popen look-alike for a process started earlier (only ``poll`` is needed)."""

    def __init__(self, comp: ComponentState) -> None:
        self.comp = comp

    def poll(self) -> int | None:
        return None if is_running(self.comp) else -1


def _log_tail(path: str, lines: int = 12) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "    (no log)"
    return "\n".join("    " + line[:300] for line in text[-lines:])


def start(
    name: str,
    args: list[str],
    log: Path,
    ports: dict[str, int],
    env: dict[str, str] | None = None,
    binary: str | None = None,
) -> tuple[subprocess.Popen[bytes], ComponentState]:
    """Start a component in its own session, output to ``log``; refuse if a port is taken.
    ``binary``: what the process runs once started, when ``args[0]`` is a launcher that
    execs it (default ``args[0]``)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    busy = [p for p in ports.values() if port_in_use(p)]
    if busy:
        raise ComponentFailed(f"cannot start {name}: port(s) {busy} on 127.0.0.1 already in use")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _CHILDREN[proc.pid] = proc
    comp = ComponentState(
        name=name,
        pid=proc.pid,
        binary=binary or args[0],
        ports=ports,
        log=str(log),
        args=list(args),
    )
    return proc, comp


def wait(
    what: str,
    check: Callable[[], bool],
    procs: list[tuple[Proc, ComponentState]],
    timeout: float,
    interval: float = 0.5,
) -> None:
    """Poll ``check`` until it holds; fail at once, naming its log, if a process exits."""
    deadline = time.monotonic() + timeout
    while True:
        for proc, comp in procs:
            code = proc.poll()
            if code is not None:
                raise ComponentFailed(
                    f"{comp.name} exited with code {code} while waiting for {what}; "
                    f"its log: {comp.log}\n{_log_tail(comp.log)}"
                )
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            logs = ", ".join(c.log for _, c in procs)
            raise ComponentFailed(
                f"timed out after {timeout:.0f}s waiting for {what}; logs: {logs}"
            )
        time.sleep(interval)


def http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:  # noqa: S310 (loopback)
        return bool(resp.status == 200)


def stop(comp: ComponentState, grace: float = 10.0) -> str:
    """SIGTERM, then SIGKILL after ``grace`` seconds: "stopped", "killed" or "not running"."""
    if not is_running(comp):
        _reap(comp.pid)
        return "not running"
    _signal(comp, signal.SIGTERM)
    if _until(lambda: not is_running(comp), grace, 0.1):
        _reap(comp.pid)
        return "stopped"
    _signal(comp, signal.SIGKILL)
    time.sleep(0.2)
    _reap(comp.pid)
    return "killed"


def kill(comp: ComponentState) -> bool:
    """SIGKILL, as a crash would, and wait (10 s at most) until it is gone and its ports are
    free again; False if it was not running.

    Both, because a dying process stops looking like itself (its command line reads empty)
    before the kernel has closed its sockets: a restart in that moment finds the port taken.
    """
    was_running = is_running(comp)
    if was_running:
        _signal(comp, signal.SIGKILL)
        _until(
            lambda: not is_running(comp) and not any(map(port_in_use, comp.ports.values())),
            10.0,
            0.05,
        )
    _reap(comp.pid)
    return was_running


def _signal(comp: ComponentState, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(comp.pid, sig)


def _until(done: Callable[[], bool], timeout: float, interval: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(interval)
    return False


def _reap(pid: int) -> None:
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)


def listeners(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket the process holds (from /proc)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    out: list[tuple[str, int]] = []
    for table, v6 in (("tcp", False), ("tcp6", True)):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A = LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            out.append((_addr(addr_hex, v6), int(port_hex, 16)))
    return out


def _addr(hexaddr: str, v6: bool) -> str:
    raw = bytes.fromhex(hexaddr)
    if not v6:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def rss_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in KiB, from ``/proc/<pid>/status``."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out
