"""llmkit.exercises: every exercise a notebook lists has a checker cell, a hidden solution, and a checker that
passes the solution and gives a hint (never the solution) for wrong answers.

The hidden solution cells compute their answers with a live engine and ``assert check(...)``, so the nbval
run of each notebook proves its solutions pass. Here the same checkers get answers built from small
stand-ins for vLLM's outputs, real SGLang replies (the recorded capture) and stand-ins of the same shape,
plus the real tiny-poet chat template, so they are tested in seconds.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from llmkit.clients import from_sglang
from llmkit.exercises import EXERCISES, Verdict, check, evaluate
from llmkit.config import model_shape
from llmkit.logprobs import distribution
from llmkit.mapping import vllm_to_sglang
from llmkit.sampling import preset
from llmkit.system import SETUP_HINT

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# Notebooks whose exercises have no checker cells yet; each is skipped with this reason, not passed.
PENDING: dict[str, str] = {}


# ------------------------------------------------------------------------------------ stand-ins for vLLM
def lp(logprob: float, rank: int, token: str = "x") -> SimpleNamespace:
    """A vLLM ``Logprob``."""
    return SimpleNamespace(logprob=logprob, rank=rank, decoded_token=token)


def completion(n_tokens: int = 8, finish_reason: str = "length", stop_reason=None, text: str = "秋风起",
               logprobs=None, cumulative_logprob=None) -> SimpleNamespace:
    """A vLLM ``CompletionOutput``."""
    return SimpleNamespace(index=0, text=text, token_ids=list(range(n_tokens)), finish_reason=finish_reason,
                           stop_reason=stop_reason, logprobs=logprobs, cumulative_logprob=cumulative_logprob)


def request(outputs: list, prompt: str = "写一首诗", n_prompt: int = 5) -> SimpleNamespace:
    """A vLLM ``RequestOutput``."""
    return SimpleNamespace(prompt=prompt, prompt_token_ids=list(range(100, 100 + n_prompt)), outputs=outputs)


class ProcessedEngine:
    """An engine with logprobs_mode="processed_logprobs" over six tokens: softmax(logits / temperature)."""

    model_config = SimpleNamespace(logprobs_mode="processed_logprobs")
    logits = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5]   # at temperature 1 the top token has p=0.41; at 0.5, p=0.63

    def generate(self, prompts, params, use_tqdm=False):
        """One step of ``logprobs=k`` candidates under ``params.temperature``."""
        z = [x / params.temperature for x in self.logits]
        norm = math.log(sum(math.exp(v) for v in z))
        position = {tid: lp(v - norm, tid + 1, f"t{tid}") for tid, v in enumerate(z[:params.logprobs])}
        return [SimpleNamespace(outputs=[SimpleNamespace(logprobs=[position], token_ids=[0])])]


# A distribution at temperature 1 with probabilities 0.4, 0.25, 0.15, 0.1, 0.05, 0.05 (top 3 sum to 0.8).
BASE = distribution({tid: lp(math.log(p), tid + 1) for tid, p in enumerate([0.4, 0.25, 0.15, 0.1, 0.05, 0.05])}, 0)
# A KV shape of 4,096 bytes per token (float32) and a budget of 256 tokens of it.
SHAPE = model_shape({"num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
                  "hidden_size": 256, "torch_dtype": "float32"})
KV = {"budget": 256 * 4096, "shape": SHAPE, "block_size": 16}
CHOSEN = [-0.1, -1.2, -0.5, -2.0]
SCORED = completion(4, logprobs=[{i: lp(v, 1)} for i, v in enumerate(CHOSEN)], cumulative_logprob=sum(CHOSEN))
RANKED = completion(3, logprobs=[{0: lp(-0.2, 1)}, {1: lp(-1.5, 3)}, {2: lp(-0.9, 2)}])
TABLE = pd.DataFrame({"token": ["《", "秋", "夕", "》", "\n", "银", "烛"],
                      "logprob": [None, -3.0, -5.5, -0.01, -0.02, -7.1, -4.0]})
OUTPUT = request([completion(10), completion(12)], n_prompt=5)


def response(status: int, param: str | None = "max_token") -> SimpleNamespace:
    """A requests.Response from the note server: status and its error body."""
    body = {"error": {"message": "unknown field", "type": "invalid_request_error", "param": param, "code": status}}
    return SimpleNamespace(status_code=status, json=lambda: body if status >= 400 else {"results": ["秋"]})


def completions_answer(n: int = 3, k: int = 2, logprobs: bool = True, chat: bool = False) -> dict:
    """A /v1/completions (or chat) answer as JSON, with n choices and top-k logprobs per token."""
    lp = {"tokens": ["秋", "风"], "token_logprobs": [-0.5, -1.0],
          "top_logprobs": [{f"t{i}": -0.5 - i for i in range(k)}] * 2} if logprobs else None
    choices = [{"index": i, "text": "秋风", "finish_reason": "length", "logprobs": lp} for i in range(n)]
    if chat:
        choices = [{"index": i, "message": {"content": "秋风"}, "finish_reason": "length"} for i in range(n)]
    return {"object": "chat.completion" if chat else "text_completion", "choices": choices}


@pytest.fixture(scope="module")
def rendered(tiny_poet_dir):
    """The tiny-poet chat template for user, assistant, user: with and without the assistant's opening."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_poet_dir))
    messages = [{"role": "user", "content": "写一首七言绝句"}, {"role": "assistant", "content": "《春晓》\n春眠不觉晓"},
                {"role": "user", "content": "再写一首关于秋天的诗"}]
    render = lambda gen: tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)  # noqa: E731
    return messages, render(True), render(False)


