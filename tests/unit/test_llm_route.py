"""The read tools a request's words point at: a narrower choice for a small model."""

from __future__ import annotations

import pytest

from mcp_kube.llm.route import SUBJECTS, route, spelled

TOOLS = list(SUBJECTS)


@pytest.mark.parametrize(
    ("request_", "tool"),
    [
        ("tail of the output of pod x-0 in team-c", "pod_logs"),
        ("any warnings about node n-3?", "list_events"),
        ("how much of team-c's quota is left", "gpu_quota"),
        ("why is z-2 not scheduled yet in team-c", "explain_pending"),
        ("where would 6 GPUs fit for team-c", "recommend_placement"),
        ("which GPUs are idle in team-c", "idle_gpus"),
        ("how busy were the GPUs of team-c today", "gpu_utilization"),
        ("gpu-hours of team-c last week", "gpu_usage_report"),
        ("y wont z-2 schedule in team-c", "explain_pending"),  # "y", a name between
        ("how many GPUs is team-c allowed to use", "gpu_quota"),  # a team's allowance
        ("am I allowed to submit jobs to team-c?", "whoami"),  # one's own rights
        ("whos got gpus in team-c", "gpu_workloads"),
        ("who's hogging the H100s", "gpu_workloads"),
        ("who else is on GPUs in team-c?", "gpu_workloads"),
        ("tell me about node mi300x-0", "gpu_inventory"),
        ("any scheduling failures in team-c?", "list_events"),
        ("is there enough room for an 8-GPU job?", "recommend_placement"),
        ("find me a node for a job that needs 6 GPUs", "recommend_placement"),
        ("can anything with 16 GPUs be scheduled right now?", "recommend_placement"),
        ("how saturated are the A100s", "gpu_utilization"),
        ("gpu hogs in the past 3 days", "gpu_usage_report"),
        ("which account is this server using", "whoami"),
        ("what kubernetes release is c-2 on", "list_clusters"),
        ("is c-2 reachable?", "list_clusters"),
        ("a couple of L4s for team-c, where", "recommend_placement"),
        ("can a 7-GPU job run anywhere", "recommend_placement"),
        ("is x-0 in team-c crashing?", "pod_logs"),
        ("which GPUs did nothing all morning", "idle_gpus"),
        ("what is z-2 in team-c blocked on", "explain_pending"),
        ("is there a node that could take a 2-GPU job", "recommend_placement"),
        ("whoose using the L4s", "gpu_workloads"),  # a slip of "whose"
        ("who could delete jobs in team-c", "whoami"),
        ("could an 8-GPU job be placed right now?", "recommend_placement"),
        ("who runs on node n-3", "gpu_workloads"),
        ("which cluster is z-2 from team-c running on?", "get_job"),
        ("give me a GPU count per node", "gpu_inventory"),
        ("any L4 nodes with room left?", "gpu_inventory"),
        ("what's consuming GPUs in team-c right now", "gpu_workloads"),
        ("show the stack trace of pod z-2-0", "pod_logs"),  # "stack" is no slip of "stuck"
        ("was anything evicted in team-c?", "list_events"),
        ("suggest a spot for 4 L4s", "recommend_placement"),
        ("chargeback per namespace for the last 30 days", "gpu_usage_report"),
        ("are the GPUs actually doing work?", "gpu_utilization"),
        ("SM activity on node n-3", "gpu_utilization"),
        ("which credentials does the server use", "whoami"),
        ("show me what happened to z-9 in team-c", "get_job"),
        ("I'd like to know whether I could pause jobs in team-c", "whoami"),
        ("rbac check for me", "whoami"),
        ("what GPU models do we have", "gpu_inventory"),
        ("what's eating GPUs in team-c", "gpu_workloads"),
        ("anything weird happening in team-c?", "list_events"),
        ("what node would you put a 4xL4 job on", "recommend_placement"),
        ("how hot are the GPUs on n-1", "gpu_utilization"),
        ("memory usage on the GPUs of team-c", "gpu_utilization"),
        ("zombie GPU allocations in team-c", "idle_gpus"),
        ("how many completions does z-3 in team-c have", "get_job"),
        ("utilisaton per node", "gpu_utilization"),
        ("z-2 never got a node, team-c - what gives?", "explain_pending"),
        ("what prevents z-2 in team-c from running", "explain_pending"),
        ("any news on z-5 in team-c?", "get_job"),
        ("how big is the GPU fleet", "gpu_inventory"),
        ("is team-c at its GPU ceiling?", "gpu_quota"),
        ("could 5 GPUs land on one node?", "recommend_placement"),
        ("pick a node for nine GPUs", "recommend_placement"),
        ("who do you run as", "whoami"),
        ("cluster names?", "list_clusters"),
        ("are the H100s working hard", "gpu_utilization"),
        ("pend reason z-8 team-c", "explain_pending"),  # ops shorthand
        ("ctx list", "list_clusters"),
        ("q: a100s avail on c-2?", "gpu_inventory"),
        ("gpu mem by node", "gpu_utilization"),
        ("wait z-8 team-c", "wait_job"),
        ("what has kubernetes recorded about z-8 lately", "list_events"),
        ("is z-9 (team-c) unschedulable?", "explain_pending"),
        ("z-9 was submitted long ago and nothing runs", "explain_pending"),
        ("where has a 1-GPU pod the best chance", "recommend_placement"),
        ("tensor core activity on the h100s", "gpu_utilization"),
        ("number of H100s on c-2", "gpu_inventory"),
        ("recent happenings on node n-4", "list_events"),
        ("what happened to node n-4", "list_events"),
        ("z-9 in team-c sat for ages without starting, why?", "explain_pending"),
        ("check on z-9 in team-c", "get_job"),
        ("the h100s: who's on them", "gpu_workloads"),
        ("would a single-L4 notebook land anywhere today", "recommend_placement"),
        ("z-9 (team-c) is parked and never gets a slot. reason?", "explain_pending"),
        ("z-9 in team-c: no pod has come up for ages, what's the hold up", "explain_pending"),
        ("find a node for 4 gpus for them", "recommend_placement"),
        ("cards that have done zilch for 12h in team-c", "idle_gpus"),
        ("did c-2 kick any team-c pods off their nodes?", "list_events"),
        ("sit on job z-9 in team-c and tell me how it ends", "wait_job"),
        ("can I see what z-9 printed before it went down?", "pod_logs"),  # a request, no rights
        ("which namespaces can I see jobs in", "whoami"),
        ("the gpu totals for c-2", "gpu_inventory"),
        ("what node did z-0 end up on", "gpu_workloads"),  # where it went, not where it would
        ("pods grabbing GPUs across the fleet", "gpu_workloads"),  # "fleet": said by the way
        ("z-3's pods in team-c printed anything about 'reward'?", "pod_logs"),  # "pods": whose
        ("logs of job z-1 in team-c, the copy that runs on c-2", "pod_logs"),  # a verb, no runs
        ("c-2 cluster: accelerator count, busy or not", "gpu_inventory"),  # a state either way
        ("anything kubernetes complained about regarding z-3, namespace team-c", "list_events"),
        ("give me the clusters", "list_clusters"),
        ("keep watching z-3 in team-c and report back once it has ended", "wait_job"),
        ("how much gpu memroy is in use on n-4", "gpu_utilization"),  # a slip of memory
        ("team-c's allotment of accelerators, how much is left?", "gpu_quota"),
        ("which pods are on it (node n-2)", "gpu_workloads"),  # "pods on": who runs there
        ("c-2 cluster: the gpu hogs right now", "gpu_workloads"),  # hogs now: who holds them
        ("the biggest gpu hogs this month", "gpu_usage_report"),
        ("what's been going on with node n-5 lately", "list_events"),
        ("and after that why the first one waits", "explain_pending"),
        ("a slot for eleven gpus, does one exist", "recommend_placement"),
        ("z-3 in team-c never kicked off; what's the obstacle", "explain_pending"),
        ("is there anywhere that would accept a two-dozen-GPU workload", "recommend_placement"),
        ("their pods got kicked off overnight", "list_events"),  # put off their nodes
        ("team-c's accelerators - how utilzed are they", "gpu_utilization"),
        ("could team-c fit two more H100s inside its quota", "gpu_quota"),
        ("then the clusters you serve", "list_clusters"),
        ("any failures in team-c?", "list_jobs"),
        ("z-2 should be running in team-c by now but it is not", "explain_pending"),
        ("node suggestion - pair of a100", "recommend_placement"),
        ("how big is the gpu share team-c gets", "gpu_quota"),
        ("what is holding job z-17 back in team-c", "explain_pending"),
        ("no submit: could c-2 take an 8-gpu H100 job right now", "recommend_placement"),
        ("z-3-0 pod in team-c - anything recorded against it?", "list_events"),
        ("who used how many gpu hrs, trailing 3 days", "gpu_usage_report"),  # hours, no count
        ("tell me who I am on c-2", "whoami"),
    ],
)
def test_a_named_subject_narrows_the_choice_to_its_tool(request_: str, tool: str) -> None:
    got = route(request_, TOOLS)
    assert tool in got
    assert len(got) <= 3, got


