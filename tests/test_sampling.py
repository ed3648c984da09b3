"""llmkit.sampling: presets, version differences, and the engine's own next-token distribution."""

from __future__ import annotations

import math

import pytest

from llmkit import sampling as S
from llmkit.chat import chat_prompt
from llmkit.logprobs import to_prob

vllm = pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
PROMPT = "写一首关于秋天的诗"


def test_presets_are_valid_sampling_params():
    assert list(S.PRESETS) == ["greedy", "precise", "balanced", "creative"]
    for name in S.PRESETS:
        params = vllm.SamplingParams(**S.preset(name, max_tokens=8))
        assert params.max_tokens == 8
    assert S.preset("greedy") == {"temperature": 0.0}
    assert S.preset("balanced", temperature=0.2)["temperature"] == 0.2
    assert S.PRESETS["precise"].params["temperature"] < S.PRESETS["creative"].params["temperature"]
    with pytest.raises(KeyError, match="choose one of"):
        S.preset("wild")
    assert len(S.presets_table()) == 4


def test_top_k_off_is_this_versions_default():
    assert S.top_k_off() == vllm.SamplingParams().top_k in (0, -1)
    assert vllm.SamplingParams(top_k=S.top_k_off()).top_k == S.top_k_off()
    assert S.vllm_version() == vllm.__version__


def test_greedy_with_n_above_one_is_rejected():
    with pytest.raises(S.sampling_errors(), match="n must be 1"):
        vllm.SamplingParams(temperature=0.0, n=2)


def test_repeat_fraction():
    assert S.repeat_fraction([]) == 0.0 and S.repeat_fraction([1, 2, 3]) == 0.0
    assert S.repeat_fraction([5, 5, 5, 5]) == 0.75 and S.repeat_fraction([1, 2, 1, 2]) == 0.5


@pytest.mark.engine
def test_raw_engine_refuses_settings_it_would_ignore(llm):
    assert S.logprobs_mode(llm) == "raw_logprobs"
    with pytest.raises(ValueError, match="processed_logprobs"):
        S.next_token_distribution(llm, PROMPT, temperature=0.5)
    dist = S.next_token_distribution(llm, PROMPT, k=5, top_k=0)      # "off" is fine in either spelling
    assert 5 <= len(dist.candidates) <= 6 and dist.mode == "raw_logprobs" and dist.sampled is not None


@pytest.mark.engine
def test_chat_prompt_ends_with_the_answer_prefix(processed_llm):
    text = chat_prompt(processed_llm, PROMPT, "《秋思》\n")
    assert PROMPT in text and text.endswith("《秋思》\n") and text.index(PROMPT) < text.index("《秋思》")


@pytest.mark.engine
def test_temperature_divides_the_logits(processed_llm):
    assert S.logprobs_mode(processed_llm) == "processed_logprobs"
    base = S.next_token_distribution(processed_llm, PROMPT)
    for t in (0.5, 2.0):
        hot = S.next_token_distribution(processed_llm, PROMPT, temperature=t)
        top = base.token_ids()[0]
        assert hot.token_ids()[0] == top
        for tid in base.token_ids()[1:10]:
            expected = (base.logprob(tid) - base.logprob(top)) / t
            assert math.isclose(hot.logprob(tid) - hot.logprob(top), expected, rel_tol=1e-3, abs_tol=1e-3)


@pytest.mark.engine
def test_top_k_top_p_min_p_cut_the_tail(processed_llm):
    base = S.next_token_distribution(processed_llm, PROMPT)
    probs = [to_prob(c.logprob) for c in base.candidates]
    k5 = S.next_token_distribution(processed_llm, PROMPT, top_k=5)
    assert 5 <= len(k5.candidates) <= 6 and k5.removed and math.isclose(k5.shown_mass(), 1.0, rel_tol=1e-4)
    assert all(base.prob(t) >= probs[4] * (1 - 1e-4) for t in k5.token_ids())
    p = probs[0] + probs[1] / 2                                       # keeps exactly the top two
    tp = S.next_token_distribution(processed_llm, PROMPT, top_p=p)
    assert sum(base.prob(t) for t in tp.token_ids()) >= p - 1e-4 and len(tp.candidates) == 2
    mp = S.next_token_distribution(processed_llm, PROMPT, min_p=0.1)
    assert all(base.prob(t) >= 0.1 * probs[0] * (1 - 1e-4) for t in mp.token_ids())