# Per exercise: the context its notebook cell passes, right answers, and wrong answers (each must get a hint).
CASES = {
    "00.1": ({}, ["length", " 'length' ", completion(8)], ["stop", "eos_token", completion(5, "stop"), completion(12)]),
    "00.2": ({}, ["vllm", ("vllm", SETUP_HINT)], ["sglang", "torch", ("vllm", "pip install sglang")]),
    "01.1": ({}, [([request([completion()]) for _ in range(16)], [request([completion()] * 16)])],
             [([request([completion()] * 16)], [request([completion()]) for _ in range(16)]),
              ([request([completion()]) for _ in range(8)], [request([completion()] * 16)]),
              ([request([completion()]) for _ in range(16)], [request([completion()])]),
              "n=16"]),
    "01.3": ({}, ["length", [request([completion(8)]), request([completion(8)])]],
             ["stop", [request([completion(8)]), request([completion(3, "stop")])]]),
    "02.1": ({}, [8192, "8,192", (8192, 16384)], [2048, 16384, 4096, 262144, (8192, 8192), 1000]),
    "02.2": ({}, [54, 54.0], [72, 56, 70, 62, 80, 442368, 53]),
    "02.3": (KV, [256], [240, 272, 250, 0]),
    "03.1": ({"llm": ProcessedEngine(), "prompt": "p"}, [0.5, 0.3], [1.0, 1.5, 0.0]),
    "03.2": ({"base": BASE}, [round(0.8 - 1e-4, 6), 0.76, 0.8], [0.9, 0.6, 0.7, 1.5]),
    "03.3": ({}, [preset("creative", repetition_penalty=1.1, max_tokens=64, seed=0),
                  {"temperature": 0.9, "max_tokens": 48}],
             [preset("creative"), {"temperature": 0, "max_tokens": 64}, {"n": 8, "max_tokens": 64},
              {"temperature": -1.0, "max_tokens": 64}, "creative"]),
    "04.1": ({}, [[f"poem {i}" for i in range(9)], 9],
             [[f"poem {i}" for i in range(3)], [[f"poem {i}"] * 3 for i in range(3)], 3, [completion()] * 9,
              [request([completion()] * 3)] * 3]),
    "04.2": ({}, ["\n", "\\n", completion(4, "stop", "\n")],
             ["stop", "None", "length", 151645, completion(200, "length"), completion(9, "stop", None)]),
    "04.3": ({"output": OUTPUT}, [15, 17, 27, "there is no single field", "None"],
             [5, 10, 22, "n_generated_tokens", "usage"]),
    "05.1": ({"completion": SCORED}, [math.exp(sum(CHOSEN))],
             [sum(CHOSEN), sum(math.exp(v) for v in CHOSEN), math.exp(sum(CHOSEN) / 4), 0.5, 2.0]),
    "05.2": ({"table": TABLE}, ["银", ("银", "》")], ["》", "秋", "x", ("银", "秋"), 7]),
    "05.3": ({"completion": RANKED}, [3], [6, 2, 0, 2.5]),
    "06.1": ({}, [response(422), 422, {"error": {"param": "max_token"}}],
             [response(200), 200, 500, 400, response(422, "prompt"), {"results": []}]),
    "06.2": ({}, [completions_answer()], [completions_answer(n=2), completions_answer(logprobs=False),
                                          completions_answer(k=5), completions_answer(chat=True), "秋风"]),
    "06.3": ({"server": SimpleNamespace(alive=False)}, [(401, 200, 200)],
             [(200, 200, 200), (403, 200, 200), (401, 401, 200), (401, 200, 401), (401, 200)]),
}

