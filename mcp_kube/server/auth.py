"""Who is calling over HTTP: bearer tokens checked offline, never passed on to Kubernetes.

Verifiers (any number, tried in order; the first that knows the token wins):

- ``StaticTokens``: a file of sha256(token) -> principal and groups, for small sites. Only
  hashes are stored; comparison is constant-time.
- ``JwtTokens``: JWTs signed by a local JWKS (no network): ``iss``, ``aud``, ``exp`` and
  ``sub`` are required, algorithms come from an allowlist (never ``none``, never HMAC with a
  public key).

A verifier never raises: any failure is "not this token" (401), never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from mcp.server.auth.provider import AccessToken
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_kube.domain import Principal
from mcp_kube.errors import InvalidArgument
from mcp_kube.settings import HttpSettings

__all__ = [
    "LOOPBACK",
    "ChainVerifier",
    "JwtTokens",
    "StaticTokens",
    "TokenReviewTokens",
    "UserToken",
    "build_verifier",
    "principal_of_token",
    "public_url",
]

SAFE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")


class UserToken(AccessToken):
    """An accepted token, with the groups the principal belongs to."""

    groups: list[str] = Field(default_factory=list)
    method: str = ""  # static | jwt | tokenreview


def principal_of_token(token: AccessToken | None) -> Principal | None:
    if token is None or not token.subject:
        return None
    if isinstance(token, UserToken):
        groups, method = tuple(token.groups), token.method or "bearer"
    else:  # a token some other verifier accepted: no groups known
        groups, method = (), "bearer"
    return Principal(subject=token.subject, groups=groups, authenticated_by=f"http-{method}")


class StaticEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the token, hex")
    principal: str = Field(min_length=1, max_length=256)
    groups: list[str] = Field(default_factory=list, max_length=64)


class StaticFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tokens: list[StaticEntry] = Field(max_length=10_000)


class StaticTokens:
    """``{"tokens": [{"sha256": "...", "principal": "alice", "groups": ["team-a"]}]}`` (JSON
    or YAML). Make an entry with ``printf %s "$TOKEN" | sha256sum``."""

    def __init__(self, path: Path) -> None:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            self._entries = StaticFile.model_validate(data).tokens
        except (OSError, yaml.YAMLError, ValidationError) as e:
            raise InvalidArgument(f"token file {path}: {e}") from None

    async def verify_token(self, token: str) -> AccessToken | None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        found = None
        for e in self._entries:  # constant time per entry; no early exit on a match
            if hmac.compare_digest(e.sha256, digest):
                found = e
        if found is None:
            return None
        return UserToken(
            token="",  # the secret itself is not kept past this point
            client_id=found.principal,
            scopes=[],
            subject=found.principal,
            groups=list(found.groups),
            method="static",
        )


class JwtTokens:
    """JWTs verified against a JWKS file (keys are loaded once; rotate by restarting)."""

    def __init__(
        self,
        jwks_path: Path,
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("RS256", "ES256", "EdDSA"),
        leeway_s: int = 30,
        groups_claim: str = "groups",
    ) -> None:
        import jwt

        bad = [a for a in algorithms if a not in SAFE_ALGORITHMS]
        if bad:
            raise InvalidArgument(f"JWT algorithms not allowed: {bad} (allowed: {SAFE_ALGORITHMS})")
        try:
            jwks = jwt.PyJWKSet.from_dict(json.loads(jwks_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, jwt.PyJWTError) as e:
            raise InvalidArgument(f"JWKS file {jwks_path}: {e}") from None
        self._keys = {k.key_id: k for k in jwks.keys}
        self._single = jwks.keys[0] if len(jwks.keys) == 1 else None
        self._issuer, self._audience = issuer, audience
        self._algorithms = list(algorithms)
        self._leeway = leeway_s
        self._groups_claim = groups_claim

    async def verify_token(self, token: str) -> AccessToken | None:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid")) or self._single
            if key is None or header.get("alg") not in self._algorithms:
                return None
            claims = jwt.decode(
                token,
                key.key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except Exception:  # any invalid token is a 401, never a 500
            return None
        groups = claims.get(self._groups_claim, [])
        return UserToken(
            token="",
            client_id=str(claims.get("azp") or claims.get("client_id") or claims["sub"]),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            subject=str(claims["sub"]),
            groups=[str(g) for g in groups][:64] if isinstance(groups, list) else [],
            method="jwt",
        )


Review = Callable[[str, list[str]], Awaitable[tuple[str, list[str]] | None]]


class TokenReviewTokens:
    """Kubernetes tokens checked with a TokenReview; ``review`` returns (user, groups) or None.
    Accepted reviews are cached for a minute (bounded, by the token's hash), so a burst of
    calls costs one review; refusals are not cached."""

    def __init__(
        self, review: Review, audiences: Sequence[str], ttl_s: float = 60.0, most: int = 4096
    ) -> None:
        self.review, self.audiences, self.ttl_s, self.most = review, list(audiences), ttl_s, most
        self._cache: dict[str, tuple[float, str, list[str]]] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            user, groups = hit[1], hit[2]
        else:
            try:
                found = await self.review(token, self.audiences)
            except Exception:  # the reviewing cluster is down: no one is let in
                return None
            if found is None:
                return None
            user, groups = found
            if len(self._cache) >= self.most:
                self._cache.clear()
            self._cache[key] = (now + self.ttl_s, user, groups)
        return UserToken(
            token="", client_id=user, scopes=[], subject=user, groups=groups, method="tokenreview"
        )


class ChainVerifier:
    """Try each verifier in turn."""

    def __init__(self, verifiers: Sequence[Any]) -> None:
        self.verifiers = list(verifiers)

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token or len(token) > 16 * 1024:
            return None
        for v in self.verifiers:
            try:
                found: AccessToken | None = await v.verify_token(token)
            except Exception:
                found = None
            if found is not None:
                return found
        return None


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def public_url(http: HttpSettings) -> str:
    host = f"[{http.host}]" if ":" in http.host else http.host
    return http.public_url or f"http://{host}:{http.port}{http.path}"


def build_verifier(http: HttpSettings, review: Review | None = None) -> ChainVerifier | None:
    """The configured verifiers, or None when HTTP runs unauthenticated (loopback only).
    ``review`` performs a TokenReview (given by the server, which owns the clusters)."""
    a = http.auth
    verifiers: list[Any] = []
    if a.token_review:
        if review is None:
            raise InvalidArgument("TokenReview needs a cluster to review tokens")
        verifiers.append(TokenReviewTokens(review, a.token_review_audiences))
    if a.token_file:
        verifiers.append(StaticTokens(a.token_file.expanduser()))
    if a.jwks_file:
        if not a.jwt_issuer:
            raise InvalidArgument("a JWKS file needs the JWT issuer (http.auth.jwt_issuer)")
        verifiers.append(
            JwtTokens(
                a.jwks_file.expanduser(),
                issuer=a.jwt_issuer,
                audience=a.jwt_audience or public_url(http),
                algorithms=a.jwt_algorithms,
                groups_claim=a.jwt_groups_claim,
            )
        )
    if verifiers:
        return ChainVerifier(verifiers)
    if not a.allow_unauthenticated:
        raise InvalidArgument(
            "HTTP needs authentication: give --token-file, --jwks-file (with --jwt-issuer) or "
            "--token-review, or --allow-unauthenticated for local development on a loopback bind"
        )
    if http.host not in LOOPBACK:
        raise InvalidArgument(
            f"--allow-unauthenticated is refused on {http.host}: only a loopback bind "
            "(127.0.0.1, localhost, ::1) may serve without tokens"
        )
    return None
