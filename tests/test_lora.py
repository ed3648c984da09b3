"""llmkit.lora: the course adapters' data, cache key and build (a short real training run with peft), the folder
checks, the slot-memory formula by hand; then against real vLLM: the engine's own LoRA buffers equal the formula,
``add_lora`` refuses bad folders and the engine keeps generating, adapters change the output and key the prefix
cache, a mixed batch runs; and a real vLLM server with ``--lora-modules``: adapters chosen by model name, loaded
and unloaded at run time, every bad input a clear error with the server still serving.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmkit import lora, tiny_poet
from llmkit.config import model_shape
from llmkit.kvcache import REFERENCE_CONFIGS

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ the training data
def test_line_share_counts_lines_of_exactly_that_length():
    texts = ["《秋》\n白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。", "朝辞白帝彩云间，千里江陵一日还。"]
    assert lora.line_share(texts, 5) == pytest.approx(4 / 6)
    assert lora.line_share(texts, 7) == pytest.approx(2 / 6)
    assert lora.line_share(["no verse at all"], 7) == 0.0 and lora.line_share([], 5) == 0.0


def test_form_poems_and_the_seeded_split():
    for name, spec in lora.ADAPTERS.items():
        poems = lora.form_poems(spec.chars)
        assert len(poems) > 50, name
        assert all(len(tiny_poet.clauses(p.text())) in (4, 8) and lora.line_share([p.text()], spec.chars) == 1.0
                   for p in poems)
        train, held = lora.split_poems(poems, spec.held_out)
        assert len(held) == spec.held_out and not {p.text() for p in held} & {p.text() for p in train}
        assert lora.held_out_texts(name) == [p.text() for p in held], "the same split every time"


def test_an_example_is_the_templated_question_then_the_poem_and_the_end_token(tiny_poet_dir):
    from transformers import AutoTokenizer

    from llmkit.chat import render

    tok = AutoTokenizer.from_pretrained(str(tiny_poet_dir))
    ids, n_prompt = lora.encode_example(tok, "写一首诗", "春眠不觉晓，处处闻啼鸟。")
    prompt = tok.decode(ids[:n_prompt])   # thinking off: a Qwen3-style template puts the empty think block here
    assert prompt == render(tok, "写一首诗") and prompt.rstrip().endswith(("assistant", "</think>")) and "写一首诗" in prompt
    assert ids[-1] == tok.eos_token_id and tok.decode(ids[n_prompt:-1]) == "春眠不觉晓，处处闻啼鸟。"


# ------------------------------------------------------------------------------------ the cache key and the build
def test_the_cache_key_follows_the_base_model(tiny_poet_dir, tmp_path):
    assert "recipe" in lora.base_fingerprint(tiny_poet_dir)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "model.safetensors").write_bytes(b"x" * 10)
    first = lora.adapter_key(other)
    assert first != lora.adapter_key(tiny_poet_dir) and "weights" in lora.base_fingerprint(other)
    (other / "model.safetensors").write_bytes(b"x" * 11)
    assert lora.adapter_key(other) != first, "other weights: another adapter"
    assert lora.base_fingerprint("Org/Some-Model") == "hub:Org/Some-Model"
    assert lora.adapter_dir("qiyan", tiny_poet_dir).name.startswith("qiyan-v1-")
    assert not lora.is_built(tmp_path)
    with pytest.raises(KeyError, match="qiyan"):
        lora.adapter_dir("nope", tiny_poet_dir)


@pytest.fixture(scope="module")
def quick_adapter(tiny_poet_dir, tmp_path_factory):
    """A course adapter trained for 3 steps only (the build path end to end, in seconds)."""
    out = tmp_path_factory.mktemp("quick") / "qiyan"
    return lora.build_adapter("qiyan", tiny_poet_dir, out=out, steps=3, log=lambda m: None)


def test_a_build_is_a_peft_folder_with_its_report(quick_adapter, tiny_poet_dir):
    assert lora.is_built(quick_adapter)
    cfg = lora.adapter_config(quick_adapter)
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 8 and set(cfg["target_modules"]) == set(lora.TARGET_MODULES)
    info = lora.build_info(quick_adapter)
    assert info["steps"] == 3 and info["base_key"] == lora.adapter_key(tiny_poet_dir) and info["train_seconds"] > 0
    assert info["trainable_parameters"] == 155_648, "r=8 on 7 matrices × 4 layers of tiny-poet: 8 × 19,456"
    assert lora.adapter_problem(quick_adapter, max_lora_rank=8) is None


def test_the_course_adapters_are_built_and_change_the_form(tiny_poet_dir):
    """The cached adapters (make setup builds them): trained in under a minute of CPU each, on their form."""
    built = lora.ensure_adapters(tiny_poet_dir, log=lambda m: None)
    for name, path in built.items():
        info = lora.build_info(path)
        assert lora.is_built(path) and info["chars"] == lora.ADAPTERS[name].chars
        assert info["loss_last"] < info["loss_first"] + 0.5, f"{name}: training did not diverge"


def test_the_command_line_prints_name_equals_folder():
    done = subprocess.run([sys.executable, "-m", "llmkit", "adapters"], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split("=", 1)[0] for line in lines] == list(lora.ADAPTERS)
    assert all(lora.is_built(Path(line.split("=", 1)[1])) for line in lines)


# ------------------------------------------------------------------------------------ is this folder an adapter?
def test_adapter_problem_names_each_reason(quick_adapter, tiny_poet_dir, tmp_path):
    assert "does not exist" in lora.adapter_problem(tmp_path / "missing")
    model = lora.adapter_problem(tiny_poet_dir)
    assert "no adapter_config.json" in model and "it is a model" in model
    assert "rank is 8" in lora.adapter_problem(quick_adapter, max_lora_rank=1)
    other = tmp_path / "ia3"
    shutil.copytree(quick_adapter, other)
    (other / "adapter_config.json").write_text(json.dumps({**lora.adapter_config(other), "peft_type": "IA3"}))
    assert "'IA3' adapter" in lora.adapter_problem(other)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(quick_adapter / "adapter_config.json", bare)
    assert "no adapter weights" in lora.adapter_problem(bare)
    (bare / "adapter_config.json").write_text("{not json")
    assert "not valid JSON" in lora.adapter_problem(bare)


def test_blank_adapter_has_the_rank_asked_for(tiny_poet_dir, tmp_path):
    path = lora.blank_adapter(tmp_path / "r16", tiny_poet_dir, rank=16)
    assert lora.adapter_rank(path) == 16 and "max_lora_rank=8" in lora.adapter_problem(path, max_lora_rank=8)


# ------------------------------------------------------------------------------------ what the slots cost
def test_slot_bytes_by_hand():
    qwen = model_shape(REFERENCE_CONFIGS["Qwen3-0.6B"])
    # Qwen3-0.6B: hidden 1024, 16 × 128 query, 8 × 128 KV, MLP 3072, 28 layers; per rank and slot, in + out of
    # q (1024+2048), k and v (1024+1024 each), o (2048+1024), gate and up (1024+3072 each), down (3072+1024).
    per_layer = 3072 + 2 * 2048 + 3072 + 2 * 4096 + 4096
    cost = lora.slot_bytes(qwen, max_loras=4, max_lora_rank=64)
    assert cost["layers"] == 28 * per_layer * 4 * 64 * 2 == 322_961_408
    assert cost["embeddings"] == 2 * (151_936 + 1024) * 4 * 64 * 2
    assert lora.slot_bytes(qwen, 8, 64)["layers"] == 2 * cost["layers"] == lora.slot_bytes(qwen, 4, 128)["layers"]
    # vLLM 0.26's tied Qwen3 head is the embedding module, wrapped twice: measured on the H200 with tiny-poet v2
    # (vocab 3176, hidden 256, 2 slots of rank 8, bf16): 329,472 bytes outside the layers (docs/gpu-run.md)
    poet = model_shape({"vocab_size": 3176, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "head_dim": 64, "intermediate_size": 768, "torch_dtype": "bfloat16",
                        "tie_word_embeddings": True})
    assert lora.slot_bytes(poet, 2, 8, head_is_embedding=True)["embeddings"] == 329_472
    assert lora.slot_bytes(poet, 2, 8)["embeddings"] == 219_648


def test_module_flags_and_allowed_ranks():
    assert lora.module_flags({"a": "/x", "b": Path("/y")}) == ["a=/x", "b=/y"]
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    assert lora.rank_allowed(24)[0] == 32 and lora.rank_allowed(8)[0] == 8 and 24 not in lora.rank_allowed(1)


def test_effect_table_counts_each_form():
    rows = lora.effect_table({"base": ["白日依山尽，黄河入海流。"], "qiyan": ["朝辞白帝彩云间，千里江陵一日还。"]})
    assert rows[0]["5-character lines"] == 1.0 and rows[1]["7-character lines"] == 1.0 and rows[1]["lines"] == 2


# ------------------------------------------------------------------------------------ a real engine
@pytest.fixture(scope="module")
def lora_llm(tiny_poet_dir):
    """A real vLLM engine with LoRA slots for two adapters of rank up to 8 (apply_model allowed, for its buffers)."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.engine import close_llm, load_llm

    saved = {k: os.environ.get(k) for k in lora.INTROSPECTION_ENV}
    os.environ.update(lora.INTROSPECTION_ENV)
    engine = load_llm(str(tiny_poet_dir), enable_lora=True, max_loras=2, max_lora_rank=8)
    yield engine
    close_llm(engine)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def course_adapters(tiny_poet_dir):
    """The course adapters for tiny-poet, by name (cached; built where missing)."""
    return lora.ensure_adapters(tiny_poet_dir, log=lambda m: None)


