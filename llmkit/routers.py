"""Replicas behind a router (issue 17's groundwork): the field's own routers started through llmkit's lifecycle.

``start_router`` runs ``vllm-router`` (vLLM's router, a Rust binary on PyPI) or ``smg`` (SGLang's model gateway) in
front of running OpenAI-compatible servers, through the same lifecycle handle as every server of the course
(``llmkit.lifecycle.launch``: its own process group, a watchdog that ends it when the kernel goes, a free port, the
log file). ``start_replicas`` starts several vLLM servers at once and hands them back as one ``ReplicaSet`` that
stops them all. ``served_requests`` reads from a vLLM worker's ``/metrics`` how many requests it finished, which is
how a router's spread over its workers is measured.

Both routers take the same core flags: ``--worker-urls URL...`` and ``--policy`` (random, round_robin, cache_aware,
power_of_two, consistent_hash; vllm_router/router_args.py, smg/router_args.py). ``sglang-router`` 0.3.2 installs an
``smg`` command too: keep one of the two per environment.
"""

from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from llmkit.lifecycle import (DEFAULT_HOST, ServerHandle, ServerUnavailable, cli_flags, launch, start_vllm_server)

ROUTERS = {"vllm-router": ["vllm-router"], "smg": ["smg", "launch"]}
POLICIES = ("random", "round_robin", "cache_aware", "power_of_two", "consistent_hash")


def router_binary(kind: str) -> str:
    """The router's executable: beside this Python (a venv's bin/) first, then on PATH."""
    if kind not in ROUTERS:
        raise ValueError(f"unknown router {kind!r}: expected one of {', '.join(ROUTERS)}")
    name = ROUTERS[kind][0]
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if not found:  # the PyPI package has the router's name
        raise ServerUnavailable(f"the {kind} router is not installed here: `pip install {kind}` (make setup installs "
                                f"it in the course's vLLM environment)")
    return found


def worker_url(worker: Any) -> str:
    """A worker's base URL from a ServerHandle or a URL string."""
    url = worker.url if hasattr(worker, "url") else str(worker)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"a worker is a server handle or an http(s) URL, not {worker!r}")
    return url.rstrip("/")


def router_command(kind: str, workers: Sequence[Any], policy: str = "round_robin", host: str = DEFAULT_HOST,
                   port: int | str = "{port}", **options: Any) -> list[str]:
    """The router's command line; ``options`` become ``--flags`` (``cache_threshold=0.3`` → ``--cache-threshold 0.3``)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: expected one of {', '.join(POLICIES)}")
    urls = [worker_url(w) for w in workers]
    if not urls:
        raise ValueError("a router needs at least one worker")
    return [router_binary(kind), *ROUTERS[kind][1:], "--host", host, "--port", str(port), "--worker-urls", *urls,
            "--policy", policy, *cli_flags(options, negate_false=False)]


def start_router(workers: Sequence[Any], *, kind: str = "vllm-router", policy: str = "round_robin",
                 port: int | None = None, host: str = DEFAULT_HOST, timeout: float = 60, **options: Any) -> ServerHandle:
    """Start a router in front of running workers and wait for its ``/health``; returns its ServerHandle.

    Every worker must answer ``/health`` first: a router started on a dead worker waits for it (vllm-router up to
    ``--worker-startup-timeout-secs``), so a dead one is named here at once instead.
    """
    import requests

    urls = [worker_url(w) for w in workers]
    for url in urls:
        try:
            ok = requests.get(url + "/health", timeout=5).status_code == 200
        except requests.RequestException:
            ok = False
        if not ok:
            raise ServerUnavailable(f"worker {url} does not answer /health: start it (llmkit.lifecycle.start_vllm_server) "
                                    f"or leave it out of the router's workers")
    cmd = router_command(kind, urls, policy, host, "{port}", **options)
    model = next((w.model for w in workers if getattr(w, "model", None)), None)
    return launch(kind, cmd, port=port, host=host, timeout=timeout, model=model)


@dataclass
class ReplicaSet:
    """Several servers of one model, stopped together (a context manager): ``.workers``, ``.urls``, ``.stop()``."""

    workers: list[ServerHandle] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        """The workers' base URLs, in start order."""
        return [w.url for w in self.workers]

    def stop(self) -> None:
        """Stop every worker (idempotent)."""
        for w in self.workers:
            w.stop()

    def __enter__(self) -> "ReplicaSet":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_replicas(n: int, model: str | None = None, **engine_args: Any) -> ReplicaSet:
    """Start ``n`` vLLM servers of ``model`` at the same time and wait for all; if one fails, every one is stopped."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(start_vllm_server, model, **engine_args) for _ in range(n)]
    started, errors = [], []
    for f in futures:
        try:
            started.append(f.result())
        except Exception as err:  # noqa: BLE001 - reported below, after the others are stopped
            errors.append(err)
    if errors:
        ReplicaSet(started).stop()
        raise errors[0]
    return ReplicaSet(started)


def served_requests(worker: Any) -> int:
    """Requests a vLLM worker has finished so far (``vllm:request_success_total``, every finish reason)."""
    from llmkit.prefix import metric_values, read_metrics

    return int(metric_values(read_metrics(worker)).get("vllm:request_success_total", 0))
