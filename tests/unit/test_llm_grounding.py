"""Grounding of tool-call arguments: number words, units, time windows, names in their roles and
writes that ask instead of guessing (plain data, no model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mcp_kube.llm import grammar as G
from mcp_kube.llm import prompt as P
from mcp_kube.llm.grounding import clusters_spelled, numbers_of

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools.json"
CLUSTERS = ("gpu-east", "gpu-west")


def schema_of(name: str) -> dict[str, Any]:
    data = json.loads(SNAPSHOT.read_text())
    tools = data if isinstance(data, list) else data["tools"]
    return dict(next(t["inputSchema"] for t in tools if t["name"] == name))


def offered(tool: str, arg: str, request: str) -> list[Any] | None:
    """The values ``arg`` may take for ``request``: a list, None when it is not offered, or
    ``["*"]`` when its schema is kept."""
    schema = schema_of(tool)
    g = G.Grounding.of(request, known={"cluster": CLUSTERS})
    props = schema["properties"]
    got = G._grounded(arg, props[arg], g, arg in schema.get("required", ()))
    if got is None:
        return None
    return list(got["enum"]) if "enum" in got else ["*"]


@pytest.mark.parametrize(
    ("request_", "gpus"),
    [
        ("where can one H100 job run", 1),
        ("need two GPUs somewhere", 2),
        ("a job with three H100s - where?", 3),
        ("where could four A100s fit", 4),
        ("room for a pair of GPUs?", 2),
        ("where do a dozen GPUs fit", 12),
        ("anywhere that would accept a two-dozen-GPU workload", 24),
        ("a job with 3 dozen gpus", 36),
        ("an 8x H100 job, where", 8),
        ("where does a 12-GPU job fit", 12),
        ("twelve gpus, any node?", 12),
    ],
)
def test_number_words_and_units_are_counts(request_: str, gpus: int) -> None:
    assert offered("recommend_placement", "gpus", request_) == [gpus]


@pytest.mark.parametrize(
    "request_",
    [
        "submit llama-7b-ft to team-a with image reg.io/x:1 and one GPU",
        "launch x-7b in team-a, image reg.io/x:1, 1 gpu",
        "run qwen-14b in team-b with reg.io/q:2 and one GPU",
    ],
)
def test_a_digit_inside_a_name_is_never_a_count(request_: str) -> None:
    assert offered("submit_job", "gpus", request_) == [1]
    assert offered("submit_job", "gpu_product", request_) is None  # "7b" is no product
    nums = numbers_of(request_)
    assert 7 not in nums
    assert 14 not in nums


def test_cpu_only_means_no_gpus() -> None:
    assert offered("submit_job", "gpus", "start a CPU-only job lint-1 in team-a") == [0]
    assert offered("submit_job", "gpus", "start a cpu only job lint-1 in team-a") == [0]
    request = "need lint-1 started in team-a with image r/l:1; it doesn't need any GPU"
    assert offered("submit_job", "gpus", request) == [0]


def test_a_pair_needs_its_article_and_numbers_keep_their_unit() -> None:
    assert 2 not in numbers_of("pair programming notes")
    g = G.Grounding.of("need 2 gpus with 80 GiB each")
    assert g.counts("gpus", 1, 64, True) == [2]
    assert g.counts("min_gpu_memory_gib", 0, 4096, False) == [80]


@pytest.mark.parametrize(
    ("tool", "arg", "request_", "value"),
    [
        ("pod_logs", "since_seconds", "logs of job a-1 in team-a from the past 10 minutes", 600),
        ("pod_logs", "since_seconds", "logs of job a-1 in team-a, last hour", 3600),
        ("pod_logs", "since_seconds", "logs of job a-1 in team-a over the last 15 minutes", 900),
        ("gpu_usage_report", "since_hours", "gpu hours this week", 168),
        ("gpu_usage_report", "since_hours", "gpu usage for the last 7 days", 168),
        ("gpu_usage_report", "since_hours", "usage over the past 24 hours", 24),
        ("gpu_usage_report", "since_hours", "usage in the last hour", 1),
    ],
)
def test_time_windows_become_the_tools_unit(tool: str, arg: str, request_: str, value: int) -> None:
    got = offered(tool, arg, request_)
    assert got is not None
    assert value in got
    g = G.Grounding.of(request_)
    assert g.mentioned(arg)  # a window offers the argument even unnamed


def test_limits_tail_lines_and_quoted_patterns() -> None:
    assert offered("gpu_usage_report", "limit", "top ten namespaces by gpu time") == [10]
    assert offered("pod_logs", "tail_lines", "last twenty lines from pod eval-0 in team-a") == [20]
    g = G.Grounding.of("search 'Killed' in job phi-3-mini logs team-a")
    assert g.mentioned("grep")
    assert offered("pod_logs", "grep", "search 'Killed' in job phi-3-mini logs team-a") == [
        "Killed",
        "phi-3-mini",
    ]


def test_a_cluster_name_fills_only_cluster() -> None:
    request = "why is job a-1 pending in team-a on gpu-west"
    assert offered("explain_pending", "cluster", request) == ["gpu-west"]
    assert "gpu-west" not in (offered("explain_pending", "namespace", request) or [])
    assert "gpu-west" not in (offered("explain_pending", "job", request) or [])
    assert "gpu-west" not in (offered("gpu_inventory", "node", "gpus of gpu-west") or [])


def test_names_come_from_the_request_or_results_never_from_examples() -> None:
    g = G.Grounding.of("pause warmup in team-a")
    assert {"warmup", "team-a"} <= g.words
    assert "team-x" not in g.words
    assert "exp-1" not in g.words
    assert "job" not in G.Grounding.of("cancel the job x-1 in team-a").words
    from_result = G.Grounding.of("what is in team-b", ["bert-ft-0 Running"])
    assert "bert-ft-0" in from_result.words


def test_a_verbs_particle_or_a_plain_state_word_is_no_name() -> None:
    assert G.Grounding.of("kill off z-5 in team-a").objects == {"z-5"}  # not "off"
    assert G.Grounding.of("stop it, team-a's z-5 can continue running").objects == set()
    assert G.Grounding.of("pause warmup in team-a").objects == {"warmup"}  # a plain name stays


def test_a_write_missing_a_required_argument_asks() -> None:
    submit = schema_of("submit_job")
    full = "submit phi-3-mini to team-a with image registry.internal/ml/phi:3 and one GPU"
    assert G.missing(submit, G.Grounding.of(full)) == []
    no_image = "submit phi-3-mini to team-a with one GPU"
    assert G.missing(submit, G.Grounding.of(no_image)) == ["image"]
    no_gpus = "submit phi-3-mini to team-a with image registry.internal/ml/phi:3"
    assert G.missing(submit, G.Grounding.of(no_gpus)) == ["gpus"]
    assert G.missing(schema_of("cancel_job"), G.Grounding.of("cancel it")) == [
        "namespace",
        "name",
    ]
    question = G.question_for("submit_job", ["image", "gpus"])
    assert question.startswith("Which container image and GPU count")


@pytest.mark.parametrize(
    ("request_", "tools"),
    [
        ("stop job a-1 in team-a", ["cancel_job"]),
        ("kill a-1 (team-a)", ["cancel_job"]),
        ("delete mistral-7b-dpo team-b", ["cancel_job"]),
        ("pause warmup in team-a", ["suspend_job"]),
        ("put phi-3-mini (team-a) on hold", ["suspend_job"]),
        ("unpause warmup in team-a", ["resume_job"]),
        ("continue job a-1 in team-a", ["resume_job"]),
        ("launch x-1 in team-a with image r/x:1 and 1 gpu", ["submit_job"]),
        ("why is job a-1 pending in team-a?", []),
        ("which team-b jobs are on hold", []),
        ("mistral-7b-dpo in team-b won't start, why", []),
        ("may I delete jobs in team-a?", []),
        ("what happens if I cancel warmup in team-a?", []),
        ("failed runs in team-a", []),
        ("cancle a-1 in team-a", ["cancel_job"]),  # a slip of the verb is still the verb
        ("suspnd a-1 team-a", ["suspend_job"]),
        ("the resumed jobs of team-a", []),  # an inflection is no slip
        ("stop a-1 in team-a for now, we'll pick it up later", ["suspend_job"]),
        ("let a-1 in team-a continue", ["resume_job"]),  # "team-a" is no article "a"
        ("how do I cancel a job?", []),
        ("Morning! Before I start, which clusters are there?", []),
        ("y wont a-1 schedule in team-a", []),
        ("don't wait, cancel a-1 in team-a", ["cancel_job"]),
        ("no need to stop anything, list the jobs in team-a", []),
        ("without deleting it, show me job a-1 in team-a", []),
        ("let a-1 in team-a run again", ["resume_job"]),  # again: it ran before
        ("a-1 in team-a can carry on now", ["resume_job"]),
        ("shelve a-1 in team-a", ["suspend_job"]),
        ("drop a-1 from team-a", ["cancel_job"]),
        ("can a 7-GPU job run anywhere", []),  # a yes/no question about the cluster
        ("is it safe to cancel a-1 in team-a?", []),
        ("I'd like to know whether I could pause jobs in team-a", []),
        ("Can you cancel a-1 in team-a?", ["cancel_job"]),  # put to the agent: an order
        ("put a-1 in team-a to sleep for a while", ["suspend_job"]),
        ("wake a-1 in team-a back up", ["resume_job"]),
        ("thaw a-1 in team-a", ["resume_job"]),  # freeze's undoing
        ("I'm about to delete a-1 in team-a, what does it hold?", []),  # an intent, no order
        ("list team-a's jobs so I can choose which to suspend", []),
        ("I want to cancel a-1 in team-a", ["cancel_job"]),  # a wish put to the agent: an order
        ("set up a job a-2 in team-a from r/a:2", ["submit_job"]),
        ("how is team-a set up?", []),  # a question about it
        ("deploy job a-2 to team-a with image r/a:2", ["submit_job"]),
        ("remaining quota in the research queue", []),  # a queue named, none asked for
        ("queue up a-2 in team-a with image r/a:2", ["submit_job"]),
        ("logs of job stop-test in team-a", []),  # a verb inside a name is none
        ('grep the logs of a-1 in team-a for "kill"', []),  # nor one the user looks for
        ("submit a-2 in team-a with image r/ml/run:1 and 1 gpu", ["submit_job"]),
        ("spin up a job called a-2 in team-a from r/a:2", ["submit_job"]),
        ("suggest a node for a 2-GPU run", []),  # "a 2-GPU run": a noun
        ("when did a-1 in team-a start", []),
        ("who do you run as", []),
        ("who could cancel jobs in team-a? is it me?", []),  # a question about rights
        ("bring back a-1 in team-a, it was suspended", ["resume_job"]),
        ("bring a-1 in team-a back", ["resume_job"]),
        ("list the jobs in team-a that I could resume", []),
        ("pls cancell the a-1 run in team-a", ["cancel_job"]),  # a letter doubled
        ("I need to run a 2-GPU job - which node?", []),  # where it would go
        ("launch time of a-1 in team-a", []),  # a noun
        (
            "launch a-2 in team-a with image r/a:2 and 1 gpu, then tell me where it went",
            ["submit_job"],
        ),
        ("which jobs has team-a resumed", []),
        ("pretend I want to launch a job with 2 H100s, where would it go?", []),
        ("dry run only: could an 8-GPU job be placed now?", []),  # "dry run": a noun
        ("what does the log of a-1 say? cancel a-1 in team-a", ["cancel_job"]),
        ("what GPU pods run in team-a right now", []),  # a question about what runs
        ("which jobs stopped in team-a", []),
        ("park a-1 in team-a over the weekend", ["suspend_job"]),
        ("16-gpu run, placement?", []),  # "16-gpu run": a noun
        ("I need a-2 started in team-a with image r/a:2", ["submit_job"]),  # ordered as done
        ("we need the job a-1 in team-a paused for now", ["suspend_job"]),
        ("I don't want a-1 killed", []),
        ("I want to know why a-1 stopped", []),
        ("axe a-1 (team-a)", ["cancel_job"]),
        ("put a-1 in team-a on ice until monday", ["suspend_job"]),
        ("let a-1 in team-a pick up where it left off", ["resume_job"]),
        ("Hi, I run the vision team. List the jobs of team-a", []),  # "run the X team"
        ("the frozen a-1 over at team-a can be unfrozen now", ["resume_job"]),  # allowed now
        ("a-1 in team-a may now be deleted", ["cancel_job"]),
        ("which jobs can be deleted in team-a?", []),  # a question, no "now"
        ("hold a-1 in team-a until the data team is back", ["suspend_job"]),
        ("team-a wants a-1 resumed", ["resume_job"]),  # ordered as done, for someone
        ("team-a's a-1 should take a break until morning", ["suspend_job"]),
        ("a-1 in team-a needs to be suspnded for the night", ["suspend_job"]),  # with a slip
        ("which jobs are suspnded in team-a", []),
        ("a-2 should be launched in team-a using r/a:2", ["submit_job"]),
        ("which jobs should be cancelled in team-a?", []),
        ("a-1 (team-a) back on", ["resume_job"]),
        ("is a-1 in team-a back on track", []),
        ("cancel? no. show: jobs team-a", []),  # a change refused
        ("dry look only, no submit: could c-2 take an 8-gpu job", []),  # "no submit"
        ("who holds GPUs in team-a until friday?", []),
        ("new job a-2 for team-a: r/a:2 on a pair of gpus, go", ["submit_job"]),  # its image
        ("any new jobs in team-a using r/a:2?", []),
    ],
)
def test_write_tools_are_told_apart_by_their_verbs(request_: str, tools: list[str]) -> None:
    assert P.changes_asked(request_) == tools


def test_names_go_to_the_role_the_request_gives_them() -> None:
    request = "delete mistral-7b-dpo team-b gpu-west"
    assert offered("cancel_job", "name", request) == ["mistral-7b-dpo"]
    assert offered("cancel_job", "namespace", request) == ["team-b"]
    request = "logs of job bert-ft in team-b"
    assert offered("pod_logs", "namespace", request) == ["team-b"]
    assert offered("pod_logs", "job", request) == ["bert-ft"]
    assert offered("gpu_inventory", "node", "inventory of l4 gpus on node h200-1") == ["h200-1"]


def test_a_write_names_the_cluster_the_user_named() -> None:
    g = G.Grounding.of("cancel job a-1 in team-a on gpu-west", known={"cluster": CLUSTERS})
    assert "cluster" in G.for_write(schema_of("cancel_job"), g)["required"]
    plain = G.Grounding.of("cancel job a-1 in team-a", known={"cluster": CLUSTERS})
    assert "cluster" not in G.for_write(schema_of("cancel_job"), plain)["required"]


def test_a_write_states_the_gpu_count_the_user_gave() -> None:
    g = G.Grounding.of("deploy job x-4 to team-a with image r/x:4 on 1 H100")
    assert {"gpus", "gpu_product"} <= set(G.for_write(schema_of("submit_job"), g)["required"])


def test_number_words_and_glued_counts() -> None:
    assert 3 in numbers_of("a trio of H100s - where can that run?")
    assert 6 in numbers_of("half a dozen gpus")
    assert "gpu" in numbers_of("would a single-L4 notebook land anywhere")[1]  # glued count
    assert "gpu" in numbers_of("a two-gpu run")[2]
    assert 72 in numbers_of("seventy-two hours")
    assert 3 in numbers_of("trio of gpus on one node")  # opening the request
    assert P.unglue("a single-L4 notebook") == "a single L4 notebook"
    assert P.parts("what node would you put a 4xL4 job on") == [
        "what node would you put a 4x L4 job on"
    ]


def test_a_write_runs_on_the_gpus_the_user_named() -> None:
    g = G.Grounding.of("submit x-1 in team-a, image r/i:1, eight A100s")
    assert "gpu_product" in G.for_write(schema_of("submit_job"), g)["required"]
    plain = G.Grounding.of("submit x-1 in team-a, image r/i:1, eight GPUs")
    assert "gpu_product" not in G.for_write(schema_of("submit_job"), plain).get("required", [])


def test_a_question_is_not_an_order() -> None:
    assert P.changes_asked("which workloads hold accelerators on gpu-west?") == []
    assert P.changes_asked("choose me a node to drop seven gpus on") == []  # a place for them
    assert P.changes_asked("not asking you to cancel it, what is x-1's status") == []
    assert P.is_question("when did job a-1 start?")
    assert not P.is_question("has to die right away, cancel it")  # an obligation
    assert P.is_question("has it finished?")
    assert not P.is_question("Could you pause warmup in team-a?")


def test_a_request_asks_several_things_in_the_ways_people_join_them() -> None:
    assert P.parts("events of pod x-0 in team-c, then its logs") == [
        "events of pod x-0 in team-c",
        "its logs",
    ]
    assert len(P.parts("quota of team-c, after that list its jobs")) == 2
    assert len(P.parts("status of x-1 as well as its last 20 log lines")) == 2
    assert len(P.parts("idle gpus in team-c plus its gpu-hours")) == 2
    assert P.parts("pods of team-c, and whose are they?") == ["pods of team-c", "whose are they?"]
    assert P.parts("is x-1 pending, and if so which node could take it?") == [
        "is x-1 pending",
        "if so which node could take it?",
    ]
    assert P.parts("what happens if I cancel x-1?") == ["what happens if I cancel x-1?"]
    # a lone first word asks its own thing when it names a subject; a greeting opens the next
    assert P.parts("whoami? and which versions do the clusters run?") == [
        "whoami",
        "and which versions do the clusters run?",
    ]
    assert P.parts("Hi. which clusters are there?") == ["Hi. which clusters are there?"]


def test_a_later_part_starting_with_also_is_still_a_question() -> None:
    assert P.is_question("also where could it run with 4 GPUs")
    assert P.changes_asked("also where could it run with 4 GPUs") == []


def test_the_whole_request_lends_its_names_not_its_words() -> None:
    assert G.names_in("what's free on gpu-west and what is team-b's quota") == "gpu-west team-b"


def test_a_plain_word_after_job_is_no_name_when_the_name_came_first_or_a_sentence_ended() -> None:
    assert offered("get_job", "name", "any news on the t5-3b job over in team-a") == ["t5-3b"]
    assert offered("get_job", "name", "what did the x-1 job do lately? in team-a") == ["x-1"]
    assert "tell" not in G.Grounding.of("cancel a job? tell me about x-1").objects
    assert offered("cancel_job", "name", "kill job warmup in team-a") == ["warmup"]


def test_a_cluster_named_by_the_part_that_tells_it_apart_is_written_in_full() -> None:
    spelled = clusters_spelled
    assert spelled("free GPUs in the east cluster", CLUSTERS) == (
        "free GPUs in the gpu-east cluster"
    )
    assert spelled("what runs on West now", CLUSTERS) == "what runs on gpu-west now"
    assert spelled("the gpu cluster", CLUSTERS) == "the gpu cluster"  # a part both share
    assert spelled("northeast cluster, job east-1", CLUSTERS) == "northeast cluster, job east-1"
    assert spelled("east is up", CLUSTERS) == "east is up"  # not where a cluster goes
    assert spelled("who's on the cards on gpu-wset", CLUSTERS) == "who's on the cards on gpu-west"
    # one slip from both: the one whose parts begin as the typed word's do
    assert spelled("gpu-est cluster: total count", CLUSTERS) == "gpu-east cluster: total count"
    assert spelled("gpu-wast", CLUSTERS) == "gpu-west"
    assert spelled("budget on the eastern cluster", CLUSTERS) == "budget on the gpu-east cluster"
    assert spelled("on the west one, any pending pods", CLUSTERS).startswith("on the gpu-west one")
    assert spelled("gpu-wes", ["gpu-west", "gpu-wesk"]) == "gpu-wes"  # still two: neither


def test_a_name_in_parentheses_after_a_name_is_its_place() -> None:
    ground = G.Grounding.of("mt-en-de (team-a) is obsolete, cancel it")
    assert ground.in_role("name", ["mt-en-de", "team-a"]) == ["mt-en-de"]
    assert ground.in_role("namespace", ["mt-en-de", "team-a"]) == ["team-a"]


def test_an_adverb_after_a_verb_of_change_is_no_name() -> None:
    assert G.Grounding.of("pix2pix-7 - team-a - suspend temporarily").objects == frozenset()
    assert G.Grounding.of("suspend warmup in team-a").objects == {"warmup"}
