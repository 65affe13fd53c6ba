"""A read call's names go where the request's words put them."""

from __future__ import annotations

from mcp_kube.llm.prompt import ToolDef
from mcp_kube.llm.roles import settle, settle_roles

PENDING = ["cluster", "namespace", "job", "pod"]
CLUSTERS = ["gpu-east", "gpu-west"]


def test_a_name_after_pod_is_a_pod_and_only_one_of_job_or_pod_is_kept() -> None:
    args = {"namespace": "team-c", "job": "r-0", "pod": "r-0"}
    got = settle_roles(args, PENDING, "pod r-0 (team-c) stuck?", [], CLUSTERS)
    assert got == {"namespace": "team-c", "pod": "r-0"}
    got = settle_roles(args, PENDING, "why is job r-0 waiting in team-c", [], CLUSTERS)
    assert got == {"namespace": "team-c", "job": "r-0"}
    assert args == {"namespace": "team-c", "job": "r-0", "pod": "r-0"}  # not changed in place
    got = settle_roles({"pod": "r"}, PENDING, "whyy is job r not runing", [], CLUSTERS)
    assert got == {"job": "r"}


def test_the_namespace_never_fills_another_role_too() -> None:
    args = {"namespace": "ops", "name": "ops"}
    assert settle_roles(args, ["namespace", "name"], "warnings ops", [], CLUSTERS) == {
        "namespace": "ops"
    }
    kept = settle_roles(args, ["namespace", "name"], "events of name ops in ops", [], CLUSTERS)
    assert kept == args  # the request does give it both roles


def test_a_gpu_product_is_no_namespace() -> None:
    params = ["namespace", "node", "window_hours"]
    got = settle_roles({"namespace": "a100"}, params, "busy a100 nodes today", [], CLUSTERS)
    assert got == {}
    named = settle_roles({"namespace": "l4"}, params, "gpus in namespace l4", ["l4"], CLUSTERS)
    assert named == {"namespace": "l4"}  # one the request puts in that role stays


def test_a_single_named_namespace_and_cluster_are_filled_in() -> None:
    params = ["gpus", "namespace", "cluster"]
    got = settle_roles({"gpus": 2}, params, "2 gpus for team-c on gpu-west", ["team-c"], CLUSTERS)
    assert got == {"gpus": 2, "namespace": "team-c", "cluster": "gpu-west"}
    two = settle_roles({}, ["namespace", "cluster"], "team-c or team-d, gpu-east or gpu-west",
                       ["team-c", "team-d"], CLUSTERS)  # fmt: skip
    assert two == {}  # ambiguous: left to the tool's default
    assert settle_roles({}, ["cluster"], "gpus on gpu-eastern", [], CLUSTERS) == {}
    plain = settle_roles({}, ["namespace"], "busy per namespace over 6 hours", ["over"], CLUSTERS)
    assert plain == {}  # "over" is no namespace's name


def test_a_choice_the_request_names_is_made_and_a_guessed_filter_dropped() -> None:
    from mcp_kube.llm.roles import settle_choices

    assert settle_choices("list_jobs", {}, "which jobs are on hold in team-c")["status"] == (
        "suspended"
    )
    assert "status" not in settle_choices("list_jobs", {"status": "active"}, "jobs of team-c")
    both = settle_choices("list_jobs", {"status": "failed"}, "failed or finished jobs")
    assert both == {"status": "failed"}  # two named: the model's choice stands
    events = settle_choices("list_events", {}, "all events for job x-1, normal ones too")
    assert events == {"warnings_only": False, "kind": "Job"}
    assert settle_choices("gpu_utilization", {}, "busy per node")["group_by"] == "node"
    assert settle_choices("pod_logs", {"previous": True}, "logs of x-0") == {}
    assert settle_choices("pod_logs", {}, "log of the earlier container")["previous"] is True
    ask = "200 lines from the crashed instance before that"
    assert settle_choices("pod_logs", {}, ask)["previous"] is True


def test_a_grouping_word_is_followed_by_no_name() -> None:
    from mcp_kube.llm.grounding import Grounding

    g = Grounding.of("how busy were the GPUs per namespace over the last 6 hours?")
    assert "over" not in g.spaces
    assert "over" not in g.words


def test_a_quantity_is_never_a_name() -> None:
    got = settle_roles(
        {"namespace": "3h", "cluster": "gpu-west"},
        ["namespace", "cluster"],
        "idle for 3h on gpu-west",
        [],
        CLUSTERS,
    )
    assert got == {"cluster": "gpu-west"}


def test_a_pod_named_namespace_trades_places_with_a_namespace_named_pod() -> None:
    args = {"namespace": "nb-0", "job": "team-c"}
    got = settle_roles(args, PENDING, "logs for nb-0 team-c", [], CLUSTERS)
    assert got == {"namespace": "team-c", "pod": "nb-0"}


