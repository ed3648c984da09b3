"""tiny-poet: the course's embedded model, a tiny Qwen3 chat model trained locally on classical poems.

No model hub is needed: the poems come from Debian's public-domain ``fortunes-zh`` package
(唐诗三百首 and 宋词/宋诗 selections), the tokenizer is character level with byte fallback (so any
UTF-8 prompt encodes, 的 included), and training runs on two CPU cores in about two minutes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

VERSION = "v1"
FORTUNE_FILES = ("tang300", "song100")
SYSTEM_FORTUNES = Path("/usr/share/games/fortunes")
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Prompts the model learns to answer. The study note's own prompts come first.
FORM_PROMPTS = {(4, 7): "写一首七言绝句", (4, 5): "写一首五言绝句", (8, 7): "写一首七言律诗", (8, 5): "写一首五言律诗"}
THEMES = {"秋": "秋天", "春": "春天", "月": "月亮", "山": "山", "雨": "雨", "雪": "雪", "花": "花",
          "江": "江", "酒": "酒", "风": "风", "夜": "夜晚", "柳": "柳树"}
GENERIC_PROMPTS = ("写一首诗", "写一首古诗", "请写一首诗", "写一首唐诗")
MISSING_CORPUS = (
    "tiny-poet needs the classical poems from Debian's fortunes-zh package, and none were found.\n"
    "Fix: install them (`sudo apt-get install fortunes-zh`), or pass your own file:\n"
    "    python -m llmkit tiny-poet --corpus FILE\n"
    "FILE holds poems separated by lines of '%' (the fortune format) or blank lines; a first line\n"
    "like 《标题》 is used as the title."
)
_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_GOOD_CLAUSE = re.compile(rf"^{_HAN}{{5}}[，。]$|^{_HAN}{{7}}[，。]$")


class CorpusMissing(RuntimeError):
    """Raised when no poems can be found; the message names the --corpus fix."""


@dataclass(frozen=True)
class Poem:
    """One poem: its title and its verse lines (author dropped)."""

    title: str
    lines: tuple[str, ...]

    def text(self) -> str:
        """The poem as the model writes it: 《title》 then one couplet per line."""
        head = f"《{self.title}》\n" if self.title else ""
        return head + "\n".join(self.lines)


def parse_poems(text: str) -> list[Poem]:
    """Parse fortune-format (or blank-line separated) poems, dropping colour codes and authors."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).replace("\r\n", "\n")
    records = re.split(r"\n%\n|\n\s*\n", "\n" + text + "\n")
    poems = []
    for rec in records:
        lines = [ln.strip() for ln in rec.strip().split("\n") if ln.strip() and ln.strip() != "%"]
        title = ""
        if lines and "《" in lines[0] and "》" in lines[0]:
            title = lines[0][lines[0].index("《") + 1 : lines[0].index("》")]
            lines = lines[1:]
        lines = [ln for ln in lines if not re.match(r"^作者\s*[:：]", ln)]
        if lines and any(re.search(_HAN, ln) for ln in lines):
            poems.append(Poem(title, tuple(lines)))
    return poems


def clauses(text: str) -> list[str]:
    """Split generated poem text into verse clauses, each ending at its punctuation; titles skipped."""
    out = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or (line.startswith("《") and line.endswith("》")):
            continue
        out += [c for c in re.findall(r"[^，。？！；：、,.?!;:]*[，。？！；：、,.?!;:]?", line) if c]
    return out


def poem_shape_fraction(texts: Iterable[str]) -> float:
    """Fraction of verse clauses that are exactly 5 or 7 Han characters followed by ，or 。."""
    all_clauses = [c for t in texts for c in clauses(t)]
    if not all_clauses:
        return 0.0
    return sum(bool(_GOOD_CLAUSE.match(c)) for c in all_clauses) / len(all_clauses)


