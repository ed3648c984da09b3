"""tiny-poet: the course's embedded model, a tiny Qwen3-style chat model trained locally on classical poems.

No model hub is needed: the poems come from Debian's public-domain ``fortunes-zh`` package
(唐诗三百首 and 宋词/宋诗 selections), the tokenizer is character level with byte fallback (so any
UTF-8 prompt encodes, 的 included), and training runs on two CPU cores in about two minutes.

It behaves like a small hybrid-thinking model: every answer starts with a think block, empty when the
request sets ``enable_thinking=False`` and holding a short plan (form and theme, e.g. 七言绝句，写秋天)
otherwise; given the course tool ``count_chars`` it calls it in the hermes format. vLLM's ``qwen3``
reasoning parser and ``hermes`` tool parser therefore work on it as they do on Qwen3.

A build is named by ``RECIPE``: a hash of data (the recipe version, the training spec, the tokenizer's
special tokens, the chat template and the prompt tables), never of code, so rewording a docstring
rebuilds nothing. The corpus is checked separately, by its hash in ``build_info.json``.
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

VERSION = "v2"  # the cache folder's name (tiny-poet-v2: thinks and calls a tool); a new recipe rebuilds in place
RECIPE_VERSION = 2  # bump when a code change alters what the build produces
FORTUNE_FILES = ("tang300", "song100")
SYSTEM_FORTUNES = Path("/usr/share/games/fortunes")
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
THINK_START, THINK_END, TOOL_START, TOOL_END = "<think>", "</think>", "<tool_call>", "</tool_call>"
# One token each, but not "special": they stay in decoded text, where vLLM's reasoning and tool parsers
# look for them by their text.
MARKUP_TOKENS = (THINK_START, THINK_END, TOOL_START, TOOL_END)
# The ASCII words of the chat and tool markup are whole tokens too, as in any BPE vocabulary: a tool call is
# then 15 tokens rather than 55 characters, and the tools system turn a quarter of its length.
MARKUP_WORDS = ("system", "user", "assistant", "tool", "tools", "name", "arguments", "description", "parameters",
                "properties", "required", "type", "object", "string", "function", "text", "count_chars", "JSON",
                '{"', '": "', '": {"', '", "', '"}', '"}}', '}}', '": [', '["', '"]')
EMPTY_THINK = f"{THINK_START}\n\n{THINK_END}\n\n"
TOOLS_INTRO = "可用的工具（每行一个 JSON 函数签名）："
TOOLS_HOWTO = '要用工具时，回复 <tool_call>{"name": 函数名, "arguments": 参数}</tool_call>。'

# ChatML turns, Qwen3-style: a system turn lists the tools, every assistant turn opens with a think block
# (the plan, or empty), tool calls are JSON inside <tool_call>, tool results come back as `tool` turns.
# With enable_thinking=false the generation prompt already holds the empty think block.
CHAT_TEMPLATE = r"""
{%- set thinking = enable_thinking if enable_thinking is defined else true -%}
{%- set has_system = messages | length > 0 and messages[0]['role'] == 'system' -%}
{%- if tools -%}
    {{- '<|im_start|>system\n' -}}
    {%- if has_system -%}{{- messages[0]['content'] + '\n\n' -}}{%- endif -%}
    {{- 'TOOLS_INTRO\n<tools>\n' -}}
    {%- for tool in tools -%}{{- ((tool['function'] if tool['function'] is defined else tool) | tojson) + '\n' -}}{%- endfor -%}
    {{- '</tools>\nTOOLS_HOWTO<|im_end|>\n' -}}
{%- elif has_system -%}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' -}}
{%- endif -%}
{%- for message in messages -%}
    {%- if message['role'] == 'system' -%}
        {%- if not loop.first -%}{{- raise_exception('tiny-poet: only the first message may be a system message') -}}{%- endif -%}
    {%- elif message['role'] == 'assistant' -%}
        {%- set content = message['content'] or '' -%}
        {%- set reasoning = message['reasoning_content'] or message['reasoning'] or '' -%}
        {%- if '</think>' in content -%}
            {%- set reasoning = content.split('</think>')[0].split('<think>')[-1] -%}
            {%- set content = content.split('</think>')[-1] -%}
        {%- endif -%}
        {{- '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') -}}
        {%- for call in message['tool_calls'] or [] -%}
            {%- set fn = call['function'] if call['function'] is defined else call -%}
            {%- set args = fn['arguments'] if fn['arguments'] is string else (fn['arguments'] | tojson) -%}
            {{- '<tool_call>{"name": ' + (fn['name'] | tojson) + ', "arguments": ' + args + '}</tool_call>' -}}
        {%- endfor -%}
        {{- '<|im_end|>\n' -}}
    {%- elif message['role'] == 'tool' -%}
        {{- '<|im_start|>tool\n' + message['content'] + '<|im_end|>\n' -}}
    {%- else -%}
        {{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\n' -}}
    {%- if not thinking -%}{{- '<think>\n\n</think>\n\n' -}}{%- endif -%}
{%- endif -%}
""".strip().replace("TOOLS_INTRO", TOOLS_INTRO).replace("TOOLS_HOWTO", TOOLS_HOWTO)

# Prompts the model learns to answer. The study note's own prompts come first.
FORM_PROMPTS = {(4, 7): "写一首七言绝句", (4, 5): "写一首五言绝句", (8, 7): "写一首七言律诗", (8, 5): "写一首五言律诗"}
FORM_NAMES = {(4, 7): "七言绝句", (4, 5): "五言绝句", (8, 7): "七言律诗", (8, 5): "五言律诗", 7: "七言古诗",
              5: "五言古诗", 0: "长短句"}
THEMES = {"秋": "秋天", "春": "春天", "月": "月亮", "山": "山", "雨": "雨", "雪": "雪", "花": "花",
          "江": "江", "酒": "酒", "风": "风", "夜": "夜晚", "柳": "柳树"}
GENERIC_PROMPTS = ("写一首诗", "写一首古诗", "请写一首诗", "写一首唐诗")

# The course tool tiny-poet learns to call (an OpenAI "tools" entry), the questions that ask for it,
# the plan it thinks when thinking is on, and how it answers once the tool's result comes back.
COUNT_CHARS_TOOL = {"type": "function", "function": {
    "name": "count_chars", "description": "数汉字",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}
TOOL_QUESTIONS = ("“{}”有几个字？", "数一数“{}”有多少个字", "“{}”一共几个字？")
TOOL_PLAN = "数字数，调用count_chars"
TOOL_ANSWER = "共{}个字。"

MISSING_CORPUS = (
    "tiny-poet needs the classical poems from Debian's fortunes-zh package, and none were found.\n"
    "Fix: install them (`sudo apt-get install fortunes-zh`), or pass your own file:\n"
    "    python -m llmkit tiny-poet --corpus FILE\n"
    "FILE holds poems separated by lines of '%' (the fortune format) or blank lines; a first line\n"
    "like 《标题》 is used as the title."
)
_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_GOOD_CLAUSE = re.compile(rf"^{_HAN}{{5}}[，。]$|^{_HAN}{{7}}[，。]$")


@dataclass(frozen=True)
class TrainSpec:
    """Everything besides the corpus that decides tiny-poet's weights: model shape, data mix, optimiser."""

    seed: int = 0
    # Model: a Qwen3 with 4 heads of head_dim 64 and 2 KV heads (grouped-query attention).
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    # Data, drawn afresh each epoch: chat answers per poem (a share of them with a plan in the think
    # block), raw continuations, and tool-call conversations.
    max_poem_chars: int = 400    # longer poems are left out
    chat_max_chars: int = 230    # longer poems train only as raw text
    max_len: int = 1024
    chat_per_poem: int = 2
    raw_per_poem: int = 1        # raw continuations of each poem, each epoch
    thinking_share: float = 0.5
    tool_chats: int = 40        # conversations under one tools system turn, of tool_turns exchanges each:
    tool_turns: int = 6         # count_chars questions (a share answered after the result) or poem requests
    tool_result_share: float = 0.3
    tool_poem_share: float = 0.15
    tool_loss_weight: float = 2.0  # a tool turn's token counts twice in the loss (rarer than poems, and exact)
    # Optimiser: AdamW on length-bucketed batches of at most batch_tokens (padded) tokens; linear
    # warm-up, then cosine decay to final_lr_share of the peak.
    epochs: int = 3
    batch_tokens: int = 1024
    lr: float = 3e-3
    warmup_steps: int = 12
    final_lr_share: float = 0.0
    weight_decay: float = 0.01
    beta2: float = 0.98
    clip_norm: float = 1.0
    max_steps: int | None = None  # cut training short (tests); part of the recipe, so never mistaken for a build
    threads: int = 2  # same arithmetic order everywhere, so the build is reproducible


SPEC = TrainSpec()


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


def recipe_data(spec: TrainSpec = SPEC) -> dict[str, Any]:
    """What names a build, as plain data: recipe version, spec, tokenizer tokens, template and prompt tables."""
    return {"recipe_version": RECIPE_VERSION, "spec": asdict(spec), "special_tokens": SPECIAL_TOKENS,
            "markup_tokens": MARKUP_TOKENS, "markup_words": MARKUP_WORDS, "chat_template": CHAT_TEMPLATE, "fortune_files": FORTUNE_FILES,
            "form_prompts": sorted((list(k), v) for k, v in FORM_PROMPTS.items()),
            "form_names": sorted((str(k), v) for k, v in FORM_NAMES.items()), "themes": THEMES,
            "generic_prompts": GENERIC_PROMPTS, "tools": [COUNT_CHARS_TOOL], "tool_questions": TOOL_QUESTIONS,
            "tool_plan": TOOL_PLAN, "tool_answer": TOOL_ANSWER}


def recipe_hash(spec: TrainSpec = SPEC) -> str:
    """A 12-hex-digit hash of ``recipe_data(spec)``: the same data always gives the same name."""
    blob = json.dumps(recipe_data(spec), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


RECIPE = recipe_hash()


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


def split_thinking(text: str) -> tuple[str | None, str]:
    """(plan, answer) of generated text: the think block's content (None if there is none) and what follows."""
    if THINK_END not in text:
        return None, text
    head, _, answer = text.partition(THINK_END)
    return head.split(THINK_START)[-1].strip("\n"), answer.lstrip("\n")


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
    """Fraction of verse clauses that are exactly 5 or 7 Han characters followed by ，or 。 (think blocks skipped)."""
    all_clauses = [c for t in texts for c in clauses(split_thinking(t)[1])]
    if not all_clauses:
        return 0.0
    return sum(bool(_GOOD_CLAUSE.match(c)) for c in all_clauses) / len(all_clauses)


def count_chars(text: str) -> int:
    """The course tool ``count_chars``: how many Han characters ``text`` holds."""
    return len(re.findall(_HAN, text))


def cache_root() -> Path:
    """Where llmkit keeps built models: $LLMKIT_CACHE, else $XDG_CACHE_HOME/llmkit, else ~/.cache/llmkit."""
    if os.environ.get("LLMKIT_CACHE"):
        return Path(os.environ["LLMKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "llmkit"


def model_dir() -> Path:
    """The directory tiny-poet is (or will be) built into."""
    return cache_root() / f"tiny-poet-{VERSION}"


def corpus_sha(poems: Sequence[Poem]) -> str:
    """A 16-hex-digit hash of the poems' text: the data half of a build's identity."""
    return hashlib.sha256("\n".join(p.text() for p in poems).encode()).hexdigest()[:16]


def local_corpus_sha() -> str | None:
    """The default corpus's hash if its files are on this machine already (nothing is fetched), else None."""
    for folder in (SYSTEM_FORTUNES, cache_root() / "corpus" / "fortunes-zh"):
        files = [folder / f for f in FORTUNE_FILES]
        if all(p.is_file() for p in files):
            return corpus_sha([p for f in files for p in parse_poems(f.read_text(encoding="utf-8"))])
    return None


def is_built(path: Path | None = None, spec: TrainSpec = SPEC) -> bool:
    """True when ``path`` (default: the cache) holds a complete build of ``spec``'s recipe from the local corpus."""
    path = path or model_dir()
    need = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json", "build_info.json")
    if not all((path / f).is_file() for f in need):
        return False
    try:
        info = json.loads((path / "build_info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if info.get("recipe") != recipe_hash(spec):
        return False
    local = local_corpus_sha()
    return local is None or info.get("corpus_sha256_16") == local


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


def poem_form(poem: Poem) -> tuple[int, int] | int:
    """The poem's form key: (clauses, size) for 绝句/律诗, else the clause size of a regular poem, else 0."""
    sizes = {len(c) - 1 for c in clauses(poem.text())}
    n_clauses = len(clauses(poem.text()))
    if len(sizes) != 1:
        return 0
    size = next(iter(sizes))
    if (n_clauses, size) in FORM_PROMPTS:
        return (n_clauses, size)
    return size if size in (5, 7) else 0


def prompts_for(poem: Poem) -> list[str]:
    """The requests a poem can answer: its form, its themes, and generic ones."""
    body = "".join(poem.lines)
    form = poem_form(poem)
    out = list(GENERIC_PROMPTS)
    if form in FORM_PROMPTS:
        out.append(FORM_PROMPTS[form])
    out += [f"写一首关于{name}的诗" for ch, name in THEMES.items() if ch in body]
    return out


def plan_for(poem: Poem, prompt: str) -> str:
    """The think-block plan for answering ``prompt`` with ``poem``: its form, then the theme (e.g. 七言绝句，写秋天)."""
    form = FORM_NAMES[poem_form(poem)]
    theme = next((name for name in THEMES.values() if prompt == f"写一首关于{name}的诗"), None)
    if theme is None:
        theme = next((name for ch, name in THEMES.items() if ch in "".join(poem.lines)), None)
    return f"{form}，写{theme}" if theme else form


def build_vocab(poems: Sequence[Poem]) -> dict[str, int]:
    """Special, markup and markup-word tokens, then 256 byte-fallback tokens, then every character of the texts."""
    text = "".join(p.text() for p in poems)
    text += "".join(FORM_PROMPTS.values()) + "".join(GENERIC_PROMPTS) + "写一首关于的诗" + "".join(THEMES.values())
    text += "".join(FORM_NAMES.values()) + CHAT_TEMPLATE + json.dumps(COUNT_CHARS_TOOL, ensure_ascii=False)
    text += "".join(TOOL_QUESTIONS) + TOOL_PLAN + TOOL_ANSWER + "0123456789"
    text += "".join(chr(c) for c in range(0x20, 0x7F)) + "\n，。？！；：、《》“”‘’（）"
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + MARKUP_TOKENS + MARKUP_WORDS)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in sorted(set(text)):
        vocab.setdefault(ch, len(vocab))
    return vocab


def make_tokenizer(vocab: dict[str, int]):
    """A character-level tokenizer with byte fallback (tokenizers.Tokenizer): chat tokens special, markup not.

    The markup tokens and words are added tokens: matched first (longest wins), kept in decoded text.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models

    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True))
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP_TOKENS + MARKUP_WORDS])
    return tok


def chat_tokenizer(tok):
    """``tok`` wrapped as transformers' fast tokenizer with the chat template: what a server renders with."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=CHAT_TEMPLATE, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")


def model_config(vocab_size: int, spec: TrainSpec = SPEC, **overrides):
    """The Qwen3 config of ``spec`` (4 layers, hidden 256, 4 heads of head_dim 64, 2 KV heads), tied embeddings."""
    from transformers import Qwen3Config

    cfg = dict(vocab_size=vocab_size, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
               num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
               num_key_value_heads=spec.num_key_value_heads, head_dim=spec.head_dim, max_position_embeddings=4096,
               rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=None,
               eos_token_id=SPECIAL_TOKENS.index("<|im_end|>"), pad_token_id=0)
    cfg.update(overrides)
    return Qwen3Config(**cfg)


Segment = tuple[str, float]  # a piece of training text, and the weight of learning to write it (0: context)


def poem_chat(poem: Poem, prompt: str, thinking: bool) -> tuple[list[dict], dict]:
    """A poem request as chat messages, and the template arguments (enable_thinking) it is rendered with."""
    answer = {"role": "assistant", "content": poem.text()}
    if thinking:
        answer["reasoning_content"] = plan_for(poem, prompt)
    return [{"role": "user", "content": prompt}, answer], {"enable_thinking": thinking}


def tool_exchange(text: str, question: str, thinking: bool, with_result: bool) -> list[dict]:
    """A count_chars exchange: the question, the call (with its plan when thinking), maybe the result and answer."""
    call = {"role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "count_chars", "arguments": {"text": text}}}]}
    if thinking:
        call["reasoning_content"] = TOOL_PLAN
    messages = [{"role": "user", "content": question.format(text)}, call]
    if with_result:
        n = count_chars(text)
        messages += [{"role": "tool", "content": str(n)}, {"role": "assistant", "content": TOOL_ANSWER.format(n)}]
    return messages


def tool_chat(text: str, question: str, thinking: bool, with_result: bool) -> tuple[list[dict], dict]:
    """One count_chars exchange as a conversation with the tool offered, and its template arguments."""
    return tool_exchange(text, question, thinking, with_result), {"enable_thinking": thinking,
                                                                  "tools": [COUNT_CHARS_TOOL]}


def render_segments(chat_tok, messages: list[dict], kwargs: dict, weight: float = 1.0) -> list[Segment]:
    """A conversation as text segments via the chat template: assistant turns learned at ``weight``, the rest context."""
    segments: list[Segment] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = chat_tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True, **kwargs)
        full = chat_tok.apply_chat_template(messages[: i + 1], tokenize=False, **kwargs)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise AssertionError(f"the chat template does not render turn by turn:\n{done!r}\n{prompt!r}\n{full!r}")
        segments += [(prompt[len(done):], 0.0), (full[len(prompt):], weight)]
        done = full
    return segments


def render_example(chat_tok, messages: list[dict], kwargs: dict) -> tuple[str, str]:
    """(prompt, answer) text of a conversation whose last message is the answer to learn, via the chat template."""
    segments = render_segments(chat_tok, messages, kwargs)
    return "".join(text for text, _ in segments[:-1]), segments[-1][0]


def _tool_texts(poems: Sequence[Poem]) -> list[str]:
    """Texts the tool questions ask about: the poems' clauses and short lines (3 to 16 characters)."""
    return [t for p in poems for t in (*p.lines, *clauses(p.text())) if 3 <= len(t) <= 16]


def tool_conversation(poems: Sequence[Poem], texts: Sequence[str], rng: random.Random,
                      spec: TrainSpec = SPEC) -> tuple[list[dict], dict]:
    """Several exchanges under one tools system turn (its cost shared): count_chars questions and a poem request."""
    thinking = rng.random() < spec.thinking_share
    messages: list[dict] = []
    for _ in range(spec.tool_turns):
        if rng.random() < spec.tool_poem_share:
            poem = rng.choice(poems)
            messages += poem_chat(poem, rng.choice(prompts_for(poem)), thinking)[0]
        else:
            messages += tool_exchange(rng.choice(texts), rng.choice(TOOL_QUESTIONS), thinking,
                                      with_result=rng.random() < spec.tool_result_share)
    return messages, {"enable_thinking": thinking, "tools": [COUNT_CHARS_TOOL]}


def epoch_examples(poems: Sequence[Poem], chat_tok, rng: random.Random, spec: TrainSpec = SPEC) -> list[list[Segment]]:
    """One epoch's examples as segments: chat poems (think block empty or planned), raw continuations, tool chats."""
    out = []
    for poem in (p for p in poems if len(p.text()) <= spec.max_poem_chars):
        ps = prompts_for(poem)
        # Chat answers only from regular poems (5- or 7-character clauses) of at most chat_max_chars: the
        # shape a request for a poem should get. Long and irregular ones (词) still train as raw text.
        chats = spec.chat_per_poem if poem_form(poem) != 0 and len(poem.text()) <= spec.chat_max_chars else 0
        for _ in range(chats):
            out.append(render_segments(chat_tok, *poem_chat(poem, rng.choice(ps), rng.random() < spec.thinking_share)))
        for _ in range(spec.raw_per_poem):
            # Raw completion, as the study note prompts: the poem follows the request directly.
            out.append([(rng.choice(ps) + rng.choice(("", "\n")), 0.0), (poem.text() + "<|endoftext|>", 1.0)])
    short = [p for p in poems if len(p.text()) <= 120]
    texts = _tool_texts(poems)
    out += [render_segments(chat_tok, *tool_conversation(short, texts, rng, spec), weight=spec.tool_loss_weight)
            for _ in range(spec.tool_chats)]
    return out


def encode_examples(tok, examples: Sequence[list[Segment]], max_len: int) -> list[tuple[list[int], list[float]]]:
    """(token ids, loss weights) of each example that fits ``max_len`` tokens; weight 0 where nothing is learned."""
    out = []
    for segments in examples:
        ids: list[int] = []
        weights: list[float] = []
        for text, weight in segments:
            piece = tok.encode(text).ids
            ids += piece
            weights += [weight] * len(piece)
        if len(ids) <= max_len:
            out.append((ids, weights))
    return out


def length_batches(lengths: Sequence[int], max_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped into batches of similar length, each at most ``max_tokens`` once padded, in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lambda i: lengths[i] // 16)  # stable: random order within each 16-token bucket
    batches, cur, width = [], [], 0
    for i in order:
        w = max(width, lengths[i])
        if cur and w * (len(cur) + 1) > max_tokens:
            batches.append(cur)
            cur, w = [], lengths[i]
        cur.append(i)
        width = w
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def _batch(examples, pad_id: int):
    """Right-pad a list of (ids, weights) examples into token ids and loss weights (padding weighs 0)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    x = torch.full((len(examples), width), pad_id, dtype=torch.long)
    w = torch.zeros((len(examples), width), dtype=torch.float32)
    for i, (ids, weights) in enumerate(examples):
        x[i, : len(ids)] = torch.tensor(ids)
        w[i, : len(ids)] = torch.tensor(weights)
    return x, w


def weighted_loss(model, x, w):
    """Next-token cross-entropy over the learned tokens, each weighted by ``w``, per learned token.

    The LM head runs only where a token is learned: context and padding need hidden states, not logits.
    """
    import torch

    hidden = model.model(input_ids=x).last_hidden_state[:, :-1]
    weights = w[:, 1:]
    learned = weights > 0
    logits = model.lm_head(hidden[learned])
    ce = torch.nn.functional.cross_entropy(logits.float(), x[:, 1:][learned], reduction="none")
    return (ce * weights[learned]).sum() / learned.sum()


def lr_factor(step: int, total: int, spec: TrainSpec = SPEC) -> float:
    """The learning-rate multiplier at ``step``: linear warm-up, then cosine decay to ``final_lr_share``."""
    if step < spec.warmup_steps:
        return (step + 1) / spec.warmup_steps
    progress = (step - spec.warmup_steps) / max(1, total - spec.warmup_steps)
    return spec.final_lr_share + (1 - spec.final_lr_share) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(model, epochs: Sequence[list[tuple[list[int], list[int]]]], spec: TrainSpec, log: Callable[[str], None],
          rng: random.Random) -> int:
    """Train ``model`` in place on each epoch's examples; returns the number of optimiser steps."""
    import torch

    plan = [(ex, b) for ex in epochs for b in length_batches([len(ids) for ids, _ in ex], spec.batch_tokens, rng)]
    if spec.max_steps is not None:
        plan = plan[: spec.max_steps]
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, betas=(0.9, spec.beta2))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, len(plan), spec))
    model.train()
    t0 = time.time()
    for step, (examples, idx) in enumerate(plan):
        x, w = _batch([examples[i] for i in idx], pad_id=0)
        # No attention mask: padding sits after the real tokens and attention is causal, so no real token
        # sees it, and the loss gives it weight 0.
        loss = weighted_loss(model, x, w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip_norm)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == len(plan) - 1:
            log(f"  step {step:4d}/{len(plan)}  loss {loss.item():.3f}  {time.time() - t0:5.0f} s")
    model.eval()
    return len(plan)


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


def held_out_perplexity(model, tok, chat_tok, poems: Sequence[Poem]) -> float:
    """Per-character perplexity of held-out poems answering 写一首诗 with thinking off."""
    prompt = chat_tok.apply_chat_template([{"role": "user", "content": "写一首诗"}], tokenize=False,
                                          add_generation_prompt=True, enable_thinking=False)
    head = tok.encode(prompt).ids
    examples = [(head + tok.encode(p.text()).ids, len(head)) for p in poems]
    return _nll_per_char(model, examples, [p.text() for p in poems])


def split_corpus(poems: Sequence[Poem], seed: int) -> tuple[list[Poem], list[Poem]]:
    """(train, held out): a seeded shuffle, one poem in twenty (at least four) held out."""
    order = list(range(len(poems)))
    random.Random(seed).shuffle(order)
    n_eval = max(4, len(poems) // 20)
    return [poems[i] for i in order[n_eval:]], [poems[i] for i in order[:n_eval]]


def build(corpus: str | os.PathLike | None = None, out: Path | None = None, spec: TrainSpec = SPEC,
          log: Callable[[str], None] = print, report_samples: int = 8, name: str = "tiny-poet") -> Path:
    """Train tiny-poet (or, with another ``spec``, a sibling such as notebook 17's draft model) from the poems and
    save it as a Hugging Face folder; returns its path."""
    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM

    t0 = time.time()
    out = Path(out) if out else model_dir()
    poems = load_corpus(corpus, log)
    train_poems, eval_poems = split_corpus(poems, spec.seed)
    rng = random.Random(spec.seed)
    vocab = build_vocab(poems)
    tok = make_tokenizer(vocab)
    chat_tok = chat_tokenizer(tok)
    epochs = [encode_examples(tok, epoch_examples(train_poems, chat_tok, rng, spec), spec.max_len)
              for _ in range(spec.epochs)]
    log(f"{name}: {len(poems)} poems ({len(train_poems)} train, {len(eval_poems)} held out), vocab {len(vocab)}, "
        f"{len(epochs[0])} sequences ({sum(len(ids) for ids, _ in epochs[0])} tokens) per epoch, {spec.epochs} epochs")

    torch.manual_seed(spec.seed)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        model = Qwen3ForCausalLM(model_config(len(vocab), spec))
        steps = train(model, epochs, spec, log, rng)
        t_train = time.time() - t0
        ppl = held_out_perplexity(model, tok, chat_tok, eval_poems)
        samples = _sample(model, tok, chat_tok, "写一首关于秋天的诗", n=report_samples, seed=spec.seed)
        shape = poem_shape_fraction(samples)
        planned = sum(split_thinking(s)[0] is not None for s in samples) / max(1, len(samples))
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
        "name": name, "version": VERSION, "recipe": recipe_hash(spec), "recipe_data": recipe_data(spec),
        "corpus_sha256_16": corpus_sha(poems), "steps": steps,
        "poems": len(poems), "held_out_poems": len(eval_poems), "vocab_size": len(vocab),
        "parameters": sum(p.numel() for p in model.parameters()),
        "held_out_char_perplexity": round(ppl, 2), "uniform_baseline_perplexity": len(vocab),
        "poem_shape_fraction_T0.7_hf": round(shape, 3), "think_block_share_T0.7_hf": round(planned, 3),
        "train_seconds": round(t_train, 1), "build_seconds": round(time.time() - t0, 1),
        "torch_threads": spec.threads, "samples": samples[:3],
    }
    publish_build(tmp, out, info)
    log(f"{name}: held-out perplexity {ppl:.1f} per character (uniform: {len(vocab)}), "
        f"poem-shaped clauses {shape:.0%}, built in {time.time() - t0:.0f} s")
    return out


def publish_build(tmp: Path, out: Path, info: dict[str, Any]) -> None:
    """Write ``info`` as build_info.json into the finished ``tmp`` folder, then put it in ``out``'s place (a build
    is never seen half written: is_built looks for build_info.json last)."""
    (tmp / "build_info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def _sample(model, tok, chat_tok, prompt: str, n: int, seed: int, temperature: float = 0.7,
            max_new: int = 96) -> list[str]:
    """Sample n chat answers (thinking on) with transformers' generate: the build report, not the course's engine."""
    import torch

    if n <= 0:
        return []
    torch.manual_seed(seed)
    text = chat_tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tok.encode(text).ids])
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


# ---------------------------------------------------------------------------------------------------
# Checks in the real engine: vLLM's OpenAI server with the qwen3 reasoning parser and the hermes tool parser
# ---------------------------------------------------------------------------------------------------
CHECK_TOOL_TEXT = "白日依山尽，黄河入海流。"  # the tool question the checks ask (TOOL_QUESTIONS[0] about this)
VLLM_PARSER_FLAGS = {"enable_auto_tool_choice": True, "tool_call_parser": "hermes", "reasoning_parser": "qwen3"}


def tool_call_ok(call: dict, tool: dict = COUNT_CHARS_TOOL) -> bool:
    """Whether one parsed tool call (OpenAI form) names ``tool`` and its arguments satisfy the tool's JSON schema."""
    from llmkit.tool_calls import call_problem

    return call_problem(call, [tool]) is None


def _choices(server, messages: list[dict], n: int, seed: int, **body: Any) -> list[dict]:
    """The ``n`` choices of one chat completion at T=0.7 (one request, seeded)."""
    from llmkit.clients import post_json

    req = {"model": server.model, "messages": messages, "n": n, "seed": seed, "temperature": 0.7, **body}
    return post_json(server, "/v1/chat/completions", req, timeout=600).json()["choices"]


def vllm_checks(server, n: int = 20, seed: int = 0) -> dict[str, Any]:
    """Rates over ``n`` samples each, on a vLLM server started with ``VLLM_PARSER_FLAGS``.

    tool_call_rate: the tool question gives a parsed count_chars call with schema-valid arguments;
    reasoning_rate: a poem request (thinking on) gives a non-empty ``reasoning`` and tag-free content;
    plus the exact-argument share, the poem-shape fraction of the contents, thinking off, and raw completion.
    """
    from llmkit.clients import post_json

    ask = [{"role": "user", "content": TOOL_QUESTIONS[0].format(CHECK_TOOL_TEXT)}]
    calls = [(c["message"].get("tool_calls") or [None])[0]
             for c in _choices(server, ask, n, seed, tools=[COUNT_CHARS_TOOL], max_tokens=128)]
    ok = [c is not None and tool_call_ok(c) for c in calls]
    exact = [o and json.loads(c["function"]["arguments"]).get("text") == CHECK_TOOL_TEXT for o, c in zip(ok, calls)]
    poem = [{"role": "user", "content": "写一首关于秋天的诗"}]
    on = [c["message"] for c in _choices(server, poem, n, seed, max_tokens=160)]
    separated = [bool(m.get("reasoning")) and bool(m.get("content")) and THINK_START not in m["content"]
                 and THINK_END not in m["content"] for m in on]
    off = [c["message"] for c in _choices(server, poem, n, seed, max_tokens=160,
                                          chat_template_kwargs={"enable_thinking": False})]
    raw = post_json(server, "/v1/completions", {"model": server.model, "prompt": "写一首七言绝句", "n": n, "seed": seed,
                                                "temperature": 0.7, "max_tokens": 120}, timeout=600).json()["choices"]
    return {
        "samples": n, "temperature": 0.7, "server_flags": VLLM_PARSER_FLAGS,
        "tool_call_rate": sum(ok) / n, "tool_call_exact_argument_rate": sum(exact) / n,
        "reasoning_rate": sum(separated) / n,
        "poem_shape_fraction_thinking_on": round(poem_shape_fraction(m.get("content") or "" for m in on), 3),
        "poem_shape_fraction_thinking_off": round(poem_shape_fraction(m.get("content") or "" for m in off), 3),
        "reasoning_when_thinking_off": sum(bool(m.get("reasoning")) for m in off) / n,
        "poem_shape_fraction_raw_completion": round(poem_shape_fraction(c["text"] for c in raw), 3),
        "example_plan": on[0].get("reasoning"), "example_call": calls[0],
    }


def record_vllm_checks(path: Path | None = None, n: int = 20, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Start vLLM's server on the built model with the parsers, run ``vllm_checks``, and save them in build_info.json."""
    import vllm

    from llmkit.lifecycle import start_vllm_server

    path = Path(path) if path else model_dir()
    log(f"starting vLLM {vllm.__version__} on {path} with {VLLM_PARSER_FLAGS} ...")
    with start_vllm_server(str(path), timeout=600, **VLLM_PARSER_FLAGS) as server:
        checks = {"vllm_version": vllm.__version__, **vllm_checks(server, n=n)}
    info_path = path / "build_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info["vllm_checks"] = checks
    info_path.write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    log(f"tiny-poet in vLLM: tool calls {checks['tool_call_rate']:.0%}, reasoning separated {checks['reasoning_rate']:.0%}")
    return checks


def ensure(corpus: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """Return tiny-poet's directory, building it first if it is missing, incomplete or of another recipe."""
    path = model_dir()
    if corpus is None and is_built(path):
        return path
    return build(corpus=corpus, out=path, log=log)
