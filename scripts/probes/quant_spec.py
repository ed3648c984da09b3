"""What the installed vLLM build runs: online weight quantization, an fp8 KV cache, n-gram and draft-model speculation.

    .venv/bin/python scripts/probes/quant_spec.py [DRAFT_MODEL_DIR] 2>/dev/null | grep ^PROBE

One line per case: start-up seconds, tokens/s of 4 greedy answers of 64 tokens, whether the greedy text equals
the bf16 engine's, or the error. A draft model needs tiny-poet's tokenizer, e.g.
`python -m llmkit random-model --shape small --out /tmp/draft-small`. Results: docs/probes/.
"""
import json, os, sys, time, traceback
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

def main():
    from vllm import LLM, SamplingParams
    from llmkit import default_model
    from llmkit.models import llm_kwargs
    model = default_model()
    draft = sys.argv[1] if len(sys.argv) > 1 else None
    prompt = ["把这首诗抄一遍：白日依山尽，黄河入海流。欲穷千里目，更上一层楼。白日依山尽，黄河入海流。"]
    greedy = SamplingParams(temperature=0, max_tokens=64)
    cases = {
        "bf16 (base)": {},
        "fp8 weights online": {"quantization": "fp8"},
        "int8 online (MoE experts only: a no-op on a dense model)": {"quantization": "int8_per_channel_weight_only"},
        "fp8 KV cache": {"kv_cache_dtype": "fp8"},
        "ngram spec": {"speculative_config": {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 4, "prompt_lookup_min": 2}},
    }
    if draft:
        cases["draft model spec"] = {"speculative_config": {"method": "draft_model", "model": draft, "num_speculative_tokens": 3}}
    base_text = None
    for name, extra in cases.items():
        t0 = time.perf_counter()
        try:
            llm = LLM(model=model, **llm_kwargs(**extra))
            start = time.perf_counter() - t0
            t1 = time.perf_counter(); out = llm.generate(prompt * 4, greedy, use_tqdm=False); gen = time.perf_counter() - t1
            text = out[0].outputs[0].text
            if base_text is None: base_text = text
            ntok = sum(len(o.outputs[0].token_ids) for o in out)
            metrics = {}
            try:
                for m in llm.get_metrics():
                    if "spec" in m.name: metrics[m.name] = getattr(m, "value", None) or getattr(m, "values", None)
            except Exception as e:
                metrics = {"err": repr(e)[:80]}
            print("PROBE", json.dumps({"case": name, "ok": True, "start_s": round(start, 1), "tok_s": round(ntok / gen, 1),
                              "same_as_base": text == base_text, "metrics": metrics}, ensure_ascii=False), flush=True)
            from llmkit.engine import close_llm; close_llm(llm)
        except Exception as e:
            print("PROBE", json.dumps({"case": name, "ok": False, "s": round(time.perf_counter() - t0, 1),
                              "error": f"{type(e).__name__}: {str(e)[:400]}"}, ensure_ascii=False), flush=True)

if __name__ == "__main__":
    main()
