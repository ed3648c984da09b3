"""llmkit: the small helper library of the vLLM and SGLang course.

The notebooks import the names below from ``llmkit`` itself, and everything else from the module of its
concept, one module per concept:

==================  ====================================================================================
``models``          which model (``default_model``), engine settings that fit this machine (``llm_kwargs``,
                    ``sglang_kwargs``, the ``small_machine`` switch), ``gpu_count``
``chat``            chat templates and the thinking switch (``NO_THINKING``, ``chat_prompt``, ``render``)
``config``          the one reader of a model's config (``model_shape``, ``param_count``)
``engine``          the offline engine's lifecycle (``load_llm``, ``close_llm``)
``outputs``         vLLM's output tree, and one normalized view of every engine's answers
``logprobs``        logprobs as probabilities, tables and pictures
``sampling``        sampling presets, version differences, the engine's own next-token distribution
``widgets``         the interactive sampling explorer
``kvcache``         KV-cache bytes per token, the block pool, the check against the engine
``lifecycle``       starting and stopping servers and child programs (no orphans, ports reserved)
``note_server``     the study note's ``/generate`` server (``servers/vllm_server.py`` runs it)
``clients``         small HTTP clients for the note server, OpenAI-compatible servers and SGLang
``mapping``         vLLM ↔ SGLang names, and converters built from one table
``bench``           benchmarks on the engines' own tools, the roofline, results and plots
``parallel``        tensor parallelism: per-GPU memory, the divisibility rules, TP runs
``structured``      structured outputs: the poem schema and its checks, vLLM's grammar backends and their costs
``tool_calls``      reasoning and tool calls: the engines' own parsers offline, the fields each engine answers,
                    checking and running calls, the whole loop, streamed calls joined
``prefix``          prefix caching: the tokens a prompt can reuse, the engines' cached-token reports, the TTFT sweep
``lora``            LoRA adapters: the course's two, trained and cached; serving, slot memory, runtime loading
``quant``           quantization: bytes a step reads per format, the fp8 KV pool, logprob drift, a W8A8 checkpoint
``spec``            speculative decoding: tokens per step, vLLM's acceptance counters, the course's draft model
``routers``         replicas behind the field's routers (vllm-router, smg), started and stopped like every server
``system``          what this machine has (the setup table of notebook 00)
``tiny_poet``       the course's embedded model, built locally (thinks, and calls a tool)
``random_models``   random-weight stand-ins of real architectures (the CI matrix, Qwen3-0.6B's shapes)
``exercises``       exercise checkers (``check``)
``vllm_cli``        vLLM's command line, also on the CPU wheel
==================  ====================================================================================
"""

from llmkit.chat import NO_THINKING
from llmkit.models import (HUB_MODEL, ModelNotFound, default_model, gpu_count, llm_kwargs, sglang_kwargs,
                           small_machine)

__version__ = "0.2.0"
__all__ = ["HUB_MODEL", "NO_THINKING", "ModelNotFound", "default_model", "gpu_count", "llm_kwargs", "sglang_kwargs",
           "small_machine"]
