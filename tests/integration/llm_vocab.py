"""The CI model's vocabulary (no weights): what a prompt becomes as token ids, the way the
backend tokenizes it (special tokens on), which ids are control tokens, and what llama.cpp's
own grammar engine makes of a GBNF grammar over those tokens.

Without llama-cpp-python or the CI model the callers skip, except under ``CI`` where they fail:
there the check must run."""

from __future__ import annotations

import ctypes
import math
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


def grammar_sampler(llm: Any, gbnf: str) -> Any:
    """llama.cpp's grammar sampler for ``gbnf`` (root rule ``root``), or None when llama.cpp's
    parser refuses the grammar (it says why on stderr). Free it with ``llama_sampler_free``."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, gbnf.encode(), b"root")
    return sampler or None


def first_refused(llm: Any, gbnf: str, text: str) -> str | None:
    """Feed ``text``, token by token as the model would write it, then the end of generation,
    through the grammar: the first piece the grammar forbids, or None when it accepts all of
    it and may end there."""
    import llama_cpp

    sampler = grammar_sampler(llm, gbnf)
    assert sampler is not None, f"llama.cpp refused the grammar:\n{gbnf}"
    one = (llama_cpp.llama_token_data * 1)()
    candidates = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
    eos = llm.token_eos()
    try:
        for token in [*llm.tokenize(text.encode(), add_bos=False, special=False), eos]:
            one[0].id, one[0].logit, one[0].p = token, 0.0, 0.0
            candidates.size = 1
            llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
            if math.isinf(one[0].logit):  # the grammar masked this token
                return "<end>" if token == eos else llm.detokenize([token]).decode(errors="replace")
            if token != eos:
                llama_cpp.llama_sampler_accept(sampler, token)
        return None
    finally:
        llama_cpp.llama_sampler_free(sampler)
