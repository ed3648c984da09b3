"""Load-test the study note's server against vLLM's OpenAI server on the same model and prompt.

    python servers/loadtest.py                                # start each server in turn, measure, stop
    python servers/loadtest.py --servers note --concurrency 1,8 --max-tokens 32
    python servers/loadtest.py --note-url http://127.0.0.1:8000 --vllm-url http://127.0.0.1:8001
    python servers/loadtest.py --json results.json            # also write every figure as JSON

For each server and each concurrency level C, C client threads send requests back to back until
the level's total (``C × --rounds``, at least ``--min-requests``) is done. Every request asks for the
same thing: the note's prompt as raw text (the note server's /generate, vLLM's /v1/completions),
``--max-tokens`` tokens, greedy (temperature 0), so both servers generate the same tokens and only
the serving path differs. Reported per level: requests/s, generated tokens/s, and latency p50, p90
and p99 (seconds, per request, from send to full answer). Started servers also report their ready
time (launch to first 200 from /health). A request whose kept-alive connection the server had just
closed is retried once on a new connection and counted under "retries"; any other failure is an error
(and the exit status is 1).

Servers are started one at a time (never both at once), so they do not compete for the CPU. When a
URL is given, that server is used as it is and not stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from llmkit.bench import percentile  # noqa: E402  (one definition: linear interpolation, as numpy)

NOTE_PROMPT = "写一首七言绝句"


def note_request(url: str, prompt: str, max_tokens: int) -> Callable[[requests.Session], int]:
    """One request to the note server; returns the generated token count."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "n": 1, "details": True}

    def send(session: requests.Session) -> int:
        resp = session.post(url + "/generate", json=body, timeout=600)
        resp.raise_for_status()
        return sum(resp.json()["details"]["num_tokens"])

    return send


def openai_request(url: str, prompt: str, max_tokens: int) -> Callable[[requests.Session], int]:
    """One request to an OpenAI-compatible /v1/completions; returns the generated token count."""
    model = requests.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "n": 1}

    def send(session: requests.Session) -> int:
        resp = session.post(url + "/v1/completions", json=body, timeout=600)
        resp.raise_for_status()
        return int(resp.json()["usage"]["completion_tokens"])

    return send


def run_level(send: Callable[[requests.Session], int], concurrency: int, total: int) -> dict[str, Any]:
    """``concurrency`` threads share ``total`` requests; returns throughput and latency figures."""
    latencies: list[float] = []
    tokens: list[int] = []
    errors: list[str] = []
    retries = [0]
    lock = threading.Lock()
    remaining = [total]

    def client() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                t0 = time.perf_counter()
                try:
                    try:
                        n = send(session)
                    except requests.ConnectionError:
                        # A keep-alive connection the server closed just as we reused it (uvicorn drops
                        # idle ones after 5 s): retry once on a fresh connection, and count it.
                        session.close()
                        with lock:
                            retries[0] += 1
                        n = send(session)
                except Exception as exc:  # noqa: BLE001 - count it, keep going
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    tokens.append(n)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors), "retries": retries[0],
            "error_examples": errors[:3], "wall_s": round(wall, 3),
            "req_per_s": round(len(latencies) / wall, 3), "tok_per_s": round(sum(tokens) / wall, 1),
            "tokens_per_request": round(statistics.mean(tokens), 1) if tokens else None,
            "p50_s": round(percentile(latencies, 50), 4), "p90_s": round(percentile(latencies, 90), 4),
            "p99_s": round(percentile(latencies, 99), 4)}


def measure(name: str, url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Start the server (unless a URL is given), warm it up, run every level, stop it."""
    from llmkit.lifecycle import start_note_server, start_vllm_server

    handle = None
    ready = None
    if url is None:
        start = start_note_server if name == "note" else start_vllm_server
        print(f"[{name}] starting ...", file=sys.stderr, flush=True)
        handle = start(args.model, timeout=args.timeout)
        url, ready = handle.url, round(handle.ready_seconds or 0, 1)
        print(f"[{name}] ready in {ready} s at {url}", file=sys.stderr, flush=True)
    try:
        make = note_request if name == "note" else openai_request
        send = make(url, args.prompt, args.max_tokens)
        run_level(send, 1, args.warmup)
        levels = []
        for c in args.concurrency:
            total = max(c * args.rounds, args.min_requests)
            print(f"[{name}] concurrency {c}: {total} requests ...", file=sys.stderr, flush=True)
            levels.append(run_level(send, c, total))
        return {"server": name, "url": url, "ready_s": ready, "levels": levels}
    finally:
        if handle is not None:
            handle.stop()


def table(results: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table."""
    head = ("| server | ready s | clients | requests | errors | retries | req/s | tok/s | tok/req | p50 s | p90 s "
            "| p99 s |")
    lines = [head, "|" + "|".join("---" for _ in range(12)) + "|"]
    for r in results:
        for lv in r["levels"]:
            lines.append(f"| {r['server']} | {r['ready_s'] if r['ready_s'] is not None else '-'} | "
                         f"{lv['concurrency']} | {lv['requests']} | {lv['errors']} | {lv['retries']} | "
                         f"{lv['req_per_s']:.2f} | {lv['tok_per_s']:.0f} | {lv['tokens_per_request']} | "
                         f"{lv['p50_s']:.3f} | {lv['p90_s']:.3f} | {lv['p99_s']:.3f} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python servers/loadtest.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="note,vllm", help="which servers, comma-separated: note, vllm")
    p.add_argument("--note-url", help="use this running note server instead of starting one")
    p.add_argument("--vllm-url", help="use this running vLLM OpenAI server instead of starting one")
    p.add_argument("--model", help="model for started servers (default: llmkit's default_model())")
    p.add_argument("--concurrency", default="1,8,64", help="client counts, comma-separated (default 1,8,64)")
    p.add_argument("--rounds", type=int, default=3, help="requests per client per level (default 3)")
    p.add_argument("--min-requests", type=int, default=16, help="at least this many requests per level")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured requests before the levels")
    p.add_argument("--max-tokens", type=int, default=64, help="tokens per request (default 64)")
    p.add_argument("--prompt", default=NOTE_PROMPT, help="the prompt (default: the note's 写一首七言绝句)")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for a started server")
    p.add_argument("--json", help="write all figures to this JSON file")
    args = p.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    bad = set(args.servers) - {"note", "vllm"}
    if bad:
        p.error(f"unknown server(s): {', '.join(sorted(bad))} (choose from note, vllm)")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON."""
    args = parse_args(argv)
    urls = {"note": args.note_url, "vllm": args.vllm_url}
    results = [measure(name, urls[name], args) for name in args.servers]
    print(table(results))
    if args.json:
        import os

        meta = {"prompt": args.prompt, "max_tokens": args.max_tokens, "temperature": 0, "rounds": args.rounds,
                "min_requests": args.min_requests, "machine": platform.machine(), "cpus": os.cpu_count(),
                "load_average_at_end": os.getloadavg(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if any(lv["errors"] for r in results for lv in r["levels"]) else 0


if __name__ == "__main__":
    sys.exit(main())