def cache_root() -> Path:
    """Where llmkit keeps built models: $LLMKIT_CACHE, else $XDG_CACHE_HOME/llmkit, else ~/.cache/llmkit."""
    if os.environ.get("LLMKIT_CACHE"):
        return Path(os.environ["LLMKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "llmkit"


def model_dir() -> Path:
    """The directory tiny-poet is (or will be) built into."""
    return cache_root() / f"tiny-poet-{VERSION}"


def is_built(path: Path | None = None) -> bool:
    """True when a complete tiny-poet build is at ``path`` (default: the cache)."""
    path = path or model_dir()
    need = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json", "build_info.json")
    if not all((path / f).is_file() for f in need):
        return False
    try:
        return json.loads((path / "build_info.json").read_text(encoding="utf-8")).get("recipe") == RECIPE
    except (OSError, ValueError):
        return False


def _fortunes_from_debian(log: Callable[[str], None]) -> list[Path]:
    """Fetch fortunes-zh with apt-get download (no root needed) into the cache and unpack it."""
    dest = cache_root() / "corpus" / "fortunes-zh"
    found = [dest / f for f in FORTUNE_FILES]
    if all(p.is_file() for p in found):
        return found
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return []
    log("fetching Debian's fortunes-zh (public-domain poems) with apt-get download ...")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["apt-get", "download", "fortunes-zh"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("fortunes-zh*.deb"))
        if r.returncode != 0 or not debs:
            log(f"apt-get download fortunes-zh failed: {(r.stderr or r.stdout).strip()[-300:]}")
            return []
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), os.path.join(tmp, "x")], check=True)
        dest.mkdir(parents=True, exist_ok=True)
        for f in FORTUNE_FILES:
            shutil.copy(Path(tmp, "x", "usr/share/games/fortunes", f), dest / f)
    return found


