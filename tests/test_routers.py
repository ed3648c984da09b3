"""llmkit.routers: the field's routers (vllm-router, SGLang's model gateway smg) in front of real vLLM servers, started
and stopped through llmkit's lifecycle: the command lines, the clear errors (unknown router or policy, no worker, a
dead worker), round-robin spreading requests evenly over two workers (counted on each worker's own /metrics),
cache-aware routing keeping a repeated prompt on one worker, and a stopped router leaving no process or port.
"""

from __future__ import annotations

import pytest
import requests

from llmkit import routers
from llmkit.lifecycle import ServerUnavailable, free_port, port_in_use


def test_commands_name_the_workers_and_the_policy():
    cmd = routers.router_command("vllm-router", ["http://127.0.0.1:1", "http://127.0.0.1:2/"], "cache_aware",
                                 port=9, cache_threshold=0.3)
    assert cmd[0].endswith("vllm-router") and cmd[cmd.index("--worker-urls") + 1:][:2] == ["http://127.0.0.1:1",
                                                                                          "http://127.0.0.1:2"]
    assert cmd[cmd.index("--policy") + 1] == "cache_aware" and cmd[cmd.index("--port") + 1] == "9"
    assert cmd[-2:] == ["--cache-threshold", "0.3"]
    smg = routers.router_command("smg", ["http://127.0.0.1:1"])
    assert smg[0].endswith("smg") and smg[1] == "launch"


@pytest.mark.parametrize("call, match", [
    (lambda: routers.router_command("nginx", ["http://127.0.0.1:1"]), "unknown router 'nginx'"),
    (lambda: routers.router_command("smg", ["http://127.0.0.1:1"], "fastest"), "unknown policy 'fastest'"),
    (lambda: routers.router_command("smg", []), "at least one worker"),
    (lambda: routers.router_command("smg", ["127.0.0.1:1"]), "http"),
    (lambda: routers.start_replicas(0), "at least 1"),
])
def test_bad_input_gets_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_a_dead_worker_is_named_before_any_router_starts():
    port = free_port()
    with pytest.raises(ServerUnavailable, match=f"127.0.0.1:{port} does not answer /health"):
        routers.start_router([f"http://127.0.0.1:{port}"])


@pytest.fixture(scope="module")
def two_workers(tiny_poet_dir):
    """Two replicas of tiny-poet, started at the same time (llmkit.routers.start_replicas)."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    with routers.start_replicas(2, str(tiny_poet_dir), timeout=300) as replicas:
        assert len(set(replicas.urls)) == 2
        yield replicas.workers
    assert all(w.processes() == [] for w in replicas.workers), "stopping the set stops every replica"


def _complete(router, prompt: str, n: int) -> None:
    for i in range(n):
        r = requests.post(router.url + "/v1/completions", timeout=120,
                          json={"model": router.model, "prompt": prompt.format(i=i), "max_tokens": 4, "temperature": 0})
        assert r.status_code == 200 and r.json()["choices"][0]["text"] is not None, r.text[:300]


@pytest.mark.parametrize("kind", list(routers.ROUTERS))
def test_round_robin_spreads_requests_evenly(two_workers, kind):
    before = [routers.served_requests(w) for w in two_workers]
    router = routers.start_router(two_workers, kind=kind, policy="round_robin")
    try:
        assert router.health() and router.ready_seconds is not None
        _complete(router, "写一首诗，第{i}首", 6)
    finally:
        router.stop()
    spread = [routers.served_requests(w) - b for w, b in zip(two_workers, before)]
    assert spread == [3, 3], f"{kind} round_robin: {spread}"
    assert router.processes() == [] and not port_in_use(router.port)


def test_cache_aware_keeps_a_repeated_prompt_on_one_worker(two_workers):
    before = [routers.served_requests(w) for w in two_workers]
    with routers.start_router(two_workers, kind="vllm-router", policy="cache_aware") as router:
        _complete(router, "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。" * 8, 6)
    spread = sorted(routers.served_requests(w) - b for w, b in zip(two_workers, before))
    assert spread == [0, 6], f"the same prompt should follow its cached prefix to one worker: {spread}"