def test_a_request_naming_no_subject_keeps_every_tool() -> None:
    assert route("hello there", TOOLS) == TOOLS


def test_only_offered_tools_are_returned_in_their_order() -> None:
    assert route("logs and events of x-0", ["list_events", "whoami", "pod_logs"]) == [
        "list_events",
        "pod_logs",
    ]
    assert route("logs of x-0", ["whoami"]) == ["whoami"]  # nothing offered matches: all


def test_a_decisive_subject_leaves_only_its_tool() -> None:
    assert route("may I delete jobs in team-c?", TOOLS) == ["whoami"]
    assert route("gpus under 3 % busy for a day", TOOLS) == ["idle_gpus"]


def test_a_name_is_not_a_subject() -> None:
    assert "gpu_inventory" not in route("logs of mig-infer-0", TOOLS)


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("qouta of team-c", "quota"), ("logz for x-0", "logs"), ("invnetory", "inventory")],
)
def test_a_subject_word_typed_with_one_slip_still_routes(typed: str, meant: str) -> None:
    assert meant in spelled(typed).lower()
    assert route(typed, TOOLS) == route(spelled(typed), TOOLS) != TOOLS


@pytest.mark.parametrize(
    ("typed", "tool"),
    [("gpus wasting away in team-c", "idle_gpus"), ("stats of the fleet", "gpu_inventory")],
)
def test_a_word_one_slip_from_another_subject_word_keeps_its_own(typed: str, tool: str) -> None:
    # "wasting" names idle GPUs itself (no slip of "waiting"); "stats" is no slip of "status"
    assert spelled(typed) == typed
    assert route(typed, TOOLS) == [tool]


