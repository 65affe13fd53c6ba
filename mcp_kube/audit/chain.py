"""The chain rules of the audit log, shared by the writer and the verifier.

Why a hash chain over canonical JSON: a record's hash must not depend on how a JSON library
happened to order keys or format numbers, or a verifier written elsewhere (or a later version
of this one) would disagree with the writer. RFC 8785 (JCS) fixes one byte form per value, so
every line of the log *is* the canonical form of its record, and any changed byte shows:
either the line no longer parses, or it parses to another value (the hash no longer matches),
or it is no longer the canonical form of what it parses to.

The rules, in one place:

* a record is a JSON object; the sink owns four fields: ``seq`` (1, 2, 3 ... across rotated
  files), ``time`` (RFC 3339, UTC), ``prev_hash`` (the previous record's ``hash``, or
  :data:`GENESIS` for the first) and ``hash``;
* ``hash`` = SHA-256 (hex) of the canonical form of the record without ``hash``;
* a line is the canonical form of the whole record, then ``\\n``;
* a checkpoint is a record of kind ``checkpoint`` whose ``count`` is the number of records
  before it and ``head_hash`` the hash of the last of them (so ``count == seq - 1`` and
  ``head_hash == prev_hash``); its Ed25519 ``signature`` covers :func:`checkpoint_message`,
  so a copy of the log can be checked offline against the public key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "CHAIN_FIELDS",
    "CHECKPOINT",
    "GENESIS",
    "RECOVERED",
    "canonical",
    "checkpoint_fields",
    "checkpoint_message",
    "jsonable",
    "key_id",
    "public_key_b64",
    "public_key_from_b64",
    "record_hash",
    "seal",
    "verify_checkpoint_signature",
]

GENESIS = "0" * 64
"""``prev_hash`` of the first record of a chain."""

CHAIN_FIELDS = ("seq", "time", "prev_hash", "hash")
CHECKPOINT = "checkpoint"
RECOVERED = "audit.recovered"

_PURPOSE = "mcp-kube audit checkpoint v1"
_MAX_SAFE_INT = 2**53 - 1  # RFC 8785 numbers are IEEE doubles


def canonical(value: Any) -> bytes:
    """The RFC 8785 form of a JSON value (raises rfc8785 errors on non-JSON input).

    Written by the C JSON encoder where its bytes are RFC 8785's: keys sorted (ASCII keys,
    so code-point and UTF-16 order agree), the same string escapes, integers in the safe
    range, and floats whose ``repr`` has no exponent (integral ones written as integers, as
    ECMAScript does). Anything else goes to ``rfc8785``; the tests compare the two.
    """
    plain = _plain(value)
    if plain is not _UNSAFE:
        try:
            return _ENCODER.encode(plain).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: rfc8785 says what is wrong
            pass
    return rfc8785.dumps(value)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_UNSAFE = object()  # what _plain returns for a value the C encoder might write differently


def _plain(value: Any) -> Any:
    """``value`` with integral floats as integers; _UNSAFE where the encoders could differ.
    What needs no change comes back as it is (not copied)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else _UNSAFE
    if kind is float:
        if value.is_integer() and abs(value) <= _MAX_SAFE_INT:
            return int(value)
        if math.isfinite(value) and not value.is_integer() and "e" not in repr(value):
            return value
        return _UNSAFE
    if kind is dict:
        return _plain_dict(value)
    if kind is list:
        return _plain_list(value)
    return _UNSAFE


def _plain_dict(value: dict[Any, Any]) -> Any:
    out: dict[str, Any] | None = None  # a copy, from the first member that changes
    for k, v in value.items():
        if type(k) is not str or not k.isascii():
            return _UNSAFE
        kind = type(v)
        if kind is str or kind is bool or v is None:
            item = v
        else:
            item = _plain(v)
            if item is _UNSAFE:
                return _UNSAFE
        if out is None and item is not v:
            out = {}
            for k2, v2 in value.items():  # the members before this one, unchanged
                if k2 == k:
                    break
                out[k2] = v2
        if out is not None:
            out[k] = item
    return value if out is None else out


