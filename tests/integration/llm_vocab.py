"""The CI model's vocabulary (no weights): what a prompt becomes as token ids, the way the
backend tokenizes it (special tokens on), and which ids are control tokens.

Without llama-cpp-python or the CI model the callers skip, except under ``CI`` where they fail:
there the check must run."""

from __future__ import annotations

from typing import Any

from mcp_helpers import cannot_run

from mcp_kube.llm.manifest import ModelMissing, by_role, check

# the spellings of the ChatML markers; each must be one control token of the vocabulary
SPECIALS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")


def ci_vocab() -> Any:
    """``llama_cpp.Llama`` over the CI model's vocabulary only."""
    try:
        import llama_cpp
    except ImportError as e:
        cannot_run(f"llama-cpp-python is not installed: {e}")
    try:
        path = check(by_role("ci"))
    except ModelMissing as e:
        cannot_run(f"the CI model is not installed: {e}")
    return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)


def tokens(llm: Any, text: str) -> list[int]:
    """As the backend tokenizes a prompt: no BOS, special tokens parsed."""
    return list(llm.tokenize(text.encode(), add_bos=False, special=True))


def control_ids(llm: Any) -> dict[int, str]:
    """Every control or user-defined token of the vocabulary (what text must never become),
    with its piece."""
    import llama_cpp

    flags = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    ids = {
        i: llm.detokenize([i], special=True).decode(errors="replace")
        for i in range(llm.n_vocab())
        if llm._model.token_get_attr(i) & flags
    }
    for s in SPECIALS:
        [one] = tokens(llm, s)  # the marker is one token, and a control one
        assert ids.get(one) == s, (s, one)
    return ids
