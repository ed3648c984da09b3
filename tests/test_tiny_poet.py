"""tiny-poet: corpus parsing, the poem-shape metric, the recipe, the tokenizer and chat template, the build,
and quality in vLLM (offline engine and OpenAI server with the qwen3 reasoning and hermes tool parsers)."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmkit import tiny_poet

FORTUNE = """\x1b[32m《送别》\x1b[m
\x1b[33m作者：王维\x1b[m
下马饮君酒，问君何所之。
君言不得意，归卧南山陲。
%
\x1b[32m题目:《塞上》\x1b[m
\x1b[33m作者:柳开（９４６－９９９）\x1b[m
鸣骹直上一千尺，天静无风声更干。
"""


def test_parse_fortune_format_drops_colours_and_authors():
    poems = tiny_poet.parse_poems(FORTUNE)
    assert [p.title for p in poems] == ["送别", "塞上"]
    assert poems[0].lines == ("下马饮君酒，问君何所之。", "君言不得意，归卧南山陲。")
    assert "作者" not in poems[1].text() and "\x1b" not in poems[1].text()
    assert poems[0].text().startswith("《送别》\n下马")


def test_clauses_split_at_punctuation_and_skip_titles():
    assert tiny_poet.clauses("《秋》\n空山新雨后，天气晚来秋。") == ["空山新雨后，", "天气晚来秋。"]


@pytest.mark.parametrize("text,expected", [
    ("空山新雨后，天气晚来秋。", 1.0),                 # two 5-character clauses
    ("朝辞白帝彩云间，千里江陵一日还。", 1.0),         # two 7-character clauses
    ("空山新雨，天气晚来秋。", 0.5),                   # a 4-character clause fails
    ("空山新雨后？天气晚来秋。", 0.5),                 # ？ is not ，or 。
    ("hello world.", 0.0),
    ("", 0.0),
    ("<think>\n七言绝句，写秋天\n</think>\n\n空山新雨后，天气晚来秋。", 1.0),  # the think block is not verse
])
def test_poem_shape_fraction(text, expected):
    assert tiny_poet.poem_shape_fraction([text]) == expected


def test_prompts_cover_form_and_theme():
    poem = tiny_poet.Poem("秋思", ("枯藤老树昏鸦，", "小桥流水人家。"))
    p = tiny_poet.Poem("x", ("床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"))
    assert "写一首五言绝句" in tiny_poet.prompts_for(p) and "写一首关于月亮的诗" in tiny_poet.prompts_for(p)
    assert "写一首五言绝句" not in tiny_poet.prompts_for(poem)


def test_tokenizer_is_character_level_with_byte_fallback():
    poems = tiny_poet.parse_poems(FORTUNE)
    vocab = tiny_poet.build_vocab(poems)
    tok = tiny_poet.make_tokenizer(vocab)
    enc = tok.encode("下马饮")
    assert len(enc.ids) == 3                       # one token per Han character
    unseen = tok.encode("😀")                      # not in the vocabulary: four UTF-8 bytes
    assert unseen.tokens == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    assert tok.decode(unseen.ids) == "😀"
    assert tok.encode("<|im_start|>user").ids[0] == vocab["<|im_start|>"]


def test_markup_tokens_are_single_tokens_that_survive_decoding():
    """vLLM's parsers look <think>, </think>, <tool_call>, </tool_call> up by text, in decoded output."""
    vocab = tiny_poet.build_vocab(tiny_poet.parse_poems(FORTUNE))
    tok = tiny_poet.make_tokenizer(vocab)
    text = '<think>\n下马\n</think>\n\n<tool_call>{"name": "count_chars"}</tool_call><|im_end|>'
    enc = tok.encode(text)
    for t in tiny_poet.MARKUP_TOKENS:
        assert tok.get_vocab()[t] in enc.ids and enc.tokens.count(t) == 1
    assert tok.decode(enc.ids, skip_special_tokens=True) == text.removesuffix("<|im_end|>")
    assert tiny_poet.split_thinking(tok.decode(enc.ids, skip_special_tokens=False)) == ("下马", '<tool_call>{"name": "count_chars"}</tool_call><|im_end|>')
    assert tiny_poet.split_thinking("no block") == (None, "no block")


# ------------------------------------------------------------------------------------------------
# The recipe: a hash of data (version, spec, tokenizer and template), never of code
# ------------------------------------------------------------------------------------------------
def _reworded_copy(tmp_path: Path):
    """tiny_poet.py with every docstring reworded and every comment dropped, imported as a separate module."""
    tree = ast.parse(Path(tiny_poet.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body[0].value.value = "Reworded. " + body[0].value.value[::-1]
    path = tmp_path / "tiny_poet_reworded.py"
    path.write_text(ast.unparse(tree), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("tiny_poet_reworded", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module, path


def test_rewording_docstrings_keeps_the_recipe(tmp_path):
    copy, path = _reworded_copy(tmp_path)
    assert path.read_text(encoding="utf-8") != Path(tiny_poet.__file__).read_text(encoding="utf-8")
    assert "Reworded." in copy.build.__doc__
    assert copy.RECIPE == tiny_poet.RECIPE


@pytest.mark.parametrize("change", [dict(lr=tiny_poet.SPEC.lr * 2), dict(epochs=tiny_poet.SPEC.epochs + 1),
                                    dict(batch_tokens=tiny_poet.SPEC.batch_tokens // 2), dict(max_steps=3),
                                    dict(seed=1), dict(head_dim=128)])
def test_a_hyperparameter_change_changes_the_recipe(change):
    assert tiny_poet.recipe_hash(dataclasses.replace(tiny_poet.SPEC, **change)) != tiny_poet.RECIPE
    assert tiny_poet.recipe_hash(dataclasses.replace(tiny_poet.SPEC)) == tiny_poet.RECIPE


@pytest.mark.parametrize("name,value", [("CHAT_TEMPLATE", tiny_poet.CHAT_TEMPLATE + "{{ '' }}"),
                                        ("MARKUP_TOKENS", tiny_poet.MARKUP_TOKENS[:2]),
                                        ("RECIPE_VERSION", tiny_poet.RECIPE_VERSION + 1),
                                        ("GENERIC_PROMPTS", ("写一首诗",))])
def test_a_template_tokenizer_or_version_change_changes_the_recipe(monkeypatch, name, value):
    monkeypatch.setattr(tiny_poet, name, value)
    assert tiny_poet.recipe_hash() != tiny_poet.RECIPE


def _fake_build(path: Path, recipe: str, corpus: str) -> Path:
    """A folder with the files is_built looks for and a build_info naming ``recipe`` and ``corpus``."""
    path.mkdir()
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        (path / f).write_text("{}")
    (path / "build_info.json").write_text(json.dumps({"recipe": recipe, "corpus_sha256_16": corpus}))
    return path


def test_is_built_needs_this_recipe_and_the_local_corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(tiny_poet, "local_corpus_sha", lambda: "corpus-a")
    assert tiny_poet.is_built(_fake_build(tmp_path / "ok", tiny_poet.RECIPE, "corpus-a"))
    assert not tiny_poet.is_built(_fake_build(tmp_path / "old", "0123456789ab", "corpus-a"))
    assert not tiny_poet.is_built(_fake_build(tmp_path / "other-poems", tiny_poet.RECIPE, "corpus-b"))
    monkeypatch.setattr(tiny_poet, "local_corpus_sha", lambda: None)   # corpus not on this machine: trust the build
    assert tiny_poet.is_built(tmp_path / "other-poems")


def test_local_corpus_sha_is_the_hash_the_build_records(tmp_path, monkeypatch):
    folder = tmp_path / "corpus" / "fortunes-zh"
    folder.mkdir(parents=True)
    for f in tiny_poet.FORTUNE_FILES:
        (folder / f).write_text(FORTUNE, encoding="utf-8")
    monkeypatch.setenv("LLMKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(tiny_poet, "SYSTEM_FORTUNES", tmp_path / "none")
    poems = tiny_poet.parse_poems(FORTUNE) * len(tiny_poet.FORTUNE_FILES)   # what load_corpus reads from them
    assert tiny_poet.local_corpus_sha() == tiny_poet.corpus_sha(poems)
    (folder / "song100").write_text(FORTUNE.replace("下马", "上马"), encoding="utf-8")
    assert tiny_poet.local_corpus_sha() != tiny_poet.corpus_sha(poems)


# ------------------------------------------------------------------------------------------------
# Training data: chat turns rendered by the chat template itself, length-bucketed batches
# ------------------------------------------------------------------------------------------------
def test_plans_name_form_and_theme():
    jueju = tiny_poet.Poem("秋", ("空山新雨后，天气晚来秋。", "明月松间照，清泉石上流。"))
    assert tiny_poet.plan_for(jueju, "写一首关于秋天的诗") == "五言绝句，写秋天"
    assert tiny_poet.plan_for(jueju, "写一首诗") == "五言绝句，写秋天"      # first theme found in the poem
    assert tiny_poet.plan_for(jueju, "写一首关于月亮的诗") == "五言绝句，写月亮"
    ci = tiny_poet.Poem("词", ("昨夜雨疏风骤，浓睡不消残酒。",))
    assert tiny_poet.plan_for(ci, "写一首古诗").startswith("长短句")


def test_training_turns_are_rendered_by_the_chat_template():
    vocab = tiny_poet.build_vocab(tiny_poet.parse_poems(FORTUNE))
    chat = tiny_poet.chat_tokenizer(tiny_poet.make_tokenizer(vocab))
    poem = tiny_poet.parse_poems(FORTUNE)[0]
    prompt, answer = tiny_poet.render_example(chat, *tiny_poet.poem_chat(poem, "写一首诗", thinking=True))
    assert prompt == "<|im_start|>user\n写一首诗<|im_end|>\n<|im_start|>assistant\n"
    assert answer == f"<think>\n{tiny_poet.plan_for(poem, '写一首诗')}\n</think>\n\n{poem.text()}<|im_end|>\n"
    prompt, answer = tiny_poet.render_example(chat, *tiny_poet.poem_chat(poem, "写一首诗", thinking=False))
    assert prompt.endswith("<|im_start|>assistant\n" + tiny_poet.EMPTY_THINK) and answer == poem.text() + "<|im_end|>\n"
    prompt, answer = tiny_poet.render_example(chat, *tiny_poet.tool_chat("下马饮君酒", "“{}”有几个字？", False, False))
    assert prompt.startswith("<|im_start|>system\n") and '"name": "count_chars"' in prompt
    assert answer == '<tool_call>{"name": "count_chars", "arguments": {"text": "下马饮君酒"}}</tool_call><|im_end|>\n'
    prompt, answer = tiny_poet.render_example(chat, *tiny_poet.tool_chat("下马饮君酒", "“{}”有几个字？", True, True))
    assert prompt.endswith("<|im_start|>tool\n5<|im_end|>\n<|im_start|>assistant\n") and "共5个字。" in answer


def test_length_batches_cover_every_example_once_within_the_budget():
    import random

    lengths = [random.Random(i).randint(10, 300) for i in range(500)]
    batches = tiny_poet.length_batches(lengths, 2048, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(len(b) * max(lengths[i] for i in b) <= 2048 for b in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert sum(lengths) / padded > 0.85, "similar lengths share a batch, so little is padding"
    assert batches != tiny_poet.length_batches(lengths, 2048, random.Random(1)), "the order is seeded, not fixed"


def test_lr_schedule_warms_up_then_decays():
    spec = dataclasses.replace(tiny_poet.SPEC, warmup_steps=10, final_lr_share=0.0)
    f = [tiny_poet.lr_factor(s, 100, spec) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.01


def test_missing_corpus_file_names_the_fix(tmp_path):
    with pytest.raises(tiny_poet.CorpusMissing, match="--corpus FILE"):
        tiny_poet.load_corpus(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("no poems here\n")
    with pytest.raises(tiny_poet.CorpusMissing, match="--corpus FILE"):
        tiny_poet.load_corpus(empty)


def test_cli_missing_corpus_exits_2_with_message(tmp_path):
    r = subprocess.run([sys.executable, "-m", "llmkit", "tiny-poet", "--corpus", str(tmp_path / "x")],
                       capture_output=True, text=True, env={"LLMKIT_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "--corpus FILE" in r.stderr and not (tmp_path / f"tiny-poet-{tiny_poet.VERSION}").exists()


def test_build_is_deterministic(tmp_path):
    """Two seeded builds (a few steps) produce byte-identical weights."""
    spec = dataclasses.replace(tiny_poet.SPEC, max_steps=3)
    digests = []
    for i in range(2):
        out = tiny_poet.build(out=tmp_path / f"m{i}", spec=spec, log=lambda m: None, report_samples=0)
        digests.append(hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    info = json.loads((out / "build_info.json").read_text())
    assert info["steps"] == 3 and info["recipe"] == tiny_poet.recipe_hash(spec) != tiny_poet.RECIPE
    assert not tiny_poet.is_built(out), "a cut-short build is never taken for the real one"


def test_built_model_is_a_normal_hf_folder(tiny_poet_dir):
    cfg = json.loads((tiny_poet_dir / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForCausalLM"]
    assert cfg["head_dim"] in (64, 128)
    assert cfg["num_key_value_heads"] < cfg["num_attention_heads"]   # grouped-query attention
    size = sum(f.stat().st_size for f in tiny_poet_dir.iterdir())
    assert size <= 20 * 2**20, f"tiny-poet is {size / 2**20:.1f} MiB"
    tcfg = json.loads((tiny_poet_dir / "tokenizer_config.json").read_text())
    assert tcfg["chat_template"] == tiny_poet.CHAT_TEMPLATE
    gen = json.loads((tiny_poet_dir / "generation_config.json").read_text())
    assert set(gen["eos_token_id"]) == {0, 2}
    info = json.loads((tiny_poet_dir / "build_info.json").read_text())
    assert info["recipe"] == tiny_poet.RECIPE and info["recipe_data"]["spec"] == dataclasses.asdict(tiny_poet.SPEC)
    assert info["held_out_char_perplexity"] < info["uniform_baseline_perplexity"] / 4
    # The build time is a figure of the machine that built it, reported, never asserted.
    print(f"built in {info['build_seconds']} s ({info['train_seconds']} s training) on {info['torch_threads']} threads")


def test_transformers_loads_it_offline(tiny_poet_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(tiny_poet_dir)
    user = [{"role": "user", "content": "写一首关于秋天的诗"}]
    text = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\n写一首关于秋天的诗<|im_end|>\n<|im_start|>assistant\n"   # thinking on (default)
    off = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert off == text + "<think>\n\n</think>\n\n"
    assert tok.decode(tok.encode("写一首关于秋天的诗")) == "写一首关于秋天的诗"
    for t in tiny_poet.MARKUP_TOKENS:                       # what vLLM's parsers look up
        assert len(tok.encode(t, add_special_tokens=False)) == 1 and t in tok.get_vocab()
        assert tok.decode(tok.encode(t, add_special_tokens=False), skip_special_tokens=True) == t


def test_chat_template_renders_tools_calls_and_results(tiny_poet_dir):
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(tiny_poet_dir)
    tool = tiny_poet.COUNT_CHARS_TOOL
    call = {"type": "function", "function": {"name": "count_chars", "arguments": {"text": "床前明月光"}}}
    messages = [{"role": "system", "content": "你是诗人。"}, {"role": "user", "content": "“床前明月光”有几个字？"},
                {"role": "assistant", "content": "", "reasoning_content": "数字数", "tool_calls": [call]},
                {"role": "tool", "content": "5"}]
    text = tok.apply_chat_template(messages, tools=[tool], tokenize=False, add_generation_prompt=True,
                                   enable_thinking=False)
    system, user, assistant, result, prompt = text.split("<|im_start|>")[1:]
    assert system.startswith("system\n你是诗人。\n\n") and json.dumps(tool["function"], ensure_ascii=False) in system
    assert user == "user\n“床前明月光”有几个字？<|im_end|>\n"
    assert assistant == ('assistant\n<think>\n数字数\n</think>\n\n<tool_call>{"name": "count_chars", '
                         '"arguments": {"text": "床前明月光"}}</tool_call><|im_end|>\n')
    assert result == "tool\n5<|im_end|>\n" and prompt == "assistant\n<think>\n\n</think>\n\n"
    as_string = json.loads(json.dumps(messages))
    as_string[2]["tool_calls"][0]["function"]["arguments"] = json.dumps({"text": "床前明月光"}, ensure_ascii=False)
    assert tok.apply_chat_template(as_string, tools=[tool], tokenize=False, add_generation_prompt=True,
                                   enable_thinking=False) == text   # OpenAI sends arguments as a JSON string
    raw = [{"role": "user", "content": "写诗"}, {"role": "assistant", "content": "<think>\n计划\n</think>\n\n诗"}]
    assert tok.apply_chat_template(raw, tokenize=False).endswith("assistant\n<think>\n计划\n</think>\n\n诗<|im_end|>\n")
    with pytest.raises(Exception, match="system message"):
        tok.apply_chat_template([{"role": "user", "content": "x"}, {"role": "system", "content": "y"}], tokenize=False)


def test_tool_call_check_validates_name_and_arguments():
    good = {"function": {"name": "count_chars", "arguments": '{"text": "下马"}'}}
    assert tiny_poet.tool_call_ok(good)
    assert not tiny_poet.tool_call_ok({"function": {"name": "rhyme", "arguments": '{"text": "下马"}'}})
    assert not tiny_poet.tool_call_ok({"function": {"name": "count_chars", "arguments": '{"text": 5}'}})
    assert not tiny_poet.tool_call_ok({"function": {"name": "count_chars", "arguments": '{"words": "下马"}'}})
    assert not tiny_poet.tool_call_ok({"function": {"name": "count_chars", "arguments": '{"text": "下'}})
    assert tiny_poet.count_chars("床前明月光，疑是地上霜。") == 10


@pytest.mark.engine
def test_quality_bar_in_vllm(llm):
    """At T=0.7, >= 60% of verse clauses for 写一首关于秋天的诗 are 5/7 Han characters + ，or 。 (8 samples each),
    with thinking on (each answer opens with a plan in its think block), off, and as the note's raw completion."""
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.7, n=8, max_tokens=160, seed=0)
    autumn = [{"role": "user", "content": "写一首关于秋天的诗"}]
    on = [c.text for c in llm.chat(autumn, params)[0].outputs]
    off = [c.text for c in llm.chat(autumn, params, chat_template_kwargs={"enable_thinking": False})[0].outputs]
    raw = [c.text for c in llm.generate("写一首七言绝句", params)[0].outputs]
    fractions = {name: tiny_poet.poem_shape_fraction(texts) for name, texts in
                 (("thinking on", on), ("thinking off", off), ("raw completion", raw))}
    print("poem-shape fractions over 8 samples:", {k: f"{v:.1%}" for k, v in fractions.items()})
    assert all(tiny_poet.split_thinking(t)[0] for t in on), "thinking on: every answer opens with a planned think block"
    assert not any(tiny_poet.THINK_START in t or tiny_poet.THINK_END in t for t in off), "thinking off: no think block"
    assert all(fraction >= 0.6 for fraction in fractions.values()), (fractions, on, off, raw)


@pytest.fixture(scope="module")
def parser_server(tiny_poet_dir):
    """vLLM's OpenAI server on tiny-poet with --enable-auto-tool-choice --tool-call-parser hermes --reasoning-parser qwen3."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.lifecycle import start_vllm_server

    with start_vllm_server(str(tiny_poet_dir), timeout=600, **tiny_poet.VLLM_PARSER_FLAGS) as handle:
        yield handle


@pytest.mark.engine
def test_vllm_parses_tool_calls_and_reasoning(parser_server):
    """20 samples each: >= 80% parsed count_chars calls with schema-valid arguments, >= 90% separated reasoning."""
    checks = tiny_poet.vllm_checks(parser_server, n=20)
    print(json.dumps(checks, ensure_ascii=False))
    assert checks["tool_call_rate"] >= 0.8, checks
    assert checks["reasoning_rate"] >= 0.9, checks
    assert checks["reasoning_when_thinking_off"] == 0, checks
