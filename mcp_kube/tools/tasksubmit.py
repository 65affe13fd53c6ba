"""A ``submit_job`` that waits for an out-of-band approval, as a task: its id, and its replay.

When the gate answers a ``submit_job`` with ``approval_pending``, there is no Job yet for a
task to follow. The task id then carries the call itself: the cluster, the submitting
principal's subject, the submit's arguments and when the task began, as base64url JSON after
the versioned prefix ``submit1.``. Any replica resolves it, before or after a restart, with no
store of its own. The id is no secret and needs none: replaying it is the same ``submit_job``
call, through the gate, that its caller could make anyway, and a poll by anyone but that
caller is refused before anything is replayed.

``TASK_SUBMIT`` is that replay. It runs under the tool's own name (policy and audit treat it
as the caller's ``submit_job``) and writes only by spending an out-of-band approval: a write
the policy would now let through without one, or with another kind of approval, is refused,
so a poll never creates a Job that no approver approved, nor asks the human anything.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import ValidationError

from mcp_kube.domain import ManifestReview
from mcp_kube.errors import ApprovalRefused
from mcp_kube.kube.port import ClusterPort
from mcp_kube.tools.base import ToolContext, ToolSpec
from mcp_kube.tools.jobspec import SubmitJobInput, idempotency_key
from mcp_kube.tools.taskstate import MAX_TASK_ID, TaskRefInput
from mcp_kube.tools.writes import SUBMIT_JOB, SubmitJobOutput

__all__ = [
    "SUBMIT_TASK_PREFIX",
    "TASK_SUBMIT",
    "SubmitTask",
    "decode_submit_task",
    "encode_submit_task",
]

SUBMIT_TASK_PREFIX = "submit1."  # the id's version: a later encoding gets another prefix


@dataclass(frozen=True)
class SubmitTask:
    """A submit waiting for its approval, as its task id says."""

    task_id: str
    cluster: str
    owner: str  # the subject of the principal who submitted it
    raw: dict[str, Any]  # the arguments as the caller passed them
    arguments: SubmitJobInput  # the same, validated, with the cluster filled in
    created_at: dt.datetime

    @property
    def job(self) -> TaskRefInput:
        """Where its Job is once it exists, and the key that tells it from any other."""
        args = self.arguments
        return TaskRefInput(
            cluster=self.cluster,
            namespace=args.namespace,
            name=args.name,
            idempotency_key=idempotency_key(args),
        )

    @property
    def call(self) -> dict[str, Any]:
        """The ``submit_job`` arguments the replay passes to the gate: the caller's, on the
        cluster the first call resolved."""
        return self.raw | {"cluster": self.cluster}


def encode_submit_task(
    cluster: str, owner: str, arguments: dict[str, Any], created_at: dt.datetime
) -> str | None:
    """The id of a submit waiting for its approval; None when it would be longer than task ids
    may be (the call then keeps its synchronous answer)."""
    body = [cluster, owner, arguments, created_at.astimezone(dt.UTC).isoformat()]
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    task_id = SUBMIT_TASK_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return task_id if len(task_id) <= MAX_TASK_ID else None


def decode_submit_task(task_id: str) -> SubmitTask | None:
    """The submit an id names, or None for anything that is not such an id."""
    if len(task_id) > MAX_TASK_ID or not task_id.startswith(SUBMIT_TASK_PREFIX):
        return None
    body = task_id[len(SUBMIT_TASK_PREFIX) :]
    try:
        parts = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(parts, list) or len(parts) != 4:
        return None
    cluster, owner, arguments, created = parts
    if not (isinstance(cluster, str) and isinstance(owner, str) and isinstance(created, str)):
        return None
    if not cluster or not owner or not isinstance(arguments, dict):
        return None
    try:
        args = SubmitJobInput.model_validate(arguments | {"cluster": cluster})
        at = dt.datetime.fromisoformat(created)
    except (ValidationError, ValueError):
        return None
    return SubmitTask(task_id, cluster, owner, arguments, args, at)


class _OutOfBandOnly:
    """The caller's tool context, except that the only approval it obtains is an out-of-band
    one: any other approval mode, or none, is refused before anyone is asked."""

    def __init__(self, inner: ToolContext) -> None:
        self._inner = inner
        self.principal = inner.principal
        self.limits = inner.limits

    def cluster(self, name: str | None) -> ClusterPort:
        return self._inner.cluster(name)

    def clusters(self, name: str | None) -> list[ClusterPort]:
        return self._inner.clusters(name)

    def cluster_names(self) -> list[str]:
        return self._inner.cluster_names()

    def permissions(self) -> list[tuple[str, bool, str]]:
        return self._inner.permissions()

    @property
    def progress_patterns(self) -> Sequence[str]:
        return self._inner.progress_patterns

    def review_manifest(
        self, cluster: str, namespace: str, manifest: dict[str, Any]
    ) -> ManifestReview:
        return self._inner.review_manifest(cluster, namespace, manifest)

    async def require_approval(self, review: ManifestReview, preview: dict[str, Any]) -> str:
        if review.approval != "out_of_band":
            raise ApprovalRefused(
                "this task was waiting for an out-of-band approval, and the policy now asks "
                f"for {review.approval!r} instead: nothing was run; call submit_job again"
            )
        return await self._inner.require_approval(review, preview)


async def _replay(ctx: ToolContext, args: SubmitJobInput) -> SubmitJobOutput:
    return await SUBMIT_JOB.run(_OutOfBandOnly(ctx), args)


TASK_SUBMIT: ToolSpec[SubmitJobInput, SubmitJobOutput] = replace(
    SUBMIT_JOB,  # policy and audit see what it is: the caller's own submit_job, again
    title="Task approval",
    description="A submit_job waiting for an out-of-band approval, tried again (tasks/get); "
    "runs only by spending that approval. Not listed as a tool.",
    run=_replay,
    examples=(),
)