# ------------------------------------------------------------------------------------ stand-ins for SGLang
# Real SGLang 0.5.17 replies, recorded on an H100 (tests/fixtures/sglang, see test_sglang_capture.py). The offline
# Engine returns the same result dicts as the native /generate.
CAPTURE = json.loads((ROOT / "tests" / "fixtures" / "sglang" / "sglang_capture.json").read_text(encoding="utf-8"))


def sglang_result(name: str, cut: int | None = None, **meta) -> dict:
    """A captured /generate result dict; ``cut`` shortens it to that many tokens, ``meta`` changes its meta_info."""
    result = copy.deepcopy(CAPTURE[name]["response"])
    result = result[0] if isinstance(result, list) else result
    if cut is not None:
        result["output_ids"] = (result["output_ids"] * cut)[:cut]
        result["meta_info"].update(finish_reason={"type": "length", "length": cut}, completion_tokens=cut)
    result["meta_info"].update(meta)
    return result


def reply(result: dict) -> SimpleNamespace:
    """A requests.Response carrying a /generate result."""
    return SimpleNamespace(status_code=200, json=lambda: result)


class ProgramState:
    """An SGLang frontend ProgramState (what an @sgl.function's .run() returns): its text, and its executor's
    variables and meta_info, filled by each ``(text, variable, meta_info)`` piece in turn."""

    def __init__(self, *pieces):
        self.stream_executor = SimpleNamespace(variables={}, meta_info={})
        self._text = ""
        for text, name, meta in pieces:
            self._text += text
            if name:
                self.stream_executor.variables[name] = text
                self.stream_executor.meta_info[name] = meta

    def text(self) -> str:
        """The whole text of the program so far."""
        return self._text

    def __getitem__(self, name):
        return self.stream_executor.variables[name]


def chatml(role: str, text: str) -> tuple:
    """One chat turn as ProgramState text, as the frontend's chatml template writes it."""
    return (f"<|im_start|>{role}\n{text}<|im_end|>\n", None, None)


def choose(season: str, choices=("春", "秋")) -> tuple:
    """An sgl.select piece: its decision and the meta_info select returns (one score per choice)."""
    scores = [-1.5 + 0.5 * i for i in range(len(choices))]
    meta = {"normalized_prompt_logprobs": scores,
            "input_token_logprobs": [[[s, 1487, c]] for s, c in zip(scores, choices)],
            "output_token_logprobs": [[] for _ in choices]}
    return (season, "season", meta)


