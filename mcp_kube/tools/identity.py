"""whoami: the caller's principal and what the policy lets it do."""

from __future__ import annotations

from pydantic import Field

from mcp_kube.tools.base import StrictInput, ToolContext, ToolOutput, ToolSpec

__all__ = ["WHOAMI"]


class WhoamiInput(StrictInput):
    pass


class Permission(ToolOutput):
    tool: str
    allowed: bool
    rule: str


class Whoami(ToolOutput):
    subject: str
    groups: list[str]
    authenticated_by: str
    permissions: list[Permission] = Field(description="the policy's decision per tool, now")


async def _whoami(ctx: ToolContext, _args: WhoamiInput) -> Whoami:
    return Whoami(
        subject=ctx.principal.subject,
        groups=list(ctx.principal.groups),
        authenticated_by=ctx.principal.authenticated_by,
        permissions=[
            Permission(tool=tool, allowed=allowed, rule=rule)
            for tool, allowed, rule in ctx.permissions()
        ],
    )


def _summary(out: Whoami) -> str:
    allowed = [p.tool for p in out.permissions if p.allowed]
    denied = [p.tool for p in out.permissions if not p.allowed]
    groups = ", ".join(out.groups) or "none"
    return (
        f"{out.subject} (groups: {groups}; via {out.authenticated_by}); "
        f"may call: {', '.join(allowed) or 'nothing'}; refused: {', '.join(denied) or 'nothing'}"
    )


WHOAMI: ToolSpec[WhoamiInput, Whoami] = ToolSpec(
    name="whoami",
    title="Who am I",
    description="The caller's identity as the server sees it, and which tools the policy allows.",
    input=WhoamiInput,
    output=Whoami,
    run=_whoami,
    summary=_summary,
    examples=(
        ("What am I allowed to do?", {}),
        ("Am I permitted to cancel jobs?", {}),
    ),
)