@pytest.mark.engine
def test_penalties_on_the_first_token(processed_llm):
    prompt = chat_prompt(processed_llm, PROMPT, "《秋思》\n")
    prompt_ids = set(processed_llm.get_tokenizer().encode(prompt))
    base = S.next_token_distribution(processed_llm, prompt)
    presence = S.next_token_distribution(processed_llm, prompt, presence_penalty=2.0, frequency_penalty=2.0)
    for tid in base.token_ids()[:10]:                # no tokens generated yet: nothing to penalize
        assert math.isclose(presence.logprob(tid), base.logprob(tid), abs_tol=1e-4)
    rep = S.next_token_distribution(processed_llm, prompt, k=20, repetition_penalty=2.0)
    in_prompt = [t for t in base.token_ids()[:20] if t in prompt_ids]
    assert in_prompt, "the test prompt should share a likely token with the top 20"
    for tid in in_prompt:                            # repetition_penalty also counts the prompt
        assert rep.prob(tid) < base.prob(tid)


@pytest.mark.engine
def test_repetition_penalty_reduces_repeats(processed_llm):
    prompt = chat_prompt(processed_llm, "写一首七言绝句")
    plain = processed_llm.generate([prompt], vllm.SamplingParams(temperature=0.0, max_tokens=48), use_tqdm=False)
    penal = processed_llm.generate([prompt], vllm.SamplingParams(temperature=0.0, max_tokens=48,
                                                                 repetition_penalty=1.3), use_tqdm=False)
    assert S.mean_repeat_fraction(penal) < S.mean_repeat_fraction(plain)


@pytest.mark.engine
def test_processed_at_neutral_settings_is_the_raw_distribution(llm, processed_llm):
    """Notebook 04's baseline: with nothing to process, processed logprobs are the model's own (raw) ones."""
    prompt = chat_prompt(llm, PROMPT, "《秋夕》\n")
    raw = S.next_token_distribution(llm, prompt, k=20)
    processed = S.next_token_distribution(processed_llm, prompt, k=20)
    assert raw.mode == "raw_logprobs" and processed.mode == "processed_logprobs"
    assert raw.token_ids()[:10] == processed.token_ids()[:10]
    for tid in raw.token_ids()[:10]:
        assert math.isclose(raw.logprob(tid), processed.logprob(tid), abs_tol=1e-3)


@pytest.mark.engine
def test_top_p_keeps_the_smallest_set_that_reaches_p(processed_llm):
    """The share Z that top_p=0.1 keeps: at least 0.1, and less than 0.1 plus the top token (the smallest such set),
    with every survivor scaled by 1/Z — also for a flat distribution whose nucleus is larger than the top 20."""
    prompt = chat_prompt(processed_llm, PROMPT, "《秋夕》\n银烛秋光冷画屏，")
    base = S.next_token_distribution(processed_llm, prompt, k=20)
    nucleus = S.next_token_distribution(processed_llm, prompt, k=20, top_p=0.1)
    both = [t for t in nucleus.token_ids() if t in base.token_ids()]
    ratios = [base.prob(t) / nucleus.prob(t) for t in both]
    z = sum(base.prob(t) for t in both) / sum(nucleus.prob(t) for t in both)
    assert all(abs(r / z - 1) < 0.05 for r in ratios), "one 1/Z for every survivor"
    top = to_prob(base.candidates[0].logprob)
    assert 0.1 - 1e-3 <= z < 0.1 + top + 1e-3
    if nucleus.complete():
        assert math.isclose(nucleus.shown_mass(), 1.0, abs_tol=1e-2), "the survivors are renormalized"


@pytest.mark.engine
def test_a_seed_reproduces_and_a_stop_string_cuts_the_same_draws(processed_llm):
    """Same seed, same sample; with a stop string, the same text cut just before the first occurrence."""
    prompt = chat_prompt(processed_llm, "写一首七言绝句")
    params = dict(temperature=0.8, max_tokens=120, seed=0)
    full = processed_llm.generate([prompt], vllm.SamplingParams(**params), use_tqdm=False)[0].outputs[0]
    again = processed_llm.generate([prompt], vllm.SamplingParams(**params), use_tqdm=False)[0].outputs[0]
    assert full.token_ids == again.token_ids
    stop = "。" if "。" in full.text else full.text[len(full.text) // 2]
    cut = processed_llm.generate([prompt], vllm.SamplingParams(**params, stop=[stop]), use_tqdm=False)[0].outputs[0]
    assert (cut.finish_reason, cut.stop_reason) == ("stop", stop)
    assert cut.text == full.text[:full.text.index(stop)] and stop not in cut.text