POEM = ("《秋夕》\n银烛秋光冷画屏，轻罗小扇扑流萤。", "poem", CAPTURE["generate_single"]["response"]["meta_info"])
ASK = ("<|im_start|>assistant\n", None, None)
END = ("<|im_end|>\n", None, None)
PROGRAM = ProgramState(chatml("user", "写一首诗"), ASK, POEM, END, chatml("user", "这首诗写的是哪个季节？"), ASK,
                       choose("秋"), END)
LOGPROBS = CAPTURE["generate_logprobs"]["response"]["meta_info"]
CHOSEN_SUM = sum(t[0] for t in LOGPROBS["output_token_logprobs"])
OFFLINE = {**LOGPROBS, "output_token_logprobs": [[lp_, tid, None] for lp_, tid, _ in LOGPROBS["output_token_logprobs"]]}
# 写一首诗 (4 tokens) sent twice after /flush_cache: nothing cached, then all but the last prompt token.
FIRST, SECOND = (sglang_result("generate_length", prompt_tokens=4, cached_tokens=c) for c in (0, 3))

CASES.update({
    "07.1": ({}, [{"type": "length", "length": 5}, sglang_result("generate_length", cut=5),
                  [sglang_result("generate_batch", cut=5)]],
             ["length", "stop", "eos_token", CAPTURE["generate_length"]["response"], sglang_result("generate_single"),
              sglang_result("generate_stop"), {"type": "length", "length": 128},
              CAPTURE["generate_single"]["response"]["meta_info"]["finish_reason"]]),
    "07.2": ({"meta": LOGPROBS},
             [(CHOSEN_SUM, "cumulative_logprob"), [round(CHOSEN_SUM, 3), "outputs[0].cumulative_logprob"]],
             [CHOSEN_SUM, "cumulative_logprob", (math.exp(CHOSEN_SUM), "cumulative_logprob"), (-CHOSEN_SUM, "x"),
              (sum(math.exp(t[0]) for t in LOGPROBS["output_token_logprobs"]), "cumulative_logprob"),
              (sum(top[0][0] for top in LOGPROBS["output_top_logprobs"]), "cumulative_logprob"),
              (sum(t[1] for t in LOGPROBS["output_token_logprobs"]), "cumulative_logprob"),
              (CHOSEN_SUM, "logprobs"), (CHOSEN_SUM, "output_token_logprobs"), (CHOSEN_SUM, "cumulative_logprobs"),
              (CHOSEN_SUM, "n_generated_tokens")]),
    "08.1": ({}, [(FIRST, SECOND), (0, 3), (reply(FIRST), reply(SECOND)), (from_sglang(FIRST), from_sglang(SECOND)),
                  (CAPTURE["generate_single"]["response"], CAPTURE["generate_n2"]["response"])],
             [(SECOND, SECOND), (3, 3), (0, 0), (SECOND, FIRST), 3, (FIRST,), "cached_tokens"]),
    "08.2": ({}, [PROGRAM, ProgramState(chatml("user", "写一首诗"), ASK, POEM, END, ("季节：", None, None), choose("春"))],
             [ProgramState(chatml("user", "写一首诗"), ASK, POEM, END, chatml("user", "哪个季节？"), ASK,
                           ("秋", "season", POEM[2]), END),
              ProgramState(chatml("user", "写一首诗"), ASK, POEM, END, choose("七言", ("五言", "七言"))),
              ProgramState(chatml("user", "写一首诗"), ASK, POEM, END, choose("秋", ("春", "夏", "秋"))),
              ProgramState(chatml("user", "写一首关于春或秋的诗"), choose("春"), ASK, POEM, END),
              ProgramState(chatml("user", "写一首诗"), ASK, ("", "poem", POEM[2]), END, choose("秋")),
              ProgramState(chatml("user", "哪个季节？"), ASK, choose("秋"), END),
              SimpleNamespace(func=lambda s: None, run=lambda **kwargs: PROGRAM, bind_arguments={}),
              PROGRAM.text()]),
    "09.1": ({}, [["return_logprob", "logprob_start_len", "top_logprobs_num"],
                  vllm_to_sglang({"max_tokens": 16, "prompt_logprobs": 1}),
                  vllm_to_sglang({"max_tokens": 16, "prompt_logprobs": 1})[1],
                  {"top_logprobs_num", "logprob_start_len", " 'return_logprob' "}],
             [["max_new_tokens"], "return_logprob", ["return_logprob", "top_logprobs_num"], {"max_new_tokens": 16},
              ["return_logprob", "logprob_start_len", "top_logprobs_num", "return_text_in_logprobs"],
              ["return_logprob", "logprob_start_len", "top_logprobs_num", "max_tokens"], ["prompt_logprobs"],
              vllm_to_sglang({"max_tokens": 16, "logprobs": 1})]),
    "09.2": ({}, [("cached_tokens", "num_cached_tokens"),
                  ('meta_info["cached_tokens"]', "RequestOutput.num_cached_tokens"),
                  ("cached_tokens", "usage.prompt_tokens_details.cached_tokens"), ("cached_tokens", "/metrics"),
                  ("cached_tokens", "vllm:prefix_cache_hits")],
             ["cached_tokens", ("prompt_tokens", "num_cached_tokens"), ("cached_tokens_details", "num_cached_tokens"),
              ("cached_tokens", "cached_tokens"), ("cached_tokens", "cumulative_logprob"), ("e2e_latency", "/metrics"),
              ("cached_tokens",), ("cached_tokens", 3)]),
})