def load_corpus(corpus: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> list[Poem]:
    """The poems to train on: ``corpus`` if given, else fortunes-zh from the system or from Debian."""
    if corpus is not None:
        path = Path(corpus)
        if not path.is_file():
            raise CorpusMissing(f"--corpus {path}: no such file.\n\n{MISSING_CORPUS}")
        files = [path]
    else:
        files = [SYSTEM_FORTUNES / f for f in FORTUNE_FILES]
        if not all(p.is_file() for p in files):
            files = _fortunes_from_debian(log)
    poems = [p for f in files for p in parse_poems(Path(f).read_text(encoding="utf-8"))]
    if len(poems) < 20:
        where = ", ".join(map(str, files)) or "nowhere"
        raise CorpusMissing(f"found {len(poems)} poems ({where}); at least 20 are needed.\n\n{MISSING_CORPUS}")
    return poems


def prompts_for(poem: Poem) -> list[str]:
    """The requests a poem can answer: its form, its themes, and generic ones."""
    body = "".join(poem.lines)
    sizes = {len(c) - 1 for c in clauses(poem.text())}
    n_clauses = len(clauses(poem.text()))
    out = list(GENERIC_PROMPTS)
    if len(sizes) == 1 and (n_clauses, next(iter(sizes))) in FORM_PROMPTS:
        out.append(FORM_PROMPTS[(n_clauses, next(iter(sizes)))])
    out += [f"写一首关于{name}的诗" for ch, name in THEMES.items() if ch in body]
    return out


def build_vocab(poems: Sequence[Poem]) -> dict[str, int]:
    """Special tokens, then 256 byte-fallback tokens, then every character of poems and prompts."""
    text = "".join(p.text() for p in poems)
    text += "".join(FORM_PROMPTS.values()) + "".join(GENERIC_PROMPTS) + "写一首关于的诗" + "".join(THEMES.values())
    text += "".join(chr(c) for c in range(0x20, 0x7F)) + "\n，。？！；：、《》“”‘’（）"
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in sorted(set(text)):
        vocab.setdefault(ch, len(vocab))
    return vocab


def make_tokenizer(vocab: dict[str, int]):
    """A character-level tokenizer with byte fallback (tokenizers.Tokenizer), chat tokens special."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True))
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok


def model_config(vocab_size: int, **overrides):
    """The tiny Qwen3 config: 4 layers, hidden 256, 4 heads of head_dim 64, 2 KV heads (GQA)."""
    from transformers import Qwen3Config

    cfg = dict(vocab_size=vocab_size, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
               num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=4096,
               rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=None,
               eos_token_id=SPECIAL_TOKENS.index("<|im_end|>"), pad_token_id=0)
    cfg.update(overrides)
    return Qwen3Config(**cfg)


def _examples(poems: Sequence[Poem], tok, rng: random.Random, max_len: int) -> list[tuple[list[int], int]]:
    """(token ids, prompt length) pairs: each poem as a chat answer and as a raw continuation."""
    out = []
    for poem in poems:
        ps = prompts_for(poem)
        for _ in range(2):
            p = rng.choice(ps)
            prefix = f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"
            out.append((prefix, poem.text() + "<|im_end|>\n"))
        # Raw completion, as the study note prompts: the poem follows the request directly.
        out.append((rng.choice(ps) + rng.choice(("", "\n")), poem.text() + "<|endoftext|>"))
    enc = []
    for prefix, answer in out:
        a, b = tok.encode(prefix).ids, tok.encode(answer).ids
        if len(a) + len(b) <= max_len:
            enc.append((a + b, len(a)))
    return enc


def _batch(examples, pad_id: int):
    """Pad a list of examples; labels are -100 on the prompt and on padding."""
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


def _nll_per_char(model, examples, texts: Sequence[str]) -> float:
    """Per-character perplexity of the answers (prompt excluded), summed over the examples."""
    import torch

    total = 0.0
    with torch.no_grad():
        for ids, plen in examples:
            x = torch.tensor([ids])
            logits = model(input_ids=x).logits[0, :-1].float()
            lp = torch.log_softmax(logits, -1)
            tgt = x[0, 1:]
            total -= lp[plen - 1 :].gather(1, tgt[plen - 1 :, None]).sum().item()
    chars = sum(len(t) for t in texts)
    return math.exp(total / chars)


def build(corpus: str | os.PathLike | None = None, out: Path | None = None, seed: int = 0,
          steps: int = 240, log: Callable[[str], None] = print) -> Path:
    """Train tiny-poet from the poems and save it as a Hugging Face folder; returns its path."""
    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM

    t0 = time.time()
    out = Path(out) if out else model_dir()
    poems = load_corpus(corpus, log)
    corpus_sha = hashlib.sha256("\n".join(p.text() for p in poems).encode()).hexdigest()[:16]
    rng = random.Random(seed)
    order = list(range(len(poems)))
    rng.shuffle(order)
    n_eval = max(4, len(poems) // 20)
    eval_poems = [poems[i] for i in order[:n_eval]]
    train_poems = [poems[i] for i in order[n_eval:]]
    vocab = build_vocab(poems)
    tok = make_tokenizer(vocab)
    examples = _examples(train_poems, tok, rng, max_len=256)
    log(f"tiny-poet: {len(poems)} poems ({len(train_poems)} train, {len(eval_poems)} held out), "
        f"vocab {len(vocab)}, {len(examples)} training sequences")

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # same arithmetic order everywhere, so the build is reproducible
    try:
        cfg = model_config(len(vocab))
        model = Qwen3ForCausalLM(cfg)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01, betas=(0.9, 0.98))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.08)
        batch_size = 16
        # Sort-ish batching: group sequences of similar length to waste little on padding.
        for step in range(steps):
            idx = rng.sample(range(len(examples)), batch_size)
            x, y, mask = _batch([examples[i] for i in idx], pad_id=0)
            loss = model(input_ids=x, attention_mask=mask, labels=y).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if step % 100 == 0 or step == steps - 1:
                log(f"  step {step:4d}/{steps}  loss {loss.item():.3f}  {time.time() - t0:5.0f} s")
        model.eval()
        eval_ex = [(tok.encode(f"<|im_start|>user\n写一首诗<|im_end|>\n<|im_start|>assistant\n").ids
                    + tok.encode(p.text()).ids, len(tok.encode("<|im_start|>user\n写一首诗<|im_end|>\n<|im_start|>assistant\n").ids))
                   for p in eval_poems]
        ppl = _nll_per_char(model, eval_ex, [p.text() for p in eval_poems])
        samples = _sample(model, tok, "写一首关于秋天的诗", n=8, seed=seed)
        shape = poem_shape_fraction(samples)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
    gen = GenerationConfig(eos_token_id=[vocab["<|im_end|>"], vocab["<|endoftext|>"]], pad_token_id=0,
                           do_sample=True, temperature=0.7, top_p=0.95)
    gen.save_pretrained(tmp)
    _save_tokenizer(tok, tmp)
    info = {
        "name": "tiny-poet", "version": VERSION, "recipe": RECIPE, "seed": seed, "steps": steps, "corpus_sha256_16": corpus_sha,
        "poems": len(poems), "held_out_poems": len(eval_poems), "vocab_size": len(vocab),
        "parameters": sum(p.numel() for p in model.parameters()),
        "held_out_char_perplexity": round(ppl, 2), "uniform_baseline_perplexity": len(vocab),
        "poem_shape_fraction_T0.7_hf": round(shape, 3), "build_seconds": round(time.time() - t0, 1),
        "samples": samples[:3],
    }
    (tmp / "build_info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log(f"tiny-poet: held-out perplexity {ppl:.1f} per character (uniform: {len(vocab)}), "
        f"poem-shaped clauses {shape:.0%}, built in {time.time() - t0:.0f} s")
    return out


def _sample(model, tok, prompt: str, n: int, seed: int, temperature: float = 0.7, max_new: int = 80) -> list[str]:
    """Sample n chat answers with transformers' generate (used for the build report, not by the course)."""
    import torch

    torch.manual_seed(seed)
    ids = torch.tensor([tok.encode(f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n").ids])
    stop = [tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")]
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=temperature,
                             top_k=0, top_p=1.0, max_new_tokens=max_new, num_return_sequences=n,
                             eos_token_id=stop, pad_token_id=stop[1])
    texts = []
    for row in out[:, ids.shape[1]:].tolist():
        row = row[: next((i for i, t in enumerate(row) if t in stop), len(row))]
        texts.append(tok.decode(row))
    return texts


def _save_tokenizer(tok, path: Path) -> None:
    """Write tokenizer.json plus a tokenizer_config.json carrying the chat template."""
    tok.save(str(path / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "additional_special_tokens": list(SPECIAL_TOKENS),
        "model_max_length": 4096,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
    }
    (path / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
    (path / "special_tokens_map.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "additional_special_tokens": list(SPECIAL_TOKENS)},
        indent=2), encoding="utf-8")


def _recipe() -> str:
    """A hash of the code and constants that determine the weights; a cache built by other code is rebuilt."""
    import inspect

    parts = [inspect.getsource(f) for f in (parse_poems, clauses, prompts_for, build_vocab, make_tokenizer,
                                            model_config, _examples, _batch, build, _save_tokenizer)]
    parts += [repr((VERSION, FORTUNE_FILES, SPECIAL_TOKENS, CHAT_TEMPLATE, FORM_PROMPTS, THEMES, GENERIC_PROMPTS))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


RECIPE = _recipe()


def ensure(corpus: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """Return tiny-poet's directory, building it first if it is missing or incomplete."""
    path = model_dir()
    if corpus is None and is_built(path):
        return path
    return build(corpus=corpus, out=path, log=log)


# Layer shapes of real models, for random-weight stand-ins (timing and memory, not text). "small" is a
# random model of tiny-poet's size: it reproduces an untrained model's flat distribution in seconds on CPU.
SHAPES = {
    "small": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=64),
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, rope_theta=1000000.0),
}


def build_shaped(out: str | os.PathLike, shape: str = "qwen3-0.6b", base: Path | None = None, seed: int = 0) -> Path:
    """A Qwen3 with a real model's layer shapes, random weights and tiny-poet's tokenizer, saved to ``out``."""
    import torch
    from transformers import Qwen3ForCausalLM

    base = Path(base) if base else ensure(log=lambda m: None)
    out = Path(out)
    vocab_size = json.loads((base / "config.json").read_text())["vocab_size"]
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(model_config(vocab_size, **SHAPES[shape])).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        shutil.copy(base / name, out / name)
    (out / "build_info.json").write_text(json.dumps(
        {"name": f"random-{shape}", "shape": SHAPES[shape], "tokenizer": "tiny-poet", "seed": seed,
         "parameters": sum(p.numel() for p in model.parameters()), "note": "random weights: for timing, not text"},
        indent=2), encoding="utf-8")
    return out