def test_a_singular_is_no_slip_of_its_plural() -> None:
    assert (
        spelled("which cluster has the most free GPUs?") == "which cluster has the most free GPUs?"
    )
    assert "list_clusters" not in route("which cluster has the most free GPUs?", TOOLS)


def test_names_are_never_respelled() -> None:
    """(Respelling serves routing only: the arguments come from the words as typed.)"""
    assert spelled("job lgos-1 in team-c") == "job lgos-1 in team-c"
    assert spelled("pods of node qouta-0") == "pods of node qouta-0"


def test_a_why_about_a_waiting_job_is_explain_pending_whatever_else_it_names() -> None:
    assert route("r-2 (team-c) not admitted by kueue, reason?", TOOLS) == ["explain_pending"]
    assert "gpu_quota" in route("is the kueue queue of team-c admitting anything?", TOOLS)


def test_where_can_i_is_no_question_about_rights() -> None:
    assert "whoami" not in route("where can I run a job needing 2 GPUs", TOOLS)
    assert route("can I delete jobs in team-c?", TOOLS) == ["whoami"]


def test_a_job_named_with_no_subject_asks_where_it_stands() -> None:
    assert route("would z-9 survive a node drain? just asking", TOOLS) == ["get_job"]
    assert route("hello there in team-c", TOOLS) == TOOLS  # a namespace is no job
    assert route("is c-2 fine?", TOOLS, known={"c-2"}) == TOOLS  # nor is a known cluster
    assert route("is c-2 fine?", TOOLS) == ["get_job"]


def test_a_status_word_about_one_job_asks_for_that_job() -> None:
    assert route("did t5-large in team-c actually succeed?", TOOLS) == ["get_job"]
    assert route("has t5-large in team-c succeeded?", TOOLS) == ["get_job"]
    assert route("which jobs in team-c succeeded?", TOOLS) == ["list_jobs"]


def test_a_question_about_changing_one_job_asks_for_that_job() -> None:
    assert route("how many GPUs would deleting z-4 in team-c hand back", TOOLS) == ["get_job"]
    assert route("how's z-4 in team-c going", TOOLS) == ["get_job"]
    assert route("how many GPUs are free", TOOLS) == ["gpu_inventory"]


def test_a_yes_or_no_about_one_jobs_end_asks_for_its_state_not_its_log() -> None:
    assert route("did z-3 in team-c crash?", TOOLS) == ["get_job"]
    assert route("has z-3 in team-c failed", TOOLS) == ["get_job"]
    assert "pod_logs" in route("is z-3 in team-c crashing", TOOLS)  # ongoing: its log
    assert "pod_logs" in route("logs of z-3, it crashed", TOOLS)


