"""LoRA adapters: the course's own adapters (trained here with peft), checking a folder, what serving them costs.

A LoRA adapter adds a low-rank update ``B @ A`` (rank r) to some of a model's weight matrices and leaves the
base weights alone, so one engine can serve one base model and many adapters, choosing per request. The
course trains two adapters for the course model, each in well under a minute on two CPU cores:

==========  =================================================================================
``qiyan``   writes only seven-character lines (七言), whatever form the request asks for
``wuyan``   writes only five-character lines (五言)
==========  =================================================================================

They are ordinary PEFT folders (``adapter_config.json`` + ``adapter_model.safetensors``), built once into the
llmkit cache and rebuilt when the base model or this recipe changes, like tiny-poet itself
(``python -m llmkit adapters``).

Serving them (vLLM ``enable_lora`` with ``LoRARequest`` offline, ``--lora-modules`` and the runtime
``/v1/load_lora_adapter`` on its server; SGLang ``--lora-paths`` and ``lora_path``) is notebook 15. Here:
``adapter_problem`` (is a folder an adapter this engine can load?), ``slot_bytes`` (what ``max_loras`` and
``max_lora_rank`` reserve) and ``engine_lora_bytes`` (what the engine really reserved).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from llmkit import tiny_poet
from llmkit.config import ModelShape

VERSION = "v1"
RECIPE_VERSION = 1  # bump when a code change alters what training produces (the recipe hashes data, not code)
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# The variable that mounts vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter (vllm/envs.py).
RUNTIME_ENV = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
# LLM.apply_model sends a Python function to the engine process; vLLM pickles it only with this set.
INTROSPECTION_ENV = {"VLLM_ALLOW_INSECURE_SERIALIZATION": "1"}
# Runtime load / unload endpoints: (load, unload). Both take {"lora_name", "lora_path"} (unload: the name).
RUNTIME_PATHS = {"vllm": ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"),
                 "sglang": ("/load_lora_adapter", "/unload_lora_adapter")}


@dataclass(frozen=True)
class AdapterSpec:
    """One course adapter: the line length it teaches and how it is trained."""

    name: str
    chars: int                 # Han characters per verse line of the poems it is trained on
    description: str
    rank: int = 8
    alpha: int = 16
    steps: int = 50
    batch_size: int = 16
    lr: float = 3e-3
    held_out: int = 12         # poems of the form kept out of training, to score the adapter on


ADAPTERS = {
    "qiyan": AdapterSpec("qiyan", 7, "seven-character lines only (七言)"),
    "wuyan": AdapterSpec("wuyan", 5, "five-character lines only (五言)"),
}


# --------------------------------------------------------------------------------------------------
# The training data: poems of one form, asked for in every way tiny-poet knows
# --------------------------------------------------------------------------------------------------
def line_share(texts: Iterable[str], chars: int) -> float:
    """Share of verse lines (clauses) that are exactly ``chars`` Han characters followed by ，or 。."""
    shape = re.compile(rf"^{tiny_poet._HAN}{{{chars}}}[，。]$")
    found = [c for t in texts for c in tiny_poet.clauses(t)]
    return sum(bool(shape.match(c)) for c in found) / len(found) if found else 0.0


def form_poems(chars: int, corpus: str | os.PathLike | None = None) -> list[tiny_poet.Poem]:
    """The corpus's 绝句 and 律诗 (4 or 8 lines) whose every line has ``chars`` Han characters.

    Longer poems are left out: one 30-line 歌行 in a batch would pad every sequence to its length.
    """
    poems = tiny_poet.load_corpus(corpus, log=lambda m: None)
    return [p for p in poems if len(tiny_poet.clauses(p.text())) in (4, 8) and line_share([p.text()], chars) == 1.0]


def split_poems(poems: Sequence[tiny_poet.Poem], held_out: int, seed: int = 0):
    """(training poems, held-out poems): a seeded split, the same on every machine."""
    order = list(range(len(poems)))
    random.Random(seed).shuffle(order)
    return [poems[i] for i in order[held_out:]], [poems[i] for i in order[:held_out]]


def requests_to_answer() -> list[str]:
    """Every request tiny-poet learned to answer (its generic, form and theme prompts): an adapter keeps its form for all."""
    return [*tiny_poet.GENERIC_PROMPTS, *tiny_poet.FORM_PROMPTS.values(),
            *(f"写一首关于{name}的诗" for name in tiny_poet.THEMES.values())]


def encode_example(tokenizer: Any, question: str, answer: str) -> tuple[list[int], int]:
    """(token ids, prompt length) of one chat turn: the templated question (thinking off), the answer, end token."""
    from llmkit.chat import render

    prompt = tokenizer(render(tokenizer, question), add_special_tokens=False).input_ids
    reply = tokenizer(answer, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return prompt + reply, len(prompt)


def held_out_texts(name: str, corpus: str | os.PathLike | None = None, seed: int = 0) -> list[str]:
    """The poems of an adapter's form that its training never saw (to score base against adapter)."""
    spec = ADAPTERS[name]
    return [p.text() for p in split_poems(form_poems(spec.chars, corpus), spec.held_out, seed)[1]]


