"""tiny-poet: corpus parsing, the poem-shape metric, the tokenizer, the build, and quality in vLLM."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

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
    assert "--corpus FILE" in r.stderr and not (tmp_path / "tiny-poet-v1").exists()


def test_build_is_deterministic(tmp_path):
    """Two seeded builds (a few steps) produce byte-identical weights."""
    digests = []
    for i in range(2):
        out = tiny_poet.build(out=tmp_path / f"m{i}", steps=3, log=lambda m: None)
        digests.append(hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_built_model_is_a_normal_hf_folder(tiny_poet_dir):
    cfg = json.loads((tiny_poet_dir / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForCausalLM"]
    assert cfg["head_dim"] in (64, 128)
    assert cfg["num_key_value_heads"] < cfg["num_attention_heads"]   # grouped-query attention
    size = sum(f.stat().st_size for f in tiny_poet_dir.iterdir())
    assert size <= 20 * 2**20, f"tiny-poet is {size / 2**20:.1f} MiB"
    tcfg = json.loads((tiny_poet_dir / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in tcfg["chat_template"]
    gen = json.loads((tiny_poet_dir / "generation_config.json").read_text())
    assert set(gen["eos_token_id"]) == {0, 2}
    info = json.loads((tiny_poet_dir / "build_info.json").read_text())
    assert info["held_out_char_perplexity"] < info["uniform_baseline_perplexity"] / 4
    assert info["build_seconds"] < 180


def test_transformers_loads_it_offline(tiny_poet_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    tok = transformers.AutoTokenizer.from_pretrained(tiny_poet_dir)
    text = tok.apply_chat_template([{"role": "user", "content": "写一首关于秋天的诗"}],
                                   tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\n写一首关于秋天的诗<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(tok.encode("写一首关于秋天的诗")) == "写一首关于秋天的诗"


@pytest.mark.engine
def test_quality_bar_in_vllm(llm):
    """At T=0.7, >= 60% of verse clauses for 写一首关于秋天的诗 are 5/7 Han characters + ，or 。 (8 samples)."""
    from vllm import SamplingParams

    out = llm.chat([{"role": "user", "content": "写一首关于秋天的诗"}],
                   SamplingParams(temperature=0.7, n=8, max_tokens=120, seed=0))
    texts = [c.text for c in out[0].outputs]
    frac = tiny_poet.poem_shape_fraction(texts)
    print(f"poem-shape fraction over 8 samples: {frac:.1%}")
    assert len(texts) == 8 and all(texts)
    assert frac >= 0.6, texts


def test_shaped_random_model_has_the_requested_shape(tmp_path, tiny_poet_dir, monkeypatch):
    monkeypatch.setitem(tiny_poet.SHAPES, "small-test", dict(hidden_size=128, intermediate_size=256,
                        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=64))
    out = tiny_poet.build_shaped(tmp_path / "m", shape="small-test", base=tiny_poet_dir)
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"]) == (128, 2, 1, 64)
    assert (out / "tokenizer.json").read_bytes() == (tiny_poet_dir / "tokenizer.json").read_bytes()
    assert tiny_poet.SHAPES["qwen3-0.6b"]["num_hidden_layers"] == 28


def test_small_shape_is_a_quick_flat_stand_in(tmp_path, tiny_poet_dir, capsys):
    """--shape small: an untrained model of tiny-poet's size, with the nearly flat distribution of random weights."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmkit.__main__ import main

    with pytest.raises(SystemExit):
        main(["random-model", "--shape", "no-such-shape", "--out", str(tmp_path / "x")])
    assert "small" in capsys.readouterr().err, "an unknown shape is refused with the list of shapes"
    out = tiny_poet.build_shaped(tmp_path / "s", shape="small", base=tiny_poet_dir)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["hidden_size"] == 256 and cfg["num_hidden_layers"] <= 4 and cfg["head_dim"] == 64
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        probs = model(torch.tensor([[5, 6, 7, 8]])).logits[0, -1].softmax(-1)
    assert probs.topk(20).values.sum().item() < 0.1, "nearly flat: the top 20 tokens hold under 10%"