@pytest.fixture(scope="module")
def requests_for(course_adapters):
    """LoRARequests of the course adapters."""
    from vllm.lora.request import LoRARequest

    return {name: LoRARequest(name, i, str(path)) for i, (name, path) in enumerate(course_adapters.items(), 1)}


@pytest.mark.engine
def test_the_engine_reserves_what_slot_bytes_says(lora_llm, tiny_poet_dir):
    tied_twice = lora.engine_head_is_embedding(lora_llm)
    assert lora.engine_lora_bytes(lora_llm) == lora.slot_bytes(model_shape(str(tiny_poet_dir)), 2, 8,
                                                               head_is_embedding=tied_twice)
    import vllm
    if vllm.__version__.startswith("0.32"):
        assert not tied_twice, "vLLM 0.32 ties Qwen3's head through ParallelLMHead.tie_weights"


def test_engine_lora_bytes_needs_the_switch(monkeypatch):
    monkeypatch.delenv("VLLM_ALLOW_INSECURE_SERIALIZATION", raising=False)
    with pytest.raises(RuntimeError, match="INTROSPECTION_ENV"):
        lora.engine_lora_bytes(object())


@pytest.mark.engine
def test_add_lora_refuses_bad_folders_and_the_engine_lives_on(lora_llm, requests_for, tiny_poet_dir, tmp_path):
    from vllm import SamplingParams
    from vllm.lora.request import LoRARequest

    with pytest.raises(Exception, match="No adapter found"):
        lora_llm.llm_engine.add_lora(LoRARequest("model", 90, str(tiny_poet_dir)))
    wide = lora.blank_adapter(tmp_path / "r16", tiny_poet_dir, rank=16)
    with pytest.raises(Exception, match="greater than max_lora_rank"):
        lora_llm.llm_engine.add_lora(LoRARequest("wide", 91, str(wide)))
    assert lora_llm.llm_engine.add_lora(requests_for["qiyan"])
    out = lora_llm.generate(["写一首诗"], SamplingParams(max_tokens=4), use_tqdm=False)[0]
    assert len(out.outputs[0].token_ids) == 4, "the engine still generates"