def test_a_name_not_like_a_pod_in_a_request_saying_no_pod_is_a_job() -> None:
    got = settle_roles({"pod": "t5-xl"}, PENDING, "why is t5-xl stuck in team-c", [], CLUSTERS)
    assert got == {"job": "t5-xl"}
    kept = settle_roles({"pod": "web-0"}, PENDING, "why is web-0 stuck in team-c", [], CLUSTERS)
    assert kept == {"pod": "web-0"}  # named like a Job's first pod
    moved = settle_roles({"pod": "diff-3"}, PENDING, "why is diff-3 stuck in team-c", [], CLUSTERS)
    assert moved == {"job": "diff-3"}  # a digit ends many a job's own name
    said = settle_roles({"pod": "web"}, PENDING, "why is the pod web stuck", [], CLUSTERS)
    assert said == {"pod": "web"}


def test_the_first_call_of_an_ask_runs_where_the_ask_says() -> None:
    tool = ToolDef("gpu_inventory", "", {"properties": {"cluster": {}, "product": {}}})
    where = ([], CLUSTERS, [])
    args = {"cluster": "gpu-east"}  # from an earlier ask's result, not from these words
    assert settle(tool, args, "what is free instead?", where, first=True) == {}
    assert settle(tool, args, "free on gpu-east?", where, first=True) == {"cluster": "gpu-east"}
    later = settle(tool, args, "what is free instead?", where, first=False)
    assert later == {"cluster": "gpu-east"}  # a later call may follow a result's lead


def test_names_take_the_roles_the_server_knows_them_in() -> None:
    write = ToolDef("suspend_job", "", {"properties": {"namespace": {}, "name": {}}}, False)
    where = ([], CLUSTERS, ["team-c", "ml-ops"])
    swapped = {"namespace": "sd-ft", "name": "ml-ops"}
    got = settle(write, swapped, "sd-ft, ml-ops: pause it", where, first=True)
    assert got == {"namespace": "ml-ops", "name": "sd-ft"}
    unknown = {"namespace": "sd-ft", "name": "ml-new"}  # neither shown: a write is not moved
    assert settle(write, unknown, "sd-ft, ml-new: pause it", where, first=True) == unknown
    read = ToolDef("gpu_quota", "", {"properties": {"namespace": {}, "cluster": {}}})
    got = settle(read, {"namespace": "its"}, "how close is ml-ops to its cap", where, first=True)
    assert got == {"namespace": "ml-ops"}
    # a plain word of the ask the server never showed as a namespace is none, unless typed so
    jobs = ToolDef("list_jobs", "", {"properties": {"namespace": {}, "status": {}}})
    plain = {"namespace": "which", "status": "failed"}
    assert settle(jobs, plain, "which of its jobs failed", where, first=True) == {
        "status": "failed"
    }
    typed = {"namespace": "research"}
    assert settle(jobs, typed, "jobs in research", where, first=True) == typed
    wide = {"namespace": "fleet-wide"}
    assert "namespace" not in settle(jobs, wide, "failed jobs fleet-wide", where, first=True)
    # the known namespace typed with a slip, where the model chose another word of the ask
    quota = {"namespace": "gpu-wise"}
    got = settle(read, quota, "whats tema-c allowed to use gpu-wise", where, first=True)
    assert got == {"namespace": "team-c"}


def test_a_slip_of_a_known_namespace_and_a_name_left_out_are_settled() -> None:
    where = (["tema-c"], CLUSTERS, ["team-c", "ml-ops"])
    idle = ToolDef("idle_gpus", "", {"properties": {"namespace": {}, "cluster": {}}})
    assert settle(idle, {}, "anything idle in tema-c", where, first=True) == {"namespace": "team-c"}
    pending = ToolDef(
        "explain_pending", "", {"properties": {"namespace": {}, "job": {}, "pod": {}}}
    )
    ask = "z-9 in team-c: no pod has come up for ages"
    got = settle(pending, {"job": "has", "pod": "has"}, ask, (["team-c"], *where[1:]), first=True)
    assert got == {"namespace": "team-c", "job": "z-9"}  # named like no pod, not after "pod"
    logs = ToolDef("pod_logs", "", {"properties": {"namespace": {}, "job": {}, "pod": {}}})
    ask = "output of z-9-0 from the container before it restarted, team-c"
    got = settle(logs, {"namespace": "team-c"}, ask, (["team-c"], *where[1:]), first=True)
    assert got == {"namespace": "team-c", "pod": "z-9-0", "previous": True}  # the one name typed
    jobs = ToolDef("list_jobs", "", {"properties": {"namespace": {}, "status": {}}})
    got = settle(jobs, {"namespace": "team-c"}, "whcih jobs faild in team-c", where, first=True)
    assert got == {"namespace": "team-c", "status": "failed"}  # a status typed with a slip


