"""The checkpoint signing key on disk: the writer's private key and the verifier's public one.

Why in a module of its own: the writer creates the key pair the first time it opens a log and
the verifier loads only the public half, possibly on another machine; both read the same PEM
files, so the file rules (0600 private key, ``<key>.pub`` beside it) are written once here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["load_or_create_key", "load_public_key"]

log = logging.getLogger("mcp_kube.audit")


def load_or_create_key(key_path: Path) -> Ed25519PrivateKey:
    """Load the checkpoint signing key, creating it (0600) and ``<key>.pub`` if missing."""
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = _load_private_key(key_path)
    else:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
    _write_public_key(key, key_path.with_name(key_path.name + ".pub"))
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (the sink writes ``<key>.pub``)."""
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def _load_private_key(key_path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{key_path} is not an Ed25519 private key") from None
    if key_path.stat().st_mode & 0o077:
        log.warning("audit signing key %s is readable by others (want 0600)", key_path)
    return key


def _write_public_key(key: Ed25519PrivateKey, pub_path: Path) -> None:
    """Keep ``<key>.pub`` in step with the private key (replaced atomically when it differs)."""
    pub = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        current = pub_path.read_bytes()
    except FileNotFoundError:
        current = b""
    if current != pub:
        tmp = pub_path.with_name(pub_path.name + ".tmp")
        tmp.write_bytes(pub)
        tmp.chmod(0o644)
        os.replace(tmp, pub_path)