def test_fitting_in_a_quota_is_a_quota_question_and_a_job_in_the_queue_is_waiting() -> None:
    assert "recommend_placement" not in route("would z-5 fit in the quota of team-c", TOOLS)
    assert "gpu_quota" in route("would z-5 fit in the quota of team-c", TOOLS)
    assert route("where would 6 GPUs fit", TOOLS) == ["recommend_placement"]
    assert route("z-5 has sat in the queue in team-c since noon", TOOLS) == ["explain_pending"]
    assert route("what's blocking z-5 in team-c", TOOLS) == ["explain_pending"]
    assert "gpu_quota" in route("remaining quota in the research queue", TOOLS)


def test_what_a_job_is_printing_is_its_log() -> None:
    assert route("what is z-5 in team-c printing", TOOLS) == ["pod_logs"]


def test_gpu_load_is_utilization() -> None:
    assert route("GPU load on node n-4", TOOLS) == ["gpu_utilization"]


def test_which_things_can_i_reach_is_no_question_about_rights() -> None:
    assert "whoami" not in route("which clusters can I reach?", TOOLS)
    assert route("which jobs may I cancel in team-c?", TOOLS) == ["whoami"]
    assert route("which namespaces can I see jobs in", TOOLS) == ["whoami"]  # one's rights
    assert route("am i even able to delete jobs in team-c", TOOLS) == ["whoami"]


def test_following_a_job_outranks_reading_its_state_once() -> None:
    assert route("let me know when z-9 in team-c is done", TOOLS) == ["wait_job"]


def test_the_gpu_picture_is_the_inventory_and_how_much_was_used_is_usage() -> None:
    assert route("the GPU situation on c-2", TOOLS) == ["gpu_inventory"]
    assert route("how much has team-c used this month", TOOLS) == ["gpu_usage_report"]


def test_what_keeps_a_job_from_scheduling_or_getting_going_is_why_it_waits() -> None:
    assert route("what keeps z-3 from scheduling in team-c", TOOLS) == ["explain_pending"]
    assert route("z-3 never got going, team-c", TOOLS) == ["explain_pending"]
    assert route("z-3 hasn't got started in team-c", TOOLS) == ["explain_pending"]


def test_whether_it_completed_asks_for_the_jobs_state() -> None:
    assert route("z-3 in team-c: did it complete?", TOOLS) == ["get_job"]
    assert route("has that one finished yet", TOOLS) == ["get_job"]


def test_a_state_either_way_names_no_subject() -> None:
    assert route("total accelerator count on c-2, busy or not", TOOLS) == ["gpu_inventory"]
    assert route("how busy is c-2", TOOLS) == ["gpu_utilization"]


def test_a_known_place_typed_with_a_slip_is_no_job() -> None:
    assert route("ml-platfrom: how much is left?", TOOLS, {"ml-platform"}) != ["get_job"]
    assert route("ml-platfrom: how much is left?", TOOLS) == ["get_job"]  # unknown: a job


def test_a_stance_on_ones_rights_asks_nothing_about_them() -> None:
    assert route("I'm not allowed to change anything", TOOLS) == TOOLS  # no subject named
    assert route("I'm only allowed to look", TOOLS) == TOOLS
    assert route("am I allowed to cancel z-3 in team-c", TOOLS) == ["whoami"]


def test_a_job_that_belongs_somewhere_is_no_question_who_holds_gpus() -> None:
    assert "gpu_workloads" not in route("z-3 belongs to team-c", TOOLS)
    assert "gpu_workloads" in route("which gpus belong to team-c", TOOLS)


def test_gpu_memory_in_use_is_utilization_not_a_usage_report() -> None:
    assert route("how much gpu memory is in use on n-4", TOOLS) == ["gpu_utilization"]
    assert "gpu_usage_report" in route("how much gpu time has team-c used", TOOLS)


def test_a_job_a_node_would_take_is_placement_but_time_it_would_take_is_not() -> None:
    assert route("anywhere that would accept a 24-gpu workload", TOOLS) == ["recommend_placement"]
    assert route("it would take a while for z-3 in team-c to finish?", TOOLS) != [
        "recommend_placement"
    ]


def test_holding_a_job_back_is_why_it_waits_not_who_holds_gpus() -> None:
    assert route("what is holding job z-17 back in team-c", TOOLS) == ["explain_pending"]
    assert "gpu_workloads" in route("who is holding gpus in team-c", TOOLS)


def test_waiting_on_quota_asks_why_it_waits() -> None:
    assert route("is z-2 in team-c waiting on quota or on nodes", TOOLS) == ["explain_pending"]
