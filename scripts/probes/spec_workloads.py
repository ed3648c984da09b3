# Probe of 2026-12-02 (docs/probes/2026-12-02-vllm-cpu-quantization-and-speculation.md): tokens/s and vLLM's
# acceptance counters for prompt lookup and a draft model on tiny-poet, plain for comparison.
#   usage: .venv/bin/python scripts/probes/spec_workloads.py base|ngram|draft     (DRAFT=folder, K=guesses)
#   with Intel OpenMP: LD_PRELOAD=$PWD/.venv/lib/libiomp5.so .venv/bin/python scripts/probes/spec_workloads.py ngram
import sys, time, json, os
from vllm import SamplingParams
from llmkit import default_model, NO_THINKING, spec
from llmkit.engine import load_llm, close_llm
case = sys.argv[1]
def main():
    model = default_model()
    opts = {"disable_log_stats": False}
    if case.startswith("ngram"): opts["speculative_config"] = spec.ngram_config()
    if case.startswith("draft"): opts["speculative_config"] = spec.draft_config(os.environ.get("DRAFT") or spec.ensure_draft(), k=int(os.environ.get("K", 3)))
    t0=time.time(); llm = load_llm(model, **opts); print("start", round(time.time()-t0,1))
    POEMS = {"静夜思": "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。",
             "登鹳雀楼": "白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。",
             "春晓": "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。",
             "相思": "红豆生南国，春来发几枝。\n愿君多采撷，此物最相思。"}
    tok = llm.get_tokenizer()
    raw_copy = [f"《{t}》\n{b}\n\n《{t}》\n" for t, b in POEMS.items()]
    from llmkit.tiny_poet import COUNT_CHARS_TOOL, TOOL_QUESTIONS
    tool = [tok.apply_chat_template([{"role":"user","content":TOOL_QUESTIONS[0].format(b.replace(chr(10),""))}], tools=[COUNT_CHARS_TOOL], tokenize=False, add_generation_prompt=True, enable_thinking=False) for t,b in POEMS.items()]
    chat_copy = [tok.apply_chat_template([{"role":"user","content":"把这首诗抄一遍：\n《"+t+"》\n"+b}], tokenize=False, add_generation_prompt=True, enable_thinking=False) for t,b in POEMS.items()]
    new = [tok.apply_chat_template([{"role":"user","content":q}], tokenize=False, add_generation_prompt=True, enable_thinking=False) for q in ["写一首关于秋天的诗","写一首关于月亮的诗","写一首七言绝句","写一首关于雨的诗"]]
    sp = SamplingParams(temperature=0, max_tokens=64)
    res = {}
    for name, prompts in [("tool", tool), ("new", new)]:
        llm.generate(prompts[:1], sp, use_tqdm=False)
        b = spec.spec_counters(llm) if case!="base" else None
        t=time.perf_counter(); outs=[llm.generate([p], sp, use_tqdm=False)[0] for p in prompts]; dt=time.perf_counter()-t
        n=sum(len(o.outputs[0].token_ids) for o in outs)
        acc = spec.acceptance(b, spec.spec_counters(llm)) if b else None
        res[name] = {"tok_s": round(n/dt,1), "tokens": n, "acc": acc, "text0": outs[0].outputs[0].text[:60], "ids": [list(o.outputs[0].token_ids) for o in outs]}
        t=time.perf_counter(); outs=llm.generate(prompts*4, sp, use_tqdm=False); dt=time.perf_counter()-t
        res[name]["tok_s_16"] = round(sum(len(o.outputs[0].token_ids) for o in outs)/dt,1)
        print(case, name, res[name]["tok_s"], res[name]["tok_s_16"], acc and {k: (round(v,3) if isinstance(v,float) else v) for k,v in acc.items() if k!="per_position"}, acc and [round(x,2) for x in acc["per_position"]], repr(res[name]["text0"]))
    json.dump(res, open(f"/tmp/spec-probe-{case}.json", "w"), ensure_ascii=False)
    close_llm(llm)

if __name__ == '__main__':
    main()