def _plain_list(value: list[Any]) -> Any:
    items = [_plain(v) for v in value]
    if any(i is _UNSAFE for i in items):
        return _UNSAFE
    return value if all(i is v for i, v in zip(items, value, strict=True)) else items


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical form of ``record`` without its ``hash`` member."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


_HASH_KEY = "hash".encode("utf-16-be")


@functools.lru_cache(maxsize=1024)
def _before_hash(key: str) -> bool:
    """Whether a member named ``key`` sorts before ``hash`` (by UTF-16 code units)."""
    return key.encode("utf-16-be") < _HASH_KEY


def seal(body: Mapping[str, Any]) -> tuple[str, bytes]:
    """Hash ``body`` and render the line of ``body`` plus its ``hash``, canonicalising once.

    The canonical form of an object is its members in canonical form, sorted by the UTF-16
    code units of their keys. So the members that sort before ``hash`` and those after are
    canonicalised as two objects, and both the body and the finished record are assembled
    from them; :func:`canonical` of the finished record gives the same bytes (the tests check
    exactly that). Returns ``(hash, line)``, the line ending in ``\\n``.
    """
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for k, v in body.items():
        if k != "hash":
            (before if _before_hash(k) else after)[k] = v
    lo = canonical(before)[1:-1]
    hi = canonical(after)[1:-1]
    digest = hashlib.sha256(b"{" + b",".join(p for p in (lo, hi) if p) + b"}").hexdigest()
    member = b'"hash":"' + digest.encode() + b'"'
    return digest, b"{" + b",".join(p for p in (lo, member, hi) if p) + b"}\n"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data that RFC 8785 accepts.

    Tuples and sets become lists, keys become strings, integers beyond the IEEE double range
    and non-finite floats become strings, bytes become a digest (never stored plain), and
    anything else becomes its ``str``. Used on anything a caller hands the sink.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()[:16]
    return str(value)


# --- checkpoints -------------------------------------------------------------------------


def public_key_b64(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def key_id(key: Ed25519PublicKey) -> str:
    """A short stable name of a public key: the first 16 hex of SHA-256 of its raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_message(count: int, head_hash: str, kid: str) -> bytes:
    """The bytes a checkpoint signature covers (with a purpose tag, so it signs nothing else)."""
    return canonical({"purpose": _PURPOSE, "count": count, "head_hash": head_hash, "key_id": kid})


def checkpoint_fields(count: int, head_hash: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The members of a checkpoint record (the sink adds the chain fields)."""
    pub = key.public_key()
    kid = key_id(pub)
    signature = key.sign(checkpoint_message(count, head_hash, kid))
    return {
        "kind": CHECKPOINT,
        "count": count,
        "head_hash": head_hash,
        "key_id": kid,
        "public_key": public_key_b64(pub),
        "signature": base64.b64encode(signature).decode(),
    }


def verify_checkpoint_signature(
    record: Mapping[str, Any], pinned: Ed25519PublicKey | None
) -> str | None:
    """Check a checkpoint's signature; None when good, else why not.

    With ``pinned`` the signature must verify under that key (a log rewritten and re-signed
    with another key fails); without it, under the key the record embeds (which proves the
    checkpoint intact, not who wrote it).
    """
    try:
        count, head, kid = record["count"], record["head_hash"], record["key_id"]
        signature = base64.b64decode(record["signature"], validate=True)
        if not (isinstance(count, int) and isinstance(head, str) and isinstance(kid, str)):
            return "malformed checkpoint fields"
        key = pinned if pinned is not None else public_key_from_b64(record["public_key"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed checkpoint: {exc}"
    if key_id(key) != kid:
        return f"signed by key {kid}, not by the given public key {key_id(key)}"
    try:
        key.verify(signature, checkpoint_message(count, head, kid))
    except InvalidSignature:
        return "signature does not verify"
    return None