def test_sglang_stand_ins_follow_the_capture():
    """The stand-ins keep SGLang's real shapes: 27 of 28 prompt tokens cached on a repeat, one triple per token."""
    first = CAPTURE["generate_single"]["response"]["meta_info"]
    second = CAPTURE["generate_n2"]["response"][0]["meta_info"]
    assert (first["cached_tokens"], second["cached_tokens"]) == (0, second["prompt_tokens"] - 1)
    assert len(LOGPROBS["output_token_logprobs"]) == LOGPROBS["completion_tokens"] and CHOSEN_SUM < 0
    assert evaluate("07.2", (CHOSEN_SUM, "cumulative_logprob"), meta=OFFLINE), "the offline Engine's None text slots"
    assert evaluate("07.2", (CHOSEN_SUM, "cumulative_logprob"), meta=CAPTURE["generate_logprobs"]["response"])
    assert evaluate("07.2", (CHOSEN_SUM, "cumulative_logprob")).status == "hint", "without meta= it says what it needs"


# ------------------------------------------------------------------------------------ 11 · tensor parallelism
# Llama-3.1-8B on 80 GiB GPUs at 0.9: KV tokens per GPU with TP=1 and TP=2 (llmkit.parallel; checked there).
LLAMA_TP = (467_291, 1_057_111)
CASES.update({
    "11.1": ({}, [[1, 2, 4, 8, 24], (24, 8, 4, 2, 1), {1, 2, 4, 8, 24}, "1, 2, 4, 8, 24"],
             [[1, 2, 4, 8], [1, 2, 3, 4, 6, 8, 12, 24], [1, 2, 4, 8, 12, 24], [1, 2, 4, 5, 8, 24], [2, 4, 8, 24],
              [0, 1, 2, 4, 8, 24], 8]),
    "11.2": ({}, [LLAMA_TP[1] / LLAMA_TP[0], round(LLAMA_TP[1] / LLAMA_TP[0], 2), LLAMA_TP],
             [2, 2.0, 1, LLAMA_TP[0] / LLAMA_TP[1], 1.13, 4.5, (LLAMA_TP[0], 2 * LLAMA_TP[0]), (500_000, 1_057_111),
              (1, 2, 3)]),
    "11.3": (KV, [512, "512"], [256, 128, 500, 1024]),
})