@pytest.mark.engine
def test_adapters_change_the_answer_and_key_the_prefix_cache(lora_llm, requests_for, tiny_poet_dir):
    from vllm import SamplingParams

    from llmkit import bench

    greedy = SamplingParams(temperature=0, max_tokens=24)
    texts = {who: lora_llm.generate(["写一首关于秋天的诗\n"], greedy, lora_request=requests_for.get(who),
                                    use_tqdm=False)[0].outputs[0].text for who in (None, "qiyan", "wuyan")}
    assert len(set(texts.values())) == 3, texts
    size, special = bench.vocabulary(str(tiny_poet_dir))
    prompt = {"prompt_token_ids": bench.prompt_token_ids(bench.Workload(1, 300, 1, seed=77), size, special)[0]}
    lora_llm.reset_prefix_cache()
    cached = [lora_llm.generate([prompt], SamplingParams(max_tokens=1), lora_request=requests_for.get(who),
                                use_tqdm=False)[0].num_cached_tokens for who in (None, None, "qiyan", "qiyan")]
    assert cached == [0, 256, 0, 256], "an adapter's KV differs from the base model's: the cache keys on it"


@pytest.mark.engine
def test_a_mixed_batch_generates_exactly_the_workload(lora_llm, requests_for, tiny_poet_dir):
    from llmkit import bench

    prompts = bench.model_prompts(str(tiny_poet_dir), bench.Workload(6, 16, 8))
    mixed = [None, requests_for["qiyan"], requests_for["wuyan"]] * 2
    result = bench.offline_vllm(lora_llm, prompts, 8, lora_request=mixed)
    assert result["output_tokens"] == 6 * 8 and result["requests"] == 6