def test_a_name_typed_after_pod_is_the_pod_not_its_container() -> None:
    logs = ToolDef("pod_logs", "", {"properties": {"namespace": {}, "pod": {}, "container": {}}})
    args = {"namespace": "team-c", "container": "w-12", "previous": True}
    got = settle_roles(
        args,
        list(logs.input_schema["properties"]),
        "pod w-12 (team-c) - previous container logs",
        [],
        CLUSTERS,
    )
    assert got == {"namespace": "team-c", "pod": "w-12", "previous": True}


def test_a_namespace_typed_with_a_slip_is_the_shown_one_but_a_write_keeps_it() -> None:
    where = ([], CLUSTERS, ["team-c", "ml-ops"])
    read = ToolDef("gpu_workloads", "", {"properties": {"namespace": {}, "cluster": {}}})
    got = settle(read, {"namespace": "tema-c"}, "who uses gpus in tema-c", where, first=True)
    assert got == {"namespace": "team-c"}
    far = settle(read, {"namespace": "tx-q"}, "who uses gpus in tx-q", where, first=True)
    assert far == {"namespace": "tx-q"}  # typed, and no slip of a shown one: kept as typed
    write = ToolDef("cancel_job", "", {"properties": {"namespace": {}, "name": {}}}, False)
    args = {"namespace": "tema-c", "name": "sd-ft"}
    assert settle(write, args, "cancel sd-ft in tema-c", where, first=True) == args
    # a namespace the server showed is no job's name, for a write too (it then asks)
    args = {"namespace": "team-c", "name": "team-c"}
    got = settle(write, args, "sd-ft (team-c) is obsolete, cancel it", where, first=True)
    assert got == {"namespace": "team-c"}


def test_a_lone_gpu_product_and_a_name_like_word_fill_what_the_model_left_out() -> None:
    where = ([], CLUSTERS, ["team-c"])
    inv = ToolDef("gpu_inventory", "", {"properties": {"cluster": {}, "product": {}}})
    assert settle(inv, {}, "hw many h100s are free", where, first=True) == {"product": "H100"}
    assert settle(inv, {}, "free h100 or a100?", where, first=True) == {}  # two: not chosen
    assert settle(inv, {}, "is gpt2 using gpus", where, first=True) == {}  # a name, no product
    # a capital S is the product's own (L40S), a small one a plural
    assert settle(inv, {}, "how many L40S cards are unallocated", where, first=True) == {
        "product": "L40S"
    }
    assert settle(inv, {}, "any free l40s", where, first=True) == {"product": "L40"}
    job = ToolDef("get_job", "", {"properties": {"namespace": {}, "name": {}}})
    args = {"namespace": "team-c", "name": "over"}
    got = settle(job, args, "any news on the t5-3b job over in team-c", where, first=True)
    assert got == {"namespace": "team-c", "name": "t5-3b"}


def test_a_node_is_what_the_request_puts_on_or_after_node() -> None:
    where = ([], CLUSTERS, ["team-c"])
    util = ToolDef("gpu_utilization", "", {"properties": {"namespace": {}, "node": {}}})
    got = settle(util, {"namespace": "n-1"}, "how hot are the GPUs on n-1", where, first=True)
    assert got == {"node": "n-1"}  # no namespace the server showed: the node it runs on
    inv = ToolDef("gpu_inventory", "", {"properties": {"node": {}, "cluster": {}}})
    assert settle(inv, {"node": "1g.10gb"}, "unused MIG 1g.10gb slices", where, first=True) == {}
    ask = "before resuming sd-ft in team-c, are there free gpus?"
    assert settle(inv, {"node": "sd-ft"}, ask, where, first=True) == {}  # "in team-c": no node
    ask = "sm occupancy for h200-0 across the past 12h"  # named as nodes are: a node
    assert settle(util, {"namespace": "h200-0"}, ask, where, first=True) == {"node": "h200-0"}
    spaces = (["h200-0"], CLUSTERS, ["team-c"])  # "for h200-0": where a namespace may go too
    assert settle(util, {"namespace": "h200-0"}, ask, spaces, first=True) == {"node": "h200-0"}
    kept = settle(inv, {"node": "n-1"}, "details of node n-1", where, first=True)
    assert kept == {"node": "n-1"}
    pods = ToolDef("gpu_workloads", "", {"properties": {"namespace": {}, "cluster": {}}})
    got = settle(pods, {"namespace": "n-1"}, "who runs on n-1", where, first=True)
    assert got == {}  # a node, which this tool does not filter by: no namespace
    # named as nodes are, after their GPU, and not "in" a namespace: a node wherever it stands
    got = settle(util, {"namespace": "h100-7"}, "h100-7: how busy is it", where, first=True)
    assert got == {"node": "h100-7"}
    got = settle(util, {"namespace": "h100-7"}, "usage in h100-7", where, first=True)
    assert "node" not in got  # "in h100-7": the user's namespace, even an odd one
    # the one node an ask names, left out by the model, is filled in; never a job's name
    got = settle(util, {}, "how busy it has been (h200-3)", where, first=False)
    assert got == {"node": "h200-3"}
    assert settle(util, {}, "how busy is job l4-ft in team-c", where, first=True) == {
        "namespace": "team-c"
    }