# 10 · benchmarking: a sweep whose throughput peaks at concurrency 16, and serve_bench result dicts.
SWEEP = [{"concurrency": c, "output_throughput": t, "p50_tpot_ms": p}
         for c, t, p in ((1, 250.0, 4.0), (4, 780.0, 5.1), (16, 1900.0, 8.3))]


def paced(**changes) -> dict:
    """A serve_bench result for 16 requests at a Poisson rate of 4/s."""
    return {"output_throughput": 60.0, "request_rate": 4.0, "num_prompts": 16, "failed": 0, "duration": 4.3,
            "completed": 16, **changes}


CASES.update({
    "10.1": ({}, [4026.5, 4000, "4,027"], [2810, 5449, 2013, 8050, 1e9, "fast"]),
    "10.2": ({"sweep": SWEEP}, [16, "16"], [1, 4, 3, 64]),
    "10.3": ({}, [paced()], [paced(request_rate="inf"), paced(request_rate=2.0), paced(num_prompts=8),
                             paced(failed=3), paced(duration=0.4), {"results": []}, 4.3]),
})


def solution_text(value) -> str | None:
    """The text a hint must not contain for a scalar solution (None where that makes no sense)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()


# ------------------------------------------------------------------------------------ the checkers
@pytest.mark.parametrize("eid", sorted(CASES))
def test_solutions_pass_and_wrong_answers_get_hints(eid):
    """Each right answer passes with an explanation; each wrong one gets a hint that does not give it away."""
    context, right, wrong = CASES[eid]
    for answer in right:
        verdict = evaluate(eid, answer, **context)
        assert verdict.status == "pass" and verdict, f"{eid}: {answer!r} should pass: {verdict.message}"
        assert len(verdict.message) > 20, "a pass says why"
    solutions = {s for s in map(solution_text, right) if s and len(s) > 1}
    for answer in wrong:
        verdict = evaluate(eid, answer, **context)
        assert verdict.status == "hint" and not verdict, f"{eid}: {answer!r} should get a hint, got {verdict}"
        for s in solutions:
            given_away = re.search(rf"(?<![\d.]){re.escape(s)}(?![\d])", verdict.message)
            assert not given_away, f"{eid}: the hint for {answer!r} gives away {s!r}: {verdict.message}"


def test_chat_template_exercise_on_the_real_template(rendered):
    """01.2 against tiny-poet's own chat template: the assistant's opening makes the difference."""
    messages, with_prompt, without_prompt = rendered
    assert evaluate("01.2", with_prompt, messages=messages)
    assert evaluate("01.2", without_prompt, messages=messages).status == "hint"
    assert evaluate("01.2", with_prompt, messages=messages[:1] + messages[2:]).status == "hint"
    assert evaluate("01.2", with_prompt).status == "hint", "without messages= it says what it needs"
    assert evaluate("01.2", [1, 2, 3], messages=messages).status == "hint"


def test_exercise_06_3_wants_the_second_server_stopped():
    """Right status codes, but the server still running: a hint to stop it."""
    assert evaluate("06.3", (401, 200, 200), server=SimpleNamespace(alive=True)).status == "hint"


class TiedEngine(ProcessedEngine):
    """A nearly flat, untrained model whose two most likely tokens have the same (bf16-rounded) logit."""

    logits = [2.0, 2.0, 1.0, 0.5, 0.0, -0.5]


def test_exercise_03_1_explains_a_tie_at_the_top():
    """With tied top logits no temperature passes 50%: a low one passes with the reason, a high one gets a hint."""
    verdict = evaluate("03.1", 0.01, llm=TiedEngine(), prompt="p")
    assert verdict and "logits are equal" in verdict.message and "1/2" in verdict.message
    assert evaluate("03.1", 0.5, llm=TiedEngine(), prompt="p").status == "hint"
    assert evaluate("03.1", 1.0, llm=TiedEngine(), prompt="p").status == "hint"


@pytest.mark.engine
def test_exercise_03_3_runs_the_preset_when_given_an_engine(llm):
    """With an engine, 03.3 generates 8 samples and reports the repeat rate next to greedy's."""
    from llmkit.sampling import chat_prompt

    verdict = evaluate("03.3", preset("creative", max_tokens=40, seed=0), llm=llm, prompt=chat_prompt(llm, "写一首七言绝句"))
    assert verdict and "greedy repeats" in verdict.message


