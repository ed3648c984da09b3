"""Offline throughput: one process gets every prompt at once; how many tokens per second come out.

``offline_vllm`` / ``offline_sglang`` / ``offline_transformers`` time a workload on an engine you already
have. ``run_offline`` does it in a fresh process (``python -m llmkit.bench offline``, run by
``llmkit.lifecycle.run_group``), so the engine's start-up is timed too and its memory is given back.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from llmkit.bench.results import engine_version
from llmkit.bench.workload import Workload, model_prompts

ENGINES = ("vllm", "sglang", "transformers")


def throughput(engine: str, requests: int, input_tokens: int, output_tokens: int, seconds: float,
               **extra: Any) -> dict:
    """The offline figures of one timed run: requests/s and input, output and total tokens/s."""
    if not seconds > 0:
        raise ValueError(f"a run cannot take {seconds} s")
    return {"engine": engine, "requests": requests, "input_tokens": input_tokens, "output_tokens": output_tokens,
            "seconds": round(seconds, 4), "requests_per_s": requests / seconds,
            "input_tokens_per_s": input_tokens / seconds, "output_tokens_per_s": output_tokens / seconds,
            "total_tokens_per_s": (input_tokens + output_tokens) / seconds, **extra}


def offline_vllm(llm: Any, prompts: Sequence[Sequence[int] | str], output_len: int, progress: bool = False,
                 lora_request: Any = None) -> dict:
    """Time ``llm.generate`` on prompts (token-id lists or text), each forced to ``output_len`` new tokens.

    ``lora_request`` is passed to ``generate``: one ``LoRARequest`` for all, or a list with one per prompt
    (``None`` for the base model), on an engine started with ``enable_lora=True``.
    """
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=output_len, ignore_eos=True, temperature=1.0, seed=0)
    batch = [p if isinstance(p, str) else {"prompt_token_ids": list(p)} for p in prompts]
    t0 = time.perf_counter()
    outs = llm.generate(batch, params, use_tqdm=progress, lora_request=lora_request)
    seconds = time.perf_counter() - t0
    return throughput("vllm", len(outs), sum(len(o.prompt_token_ids) for o in outs),
                      sum(len(c.token_ids) for o in outs for c in o.outputs), seconds)


def offline_sglang(engine: Any, prompts: Sequence[Sequence[int]], output_len: int) -> dict:
    """Time ``sglang.Engine.generate`` on token-id prompts, each forced to ``output_len`` new tokens."""
    params = {"max_new_tokens": output_len, "ignore_eos": True, "temperature": 1.0}
    t0 = time.perf_counter()
    outs = engine.generate(input_ids=[list(p) for p in prompts], sampling_params=params)
    seconds = time.perf_counter() - t0
    return throughput("sglang", len(outs), sum(o["meta_info"]["prompt_tokens"] for o in outs),
                      sum(o["meta_info"]["completion_tokens"] for o in outs), seconds)


def offline_transformers(model: Any, prompts: Sequence[Sequence[int]], output_len: int, batch_size: int = 1,
                         progress: bool = False) -> dict:
    """Time plain ``model.generate`` in static batches (equal-length prompts: no padding; min = max new tokens)."""
    import torch
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not prompts:
        raise ValueError("no prompts to generate from")
    device = next(model.parameters()).device
    out_tokens = 0
    bar = tqdm(total=len(prompts), desc="transformers", leave=False, disable=not progress)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(prompts), batch_size):
            ids = torch.tensor([list(p) for p in prompts[i:i + batch_size]], device=device)
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=output_len, min_new_tokens=output_len, pad_token_id=0)
            out_tokens += (out.shape[1] - ids.shape[1]) * out.shape[0]
            bar.update(ids.shape[0])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    bar.close()
    return throughput("transformers", len(prompts), sum(len(p) for p in prompts), out_tokens, seconds,
                      batch_size=batch_size)


def load_transformers(model: str) -> Any:
    """A transformers model for ``offline_transformers``: on a GPU in the config's dtype, on a CPU in float32.

    (PyTorch's CPU matmuls in bfloat16 are many times slower than in float32 on CPUs without AMX, so
    float32 is the fair baseline there.)
    """
    import torch
    from transformers import AutoModelForCausalLM

    if torch.cuda.is_available():
        return AutoModelForCausalLM.from_pretrained(model, dtype="auto").to("cuda").eval()
    return AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()


def offline_command(engine: str, model: str, workload: Workload, batch_size: int = 1,
                    engine_args: dict | None = None) -> dict:
    """The body of ``python -m llmkit.bench offline``: start the engine (timed), warm up, time the workload."""
    from llmkit.models import llm_kwargs, sglang_kwargs

    extra = dict(engine_args or {})
    prompts = model_prompts(model, workload)
    t0 = time.perf_counter()
    if engine == "vllm":
        from vllm import LLM

        llm = LLM(model=model, **llm_kwargs(**extra))
        startup = time.perf_counter() - t0
        offline_vllm(llm, prompts[:2], 4)                                   # warm-up, not timed
        result = offline_vllm(llm, prompts, workload.output_len)
    elif engine == "sglang":
        import sglang as sgl

        llm = sgl.Engine(model_path=model, **sglang_kwargs(**extra))
        startup = time.perf_counter() - t0
        offline_sglang(llm, prompts[:2], 4)
        result = offline_sglang(llm, prompts, workload.output_len)
        llm.shutdown()
    elif engine == "transformers":
        hf = load_transformers(model)
        startup = time.perf_counter() - t0
        offline_transformers(hf, prompts[:1], 4)
        result = offline_transformers(hf, prompts, workload.output_len, batch_size=batch_size)
    else:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    result.update(startup_s=round(startup, 2), model=model, workload=asdict(workload), engine_args=extra,
                  version=engine_version(engine))
    return result


def offline_args(engine: str, model: str, workload: Workload, batch_size: int, engine_args: dict,
                 json_out: str) -> list[str]:
    """The arguments of ``python -m llmkit.bench offline`` for one run."""
    return ["-m", "llmkit.bench", "offline", "--engine", engine, "--model", model,
            "--num-prompts", str(workload.num_prompts), "--input-len", str(workload.input_len),
            "--output-len", str(workload.output_len), "--seed", str(workload.seed),
            "--batch-size", str(batch_size), "--engine-args", json.dumps(engine_args), "--json", json_out]


def run_offline(engine: str, model: str | None = None, workload: Workload = Workload(), *, python: str | None = None,
                batch_size: int = 1, timeout: float = 900, **engine_args: Any) -> dict:
    """``offline_command`` in a fresh process group; reports ``startup_s`` next to the throughput.

    ``engine`` is "vllm", "sglang" or "transformers"; SGLang runs under ``llmkit.lifecycle.sglang_python()``.
    """
    from llmkit.lifecycle import run_group, sglang_python
    from llmkit.models import default_model

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    python = python or (sglang_python() if engine == "sglang" else sys.executable)
    model = model or default_model()
    with tempfile.TemporaryDirectory(prefix="llmkit-offline-") as tmp:
        result = Path(tmp) / "result.json"
        done = run_group([python, *offline_args(engine, model, workload, batch_size, engine_args, str(result))],
                         timeout)
        if done.returncode != 0 or not result.exists():
            tail = "\n".join(done.stdout.splitlines()[-25:])
            raise RuntimeError(f"the {engine} benchmark process failed (exit {done.returncode}):\n{tail}")
        return json.loads(result.read_text(encoding="utf-8"))