def test_an_ask_naming_two_clusters_reads_every_cluster() -> None:
    inv = ToolDef("gpu_inventory", "", {"properties": {"cluster": {}, "product": {}}})
    ask = "free H100s on gpu-east versus gpu-west"
    got = settle(
        inv, {"cluster": "gpu-east", "product": "H100"}, ask, ([], CLUSTERS, []), first=True
    )
    assert got == {"product": "H100"}


def test_logs_searched_for_a_word_look_for_it_and_never_for_a_name() -> None:
    logs = ToolDef("pod_logs", "", {"properties": {"namespace": {}, "job": {}, "grep": {}}})
    where = ([], CLUSTERS, ["team-c"])
    args = {"namespace": "team-c", "job": "sd-ft", "grep": "sd-ft"}
    got = settle(logs, args, "search the sd-ft logs in team-c for Traceback", where, first=True)
    assert got == {"namespace": "team-c", "job": "sd-ft", "grep": "Traceback"}
    got = settle(logs, args, "logs of sd-ft in team-c", where, first=True)
    assert got == {"namespace": "team-c", "job": "sd-ft"}
    ask = "did sd-ft in team-c print OOM anywhere in its logs"  # a capitalised term printed
    assert settle(logs, args, ask, where, first=True)["grep"] == "OOM"
    ask = "what did sd-ft in team-c print"
    assert "grep" not in settle(logs, args, ask, where, first=True)


def test_jobs_one_could_resume_are_the_suspended_ones() -> None:
    from mcp_kube.llm.roles import settle_choices

    got = settle_choices("list_jobs", {"namespace": "team-c"}, "jobs in team-c I could resume")
    assert got == {"namespace": "team-c", "status": "suspended"}
    frozen = settle_choices("list_jobs", {"namespace": "team-c"}, "team-c's frozen jobs")
    assert frozen == {"namespace": "team-c", "status": "suspended"}


def test_a_pods_name_the_server_never_showed_as_a_namespace_is_none() -> None:
    """ "which node is train-0 on": the model's namespace is a pod's name (none the server
    showed, named like a Job's pod, not placed as a namespace); one typed "in" stays."""
    where = ([], CLUSTERS, ["team-c", "ml-ops"])
    read = ToolDef("gpu_workloads", "", {"properties": {"namespace": {}, "cluster": {}}})
    assert (
        settle(read, {"namespace": "train-0"}, "which node is train-0 on", where, first=True) == {}
    )
    kept = settle(read, {"namespace": "ns-0"}, "who uses gpus in ns-0", where, first=True)
    assert kept == {"namespace": "ns-0"}


def test_a_name_right_before_pod_is_a_pod() -> None:
    where = ([], CLUSTERS, ["team-c"])
    logs = ToolDef("pod_logs", "", {"properties": {"namespace": {}, "job": {}, "pod": {}}})
    args = {"namespace": "team-c", "job": "trn-2-launcher"}
    ask = "trn-2-launcher pod in team-c restarted; 200 lines"
    got = settle(logs, args, ask, where, first=True)
    assert got == {"namespace": "team-c", "pod": "trn-2-launcher"}


def test_a_place_after_a_comma_is_no_pod_and_a_namespace_slip_no_job() -> None:
    where = ([], CLUSTERS, ["team-c", "ml-platform"])
    logs = ToolDef("pod_logs", "", {"properties": {"namespace": {}, "job": {}, "pod": {}}})
    args = {"namespace": "ml-platform", "pod": "ml-platform"}
    ask = "det2-r101-0 (a pod, ml-platform) - 25 most recent lines"
    assert settle(logs, args, ask, where, first=True) == {
        "namespace": "ml-platform",
        "pod": "det2-r101-0",
    }
    why = ToolDef("explain_pending", "", {"properties": {"namespace": {}, "job": {}}})
    args = {"namespace": "ml-platform", "job": "ml-plaform"}
    assert settle(why, args, "ml-plaform work stil pendng", where, first=True) == {
        "namespace": "ml-platform"
    }