@pytest.mark.parametrize("eid", sorted(EXERCISES))
def test_placeholder_none_is_not_answered_and_never_raises(eid, capsys):
    """The committed cells hold None: check says "not answered yet" and returns a false Verdict."""
    context = CASES.get(eid, ({},))[0]
    verdict = check(eid, None, **context)
    assert isinstance(verdict, Verdict) and verdict.status == "unanswered" and not verdict
    assert "not answered yet" in capsys.readouterr().out
    odd = evaluate(eid, object(), **context)
    assert odd.status == "hint", "an answer of a surprising type gets a hint, not a traceback"


def test_every_checker_is_covered_here():
    """A new checker needs right and wrong answers in CASES (01.2 uses the real template above)."""
    assert set(EXERCISES) - {"01.2"} == set(CASES)


def test_unknown_exercise_is_an_error():
    """A typo in an exercise id is the course's bug: it raises, listing the known ids."""
    with pytest.raises(KeyError, match="00.1"):
        check("99.9", 1)


# ------------------------------------------------------------------------------------ the notebooks
def cells(path: Path) -> list[dict]:
    """A notebook's cells, each with its source joined into one string."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [{**c, "text": "".join(c["source"])} for c in nb["cells"]]


def listed_exercises(path: Path) -> list[str]:
    """Ids ("NN.k") of the numbered items under a notebook's "## Exercises" heading."""
    number = path.name[:2]
    for cell in cells(path):
        if cell["cell_type"] == "markdown" and re.search(r"^## Exercises", cell["text"], re.M):
            section = re.split(r"^## Exercises.*$", cell["text"], flags=re.M)[1]
            section = re.split(r"<details>|^#{1,3} ", section, flags=re.M)[0]
            return [f"{number}.{k}" for k in re.findall(r"^(\d+)\. ", section, re.M)]
    return []


def is_solution(cell: dict) -> bool:
    """A hidden solution cell (tagged "solution")."""
    return cell["cell_type"] == "code" and "solution" in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_checker_cell_and_a_hidden_solution(path):
    """Exercises listed ↔ check("NN.k", my_answer) cells ↔ `assert check("NN.k", ...)` in hidden solution cells."""
    listed = listed_exercises(path)
    assert listed, f"{path.name} lists no exercises"
    if path.stem in PENDING:
        pytest.skip(f"{path.name}: {PENDING[path.stem]}")
    placeholders, solved = [], []
    for cell in cells(path):
        if cell["cell_type"] != "code":
            continue
        if is_solution(cell):
            solved += re.findall(r'assert check\("(\d\d\.\d+)"', cell["text"])
            assert cell["metadata"].get("jupyter", {}).get("source_hidden"), "solution cells start collapsed"
        elif ids := re.findall(r'check\("(\d\d\.\d+)"', cell["text"]):
            placeholders += ids
            assert re.search(r"^my_answer = None\b", cell["text"], re.M), f"{ids}: the placeholder must be None"
    assert placeholders == listed, f"{path.name}: checker cells {placeholders} vs exercises listed {listed}"
    assert sorted(solved) == listed, f"{path.name}: hidden solutions check {solved}, exercises are {listed}"
    missing = [eid for eid in listed if eid not in EXERCISES]
    assert not missing, f"no checker in llmkit.exercises for {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_checker_cells_import_check_in_the_first_code_cell(path):
    """`check` comes from the first code cell's imports, like every other name the notebook uses."""
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    if any("check(" in c["text"] for c in code):
        assert "from llmkit.exercises import check" in code[0]["text"]