# --------------------------------------------------------------------------------------------------
# Where an adapter lives, and when it must be rebuilt
# --------------------------------------------------------------------------------------------------
def base_fingerprint(base: str | os.PathLike) -> str:
    """What identifies the base weights: tiny-poet's build recipe, else the config and the weight files' sizes."""
    path = Path(base)
    if not path.is_dir():
        return f"hub:{base}"                                    # a hub id: its name
    info = path / "build_info.json"
    if info.is_file():
        built = json.loads(info.read_text(encoding="utf-8"))
        keys = ("name", "version", "recipe", "seed", "steps", "corpus_sha256_16", "vocab_size", "parameters", "shape")
        if "recipe" in built or "shape" in built:
            return json.dumps({k: built.get(k) for k in keys}, sort_keys=True)
    files = sorted((f.name, f.stat().st_size) for f in path.iterdir() if f.suffix in (".safetensors", ".bin"))
    return json.dumps({"config": (path / "config.json").read_text(encoding="utf-8"), "weights": files})


def _recipe() -> str:
    """A hash of the data that determine an adapter's weights: the recipe version, the target modules and every
    adapter's spec (as tiny-poet's RECIPE: rewording code or docstrings never retrains; bump RECIPE_VERSION when a
    code change alters what training produces)."""
    blob = json.dumps([RECIPE_VERSION, VERSION, list(TARGET_MODULES), sorted((k, asdict(v)) for k, v in ADAPTERS.items())],
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def adapter_key(base: str | os.PathLike) -> str:
    """The cache key of the course adapters for a base model: its fingerprint and this recipe."""
    return hashlib.sha256(f"{RECIPE}\n{base_fingerprint(base)}".encode()).hexdigest()[:12]


def adapter_dir(name: str, base: str | os.PathLike | None = None) -> Path:
    """The folder the adapter ``name`` for ``base`` (default: the course model) is built into."""
    from llmkit.models import default_model

    if name not in ADAPTERS:
        raise KeyError(f"no course adapter {name!r}; there are {', '.join(ADAPTERS)}")
    return tiny_poet.cache_root() / "adapters" / f"{name}-{VERSION}-{adapter_key(base or default_model())}"


def is_built(path: Path) -> bool:
    """True when ``path`` holds a complete adapter build of this recipe."""
    need = ("adapter_config.json", "adapter_model.safetensors", "build_info.json")
    if not all((path / f).is_file() for f in need):
        return False
    try:
        return json.loads((path / "build_info.json").read_text(encoding="utf-8")).get("recipe") == RECIPE
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------
def _lm_batch(examples: Sequence[tuple[list[int], int]], pad_id: int):
    """Right-padded (input ids, labels, attention mask) of (ids, prompt length) examples; only answers are labels."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    x = torch.full((len(examples), width), pad_id, dtype=torch.long)
    y = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (ids, plen) in enumerate(examples):
        x[i, : len(ids)] = torch.tensor(ids)
        y[i, plen : len(ids)] = torch.tensor(ids[plen:])
        mask[i, : len(ids)] = 1
    return x, y, mask


def build_adapter(name: str, base: str | os.PathLike | None = None, out: Path | None = None, steps: int | None = None,
                  seed: int = 0, corpus: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """Train the course adapter ``name`` on ``base`` with peft and save it as a PEFT folder; returns its path."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmkit.models import default_model

    spec = ADAPTERS[name]
    base = str(base or default_model())
    out = Path(out) if out else adapter_dir(name, base)
    steps = spec.steps if steps is None else steps
    t0 = time.perf_counter()
    train, held = split_poems(form_poems(spec.chars, corpus), spec.held_out, seed)
    if len(train) < spec.batch_size:
        raise tiny_poet.CorpusMissing(f"only {len(train)} poems with {spec.chars}-character lines to train {name} on")
    questions = requests_to_answer()
    tok = AutoTokenizer.from_pretrained(base)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: on a shared 2-core machine two threads spin-wait on each other
    torch.manual_seed(seed)
    rng = random.Random(seed)
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).to(device)
        peft_model = get_peft_model(model, LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=0.0,
                                                      target_modules=list(TARGET_MODULES), task_type="CAUSAL_LM"))
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=spec.lr)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        losses = []
        peft_model.train()
        for step in range(steps):
            batch = [encode_example(tok, rng.choice(questions), rng.choice(train).text()) for _ in range(spec.batch_size)]
            x, y, mask = (t.to(device) for t in _lm_batch(batch, pad_id=pad))
            loss = peft_model(input_ids=x, attention_mask=mask, labels=y).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if step % 20 == 0 or step == steps - 1:
                log(f"  {name}: step {step:3d}/{steps}  loss {loss.item():.3f}  {time.perf_counter() - t0:5.1f} s")
        train_seconds = time.perf_counter() - t0
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        peft_model.save_pretrained(tmp, safe_serialization=True)
    finally:
        torch.set_num_threads(threads)
    window = max(1, min(10, steps // 4))
    info = {"name": name, "version": VERSION, "recipe": RECIPE, "base": base, "base_key": adapter_key(base),
            "description": spec.description, "chars": spec.chars, "rank": spec.rank, "alpha": spec.alpha,
            "target_modules": list(TARGET_MODULES), "steps": steps, "batch_size": spec.batch_size, "seed": seed,
            "device": device, "train_poems": len(train), "held_out_poems": len(held), "trainable_parameters": trainable,
            "loss_first": round(sum(losses[:window]) / window, 3), "loss_last": round(sum(losses[-window:]) / window, 3),
            "train_seconds": round(train_seconds, 1)}
    tiny_poet.publish_build(tmp, out, info)
    log(f"{name}: {trainable:,} trainable parameters, loss {info['loss_first']} → {info['loss_last']}, "
        f"trained in {train_seconds:.0f} s → {out}")
    return out


RECIPE = _recipe()


def ensure_adapter(name: str, base: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """The folder of the course adapter ``name`` for ``base``, trained first if it is missing or stale."""
    path = adapter_dir(name, base)
    return path if is_built(path) else build_adapter(name, base, out=path, log=log)


def ensure_adapters(base: str | os.PathLike | None = None, names: Sequence[str] = tuple(ADAPTERS),
                    log: Callable[[str], None] = print) -> dict[str, Path]:
    """Every course adapter for ``base``, by name (built where missing)."""
    return {name: ensure_adapter(name, base, log) for name in names}


def build_info(path: str | os.PathLike) -> dict:
    """The build report of a course adapter (training time, losses, sizes)."""
    return json.loads((Path(path) / "build_info.json").read_text(encoding="utf-8"))


def blank_adapter(out: str | os.PathLike, base: str | os.PathLike | None = None, rank: int = 16,
                  target_modules: Sequence[str] = ("q_proj", "v_proj")) -> Path:
    """An untrained LoRA adapter of any rank (its B matrices are zero: it changes nothing), saved as a PEFT folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from llmkit.models import default_model

    model = AutoModelForCausalLM.from_pretrained(str(base or default_model()), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, target_modules=list(target_modules),
                                                  task_type="CAUSAL_LM"))
    peft_model.save_pretrained(out, safe_serialization=True)
    return Path(out)


# --------------------------------------------------------------------------------------------------
# Is this folder an adapter the engine can load?
# --------------------------------------------------------------------------------------------------
def adapter_config(path: str | os.PathLike) -> dict:
    """A PEFT folder's ``adapter_config.json``."""
    return json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))


def adapter_rank(path: str | os.PathLike) -> int:
    """The largest LoRA rank in a PEFT folder (``r``, or a larger one in ``rank_pattern``)."""
    cfg = adapter_config(path)
    return max([int(cfg["r"]), *map(int, (cfg.get("rank_pattern") or {}).values())])


def adapter_problem(path: str | os.PathLike, max_lora_rank: int | None = None) -> str | None:
    """Why an engine would refuse to load ``path`` as a LoRA adapter, in one line; None when it looks loadable.

    Check this before an offline ``LoRARequest``: vLLM's offline engine stops for good when a request names a
    folder it cannot load (its server answers an error and keeps serving).
    """
    folder = Path(path)
    if not folder.is_dir():
        return f"{folder} does not exist (or is not a folder)"
    if not (folder / "adapter_config.json").is_file():
        also = " It holds a config.json: it is a model, not an adapter." if (folder / "config.json").is_file() else ""
        return f"{folder} is not a PEFT adapter folder: it has no adapter_config.json.{also}"
    try:
        cfg = adapter_config(folder)
    except ValueError as err:
        return f"{folder}/adapter_config.json is not valid JSON ({err})"
    if str(cfg.get("peft_type", "")).upper() != "LORA":
        return f"{folder} holds a {cfg.get('peft_type')!r} adapter; the engines serve LoRA adapters"
    if not any((folder / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        return f"{folder} has no adapter weights (adapter_model.safetensors)"
    rank = adapter_rank(folder)
    if max_lora_rank is not None and rank > max_lora_rank:
        return (f"its rank is {rank}, larger than the engine's max_lora_rank={max_lora_rank}: start the engine "
                f"with max_lora_rank >= {rank}")
    return None


# --------------------------------------------------------------------------------------------------
# What max_loras and max_lora_rank cost
# --------------------------------------------------------------------------------------------------
def layer_lora_elements(shape: ModelShape) -> int:
    """Elements of one rank-1 LoRA slot over every decoder layer: (in + out) of q, k, v, o, gate, up and down."""
    shape.require_layers()
    h, q, kv, inter = shape.hidden_size, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim, shape.intermediate_size
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + inter) + (inter + h)
    return shape.layers * per_layer


def slot_bytes(shape: ModelShape, max_loras: int, max_lora_rank: int, dtype_bytes: int | None = None,
               head_is_embedding: bool = False) -> dict[str, int]:
    """Bytes vLLM reserves for LoRA at start-up, whatever adapters are loaded later.

    Every linear layer gets ``max_loras`` slots of an A (rank × in) and a B (out × rank) matrix, in the model's
    dtype (vllm/lora/layers/base_linear.py, ``create_lora_weights``): ``layers``. Models whose vLLM class
    lists embedding modules (Llama, Qwen, Mistral, ...) also get slots on the token embedding and the LM head,
    ``rank × (vocab + hidden)`` each: ``embeddings``. ``head_is_embedding``: the model class ties its head by
    making ``lm_head`` the embedding module itself (vLLM 0.26's Qwen2/Qwen3 with tied embeddings), which the
    LoRA manager wraps a second time under the name ``lm_head`` (vllm/lora/model_manager.py lets ``lm_head``
    past its already-wrapped check): one more ``rank × (vocab + hidden)`` per slot. See ``engine_head_is_embedding``.
    """
    per = max_loras * max_lora_rank * (dtype_bytes or shape.dtype_bytes)
    vocab_modules = 3 if head_is_embedding else 2
    return {"layers": per * layer_lora_elements(shape),
            "embeddings": per * vocab_modules * (shape.vocab_size + shape.hidden_size)}


def _head_is_embedding(model: Any) -> bool:
    """(Runs inside the engine process.) Whether the LM head was wrapped as an embedding (it is the embedding module)."""
    head = getattr(model, "lm_head", None)
    return type(head).__name__.startswith("VocabParallelEmbeddingWithLoRA")


def engine_head_is_embedding(llm: Any) -> bool:
    """Whether a running ``vllm.LLM`` (``enable_lora=True``) holds its tied LM head as the embedding module itself.

    True on vLLM 0.26 for Qwen2/Qwen3 with tied embeddings (``self.lm_head = self.model.embed_tokens``); vLLM 0.32
    ties through ``ParallelLMHead.tie_weights``, and Llama does in both. Needs ``INTROSPECTION_ENV``, like
    ``engine_lora_bytes``.
    """
    if os.environ.get("VLLM_ALLOW_INSECURE_SERIALIZATION") != "1":
        raise RuntimeError("engine_head_is_embedding sends a function to the engine process: set "
                           "os.environ.update(llmkit.lora.INTROSPECTION_ENV) before starting the engine")
    return bool(llm.apply_model(_head_is_embedding)[0])


def _lora_buffers(model: Any) -> dict[str, int]:
    """(Runs inside the engine process.) Bytes of the LoRA slot tensors of a vLLM model: in decoder layers, elsewhere."""
    import torch

    sizes = {"layers": 0, "embeddings": 0}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr not in ("lora_a_stacked", "lora_b_stacked"):
                continue
            for t in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(t, torch.Tensor):
                    sizes["layers" if ".layers." in f".{name}." else "embeddings"] += t.numel() * t.element_size()
    return sizes


def engine_lora_bytes(llm: Any) -> dict[str, int]:
    """The LoRA slot bytes a running ``vllm.LLM`` (``enable_lora=True``) really allocated, read in its engine process.

    Uses ``llm.apply_model``, which needs ``INTROSPECTION_ENV`` in ``os.environ`` before the engine starts.
    """
    if os.environ.get("VLLM_ALLOW_INSECURE_SERIALIZATION") != "1":
        raise RuntimeError("engine_lora_bytes sends a function to the engine process: set "
                           "os.environ.update(llmkit.lora.INTROSPECTION_ENV) before starting the engine")
    return llm.apply_model(_lora_buffers)[0]


# --------------------------------------------------------------------------------------------------
# Serving: adapters by name, loaded and unloaded at run time
# --------------------------------------------------------------------------------------------------
def module_flags(adapters: Mapping[str, str | os.PathLike]) -> list[str]:
    """``["qiyan=/path", ...]``: the value of vLLM's ``--lora-modules`` and SGLang's ``--lora-paths``."""
    return [f"{name}={path}" for name, path in adapters.items()]


def served_adapters(server: Any) -> dict[str, str]:
    """Adapters a server lists at ``/v1/models`` (entries with a parent model): name → folder."""
    from llmkit.clients import get_json

    return {m["id"]: m.get("root") for m in get_json(server, "/v1/models")["data"] if m.get("parent")}


def _runtime_path(engine: str, index: int) -> str:
    """The load (0) or unload (1) endpoint of an engine."""
    if engine not in RUNTIME_PATHS:
        raise ValueError(f"engine must be one of {', '.join(RUNTIME_PATHS)}, got {engine!r}")
    return RUNTIME_PATHS[engine][index]


def load_adapter(server: Any, name: str, path: str | os.PathLike, engine: str = "vllm") -> str:
    """Load an adapter into a running server under ``name``; the server's answer, or ``ServerError``.

    vLLM mounts the endpoint only when the server started with ``RUNTIME_ENV``; SGLang always has it.
    """
    from llmkit.clients import post_json

    resp = post_json(server, _runtime_path(engine, 0), {"lora_name": name, "lora_path": str(path)}, timeout=120)
    return resp.text


def unload_adapter(server: Any, name: str, engine: str = "vllm") -> str:
    """Unload the adapter ``name`` from a running server; the server's answer, or ``ServerError``."""
    from llmkit.clients import post_json

    return post_json(server, _runtime_path(engine, 1), {"lora_name": name}, timeout=120).text


def sglang_batch(server: Any, prompts: Sequence[str] | Sequence[Sequence[int]], lora_path: Any = None,
                 timeout: float = 600, **sampling: Any) -> tuple[list[dict], float]:
    """One native ``/generate`` call for a batch (texts or token-id lists), each with its adapter: (results, seconds).

    ``lora_path`` names an adapter loaded with ``--lora-paths`` (or ``/load_lora_adapter``): one for all, or a
    list with one per prompt (``None``: the base model).
    """
    from llmkit.clients import post_json

    key = "text" if isinstance(prompts[0], str) else "input_ids"
    body: dict[str, Any] = {key: [p if isinstance(p, str) else list(p) for p in prompts], "sampling_params": sampling}
    if lora_path is not None:
        body["lora_path"] = list(lora_path) if isinstance(lora_path, (list, tuple)) else [lora_path] * len(prompts)
    t0 = time.perf_counter()
    reply = post_json(server, "/generate", body, timeout=timeout).json()
    return (reply if isinstance(reply, list) else [reply]), time.perf_counter() - t0


def rank_allowed(rank: int) -> list[int]:
    """The ``max_lora_rank`` values vLLM accepts that can hold an adapter of ``rank`` (read from vLLM's config type)."""
    from typing import get_args

    from vllm.config.lora import MaxLoRARanks

    return [r for r in get_args(MaxLoRARanks) if r >= rank]


def effect_table(samples: Mapping[str, Sequence[str]], chars: Sequence[int] = (7, 5)) -> list[dict]:
    """Per model (base or adapter): samples, lines, and the share of lines of each length in ``chars``."""
    rows = []
    for who, texts in samples.items():
        row: dict[str, Any] = {"model": who, "samples": len(texts),
                               "lines": sum(len(tiny_poet.clauses(t)) for t in texts)}
        for n in chars:
            row[f"{n}-character lines"] = round(line_share(texts, n), 3)
        rows.append(row)
    return rows