# ------------------------------------------------------------------------------------ a real server
@pytest.fixture(scope="module")
def lora_server(tiny_poet_dir, course_adapters):
    """vLLM's server with one adapter by name (qiyan) and the runtime load/unload endpoints mounted."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.lifecycle import start_vllm_server

    handle = start_vllm_server(str(tiny_poet_dir), enable_lora=True, max_loras=2, max_lora_rank=8,
                               lora_modules=lora.module_flags({"qiyan": course_adapters["qiyan"]}),
                               env=lora.RUNTIME_ENV, timeout=300)
    yield handle
    handle.stop()


@pytest.mark.engine
def test_the_server_serves_adapters_by_name_and_loads_them_at_run_time(lora_server, course_adapters):
    from llmkit.clients import ServerError, openai_completion

    assert lora.served_adapters(lora_server) == {"qiyan": str(course_adapters["qiyan"])}
    assert openai_completion(lora_server, "写一首诗", model="qiyan", max_tokens=4).completions[0].finish_reason
    with pytest.raises(ServerError) as err:
        openai_completion(lora_server, "写一首诗", model="wuyan", max_tokens=4)
    assert err.value.status == 404 and "does not exist" in err.value.message
    assert "added successfully" in lora.load_adapter(lora_server, "wuyan", course_adapters["wuyan"])
    assert set(lora.served_adapters(lora_server)) == {"qiyan", "wuyan"}
    assert len(openai_completion(lora_server, "写一首诗", model="wuyan", max_tokens=4).completions) == 1
    assert "removed successfully" in lora.unload_adapter(lora_server, "wuyan")
    with pytest.raises(ServerError) as err:
        lora.unload_adapter(lora_server, "wuyan")
    assert err.value.status == 404


@pytest.mark.engine
def test_every_bad_adapter_is_a_clear_error_and_the_server_keeps_serving(lora_server, tiny_poet_dir, tmp_path):
    from llmkit.clients import ServerError, openai_completion

    wide = lora.blank_adapter(tmp_path / "r16", tiny_poet_dir, rank=16)
    cases = {"model folder": (tiny_poet_dir, 404, "No adapter found"), "missing": (tmp_path / "none", 404, "No adapter found"),
             "rank 16 > 8": (wide, 500, "greater than max_lora_rank 8")}
    for what, (path, status, says) in cases.items():
        with pytest.raises(ServerError) as err:
            lora.load_adapter(lora_server, what.split()[0], path)
        assert err.value.status == status and says in err.value.message, (what, err.value)
    with pytest.raises(ValueError, match="engine must be"):
        lora.load_adapter(lora_server, "x", wide, engine="other")
    assert lora_server.health() and "wide" not in lora.served_adapters(lora_server)
    assert openai_completion(lora_server, "写一首诗", max_tokens=4).completions[0].finish_reason == "length"
