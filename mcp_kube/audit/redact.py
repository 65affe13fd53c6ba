"""Redaction of audit records: secrets are replaced by a short digest, never stored plain.

Why both schema and shape: tool arguments are chosen by a model, so a secret can arrive under
a telling key (``env``, ``token``, a Secret's ``data``) or inside an innocent one (a container
command line with ``Authorization: Bearer ...``, a PEM block pasted into an annotation). Keys
that name secrets have their whole value replaced; every other string is scanned for
secret-shaped substrings (cloud access keys, bearer tokens, JWTs, PEM blocks, ``password=...``
pairs, long base64 or hex blobs) and only those substrings are replaced. The replacement is
``sha256:<first 16 hex>`` of the value, so two records can still be seen to carry the same
value without either showing it.

An audit log must also stay bounded whatever a caller sends: depth, items per container and
string length are capped, and the result is plain JSON data (see :func:`chain.jsonable`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from typing import Any

from mcp_kube.audit.chain import canonical, jsonable

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "MAX_STRING", "digest", "redact", "redact_text"]

MAX_DEPTH = 12
MAX_ITEMS = 256
MAX_STRING = 4096
_MAX_SCAN = 65536  # longer strings are replaced whole: too big to scan per call

# Words (of a key split at non-letters and camelCase) that mark the whole value as secret.
_SECRET_WORDS = frozenset(
    {
        "authorization",
        "apikey",
        "auth",
        "bearer",
        "binarydata",
        "cookie",
        "credential",
        "credentials",
        "data",
        "env",
        "key",
        "kubeconfig",
        "passphrase",
        "passwd",
        "password",
        "privatekey",
        "pwd",
        "secret",
        "stringdata",
        "token",
    }
)
# Words of keys whose values are digests, which the hex-blob rule would otherwise re-hash.
_DIGEST_WORDS = frozenset({"sha256", "sha512", "digest", "hash", "checksum"})

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_DIGEST_OUT = re.compile(r"sha256:[0-9a-f]{16}")
# A command-line flag whose next argument is a secret: ["--password", "hunter2"].
_SECRET_FLAG = re.compile(
    r"--?[A-Za-z0-9_.-]*(?:passw(?:or)?d|secret|token|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|credential)s?",
    re.IGNORECASE,
)

# Hex runs under 40 digits joined by '-' (request and trace ids, traceparents, UUIDs): every
# shape below needs a letter beyond a-f, a run of 40+, or a character that is neither.
_HEX_WORDS = re.compile(r"[0-9a-fA-F]{1,39}(?:-[0-9a-fA-F]{1,39})*")

_SHAPES = re.compile(
    r"""
    (?P<pem>-----BEGIN[ A-Z0-9]*-----(?:.*?-----END[ A-Z0-9]*-----|.*))
  | (?P<jwt>\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)
  | (?P<cloud>\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|AKPA)[A-Z0-9]{16}\b
        |\bAIza[0-9A-Za-z_-]{35}
        |\bgh[pousr]_[A-Za-z0-9]{30,}
        |\bxox[abprs]-[A-Za-z0-9-]{10,}
        |\bsk-[A-Za-z0-9_-]{20,})
  | (?i:\b(?:bearer|basic|token)\s+)(?P<scheme>[A-Za-z0-9._~+/=-]{8,})
  | (?i:(?:passw(?:or)?d|secret|token|api[_-]?key|access[_-]?key
        |private[_-]?key|credential)[A-Za-z0-9_.-]*)["']?\s*[=:]\s*
        (?P<pair>"[^"]*"|'[^']*'|[^\s,;&"']+)
  | (?i:(?<![A-Za-z0-9_.-])--?[A-Za-z0-9_.-]*(?:passw(?:or)?d|secret|token|api[_-]?key
        |access[_-]?key|private[_-]?key|credential)s?)\s+(?P<flag>[^\s"'-][^\s"']*)
  | (?<![A-Za-z0-9+/])(?<!sha256:)(?<!sha512:)(?P<hex>[0-9a-fA-F]{40,})(?![A-Za-z0-9+/])
  | (?<![A-Za-z0-9+/])(?P<b64>[A-Za-z0-9+/]{40,}={0,2})(?![A-Za-z0-9+/=])
    """,
    re.VERBOSE | re.DOTALL,
)


def digest(value: Any) -> str:
    """``sha256:<first 16 hex>`` of a value (strings as UTF-8, anything else canonical JSON)."""
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
    else:
        try:
            raw = canonical(jsonable(value))
        except Exception:  # a value RFC 8785 refuses still gets a digest, never a plain copy
            raw = repr(value).encode("utf-8", "backslashreplace")
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:16]


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and _DIGEST_OUT.fullmatch(value) is not None


def _words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(key)]


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    low = key.lower()
    if low in _SECRET_WORDS:
        return True
    words = _words(key)
    joined = "".join(words)
    return joined in _SECRET_WORDS or any(
        w in _SECRET_WORDS or (w.endswith("s") and w[:-1] in _SECRET_WORDS) for w in words
    )


@functools.lru_cache(maxsize=4096)
def _digest_key(key: str) -> bool:
    low = key.lower()
    return any(w in low for w in _DIGEST_WORDS)


def _replace(match: re.Match[str], allow_hex: bool) -> str:
    kind = match.lastgroup
    text = match.group(0)
    if (kind == "hex" and allow_hex) or (kind == "b64" and not _mixed(text)):
        return text
    if kind in ("scheme", "pair", "flag"):  # keep the scheme or key name, replace the value
        if _is_digest(match.group(kind)):
            return text
        start, end = match.span(kind)
        offset = match.start()
        return text[: start - offset] + digest(match.group(kind)) + text[end - offset :]
    return digest(text)


def _mixed(text: str) -> bool:
    """A base64 blob has upper, lower and digits; names and words rarely have all three."""
    return (
        any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    )


def _could_hold_secret(text: str) -> bool:
    """A cheap test that rules out every shape for most short strings (names, verbs, ids).

    Each shape needs one of: 40+ characters (blobs), ``=`` or ``:`` (pairs), inner whitespace
    (``Bearer x``), ``eyJ`` (JWT), ``---`` (PEM), ``xox``/``sk-`` (tokens), or 20+
    characters with an upper-case letter or ``_`` (cloud keys).
    """
    n = len(text)
    if n >= 40:
        return True
    if (
        "=" in text
        or ":" in text
        or "eyJ" in text
        or "---" in text
        or "xox" in text
        or "sk-" in text
        or len(text.split(None, 1)) > 1
    ):
        return True
    return n >= 20 and (not text.islower() or "_" in text)


def redact_text(text: str, *, allow_hex: bool = False) -> str:
    """Replace secret-shaped substrings of ``text``; cap its length."""
    if len(text) > _MAX_SCAN:
        return f"{digest(text)} (redacted: {len(text)} characters)"
    if not _could_hold_secret(text) or _DIGEST_OUT.fullmatch(text):
        return text
    if len(text) <= MAX_STRING and _HEX_WORDS.fullmatch(text):
        return text  # no shape matches in these (ids, trace parents): the scan changes nothing
    out = _SHAPES.sub(lambda m: _replace(m, allow_hex), text)
    if len(out) > MAX_STRING:
        out = f"{out[:MAX_STRING]}...[{len(out) - MAX_STRING} more characters]"
    return out


@functools.lru_cache(maxsize=4096)
def _redact_key(key: str) -> str:
    return redact_text(key)


@functools.lru_cache(maxsize=4096)
def _key_facts(key: str) -> tuple[str, bool, bool]:
    """A key as recorded, whether it names a secret, whether its values are digests."""
    name = _redact_key(key)
    return name, _secret_key(name), _digest_key(name)


def redact(value: Any, *, _depth: int = 0, _key: str = "") -> Any:
    """A JSON-safe copy of ``value`` with secrets replaced (see the module docstring)."""
    return _redact(value, _depth, _digest_key(_key))


def _redact(value: Any, depth: int, allow_hex: bool) -> Any:
    """``redact``: ``allow_hex`` is whether the key ``value`` sits under names digests. Plain
    strings, numbers and None are handled in the containers' loops (no call each)."""
    if depth > MAX_DEPTH:
        return "[truncated: too deep]"
    kind = type(value)
    if kind is str:
        return _text(value, allow_hex)
    if value is None or kind is bool:
        return value
    if kind is dict:
        return _redact_mapping(value, depth)
    if isinstance(value, (bool, int, float)):
        return jsonable(value)
    if isinstance(value, Mapping):
        return _redact_mapping(value, depth)
    if kind is list or isinstance(value, (list, tuple, set, frozenset)):
        return _redact_items(value, depth, allow_hex)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return digest(bytes(value).decode("latin-1"))
    return redact_text(str(value))


def _text(text: str, allow_hex: bool) -> str:
    if len(text) < 40 and not _could_hold_secret(text):
        return text  # as redact_text would, without its call
    return redact_text(text, allow_hex=allow_hex)


def _redact_mapping(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    below = depth + 1
    for i, (k, v) in enumerate(value.items()):
        if i >= MAX_ITEMS:
            out["..."] = f"[truncated: {len(value) - MAX_ITEMS} more keys]"
            break
        name, secret, hex_ok = _key_facts(k if type(k) is str else str(k))
        kind = type(v)
        if secret and not (v is None or v == "" or isinstance(v, bool) or _is_digest(v)):
            out[name] = digest(v)
        elif kind is str and below <= MAX_DEPTH:
            out[name] = _text(v, hex_ok)
        elif (v is None or kind is bool) and below <= MAX_DEPTH:
            out[name] = v
        else:
            out[name] = _redact(v, below, hex_ok)
    return out


def _redact_items(value: Any, depth: int, allow_hex: bool) -> list[Any]:
    items = list(value) if not isinstance(value, (set, frozenset)) else jsonable(value)
    out: list[Any] = []
    after_flag = False
    for v in items[:MAX_ITEMS]:
        if after_flag and isinstance(v, str) and v and not _is_digest(v):
            out.append(digest(v))
        else:
            out.append(_redact(v, depth + 1, allow_hex))
        after_flag = isinstance(v, str) and _SECRET_FLAG.fullmatch(v) is not None
    if len(items) > MAX_ITEMS:
        out.append(f"[truncated: {len(items) - MAX_ITEMS} more items]")
    return out
