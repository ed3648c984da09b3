"""llmkit.lifecycle: launching, readiness, failure reports and clean-up, with real servers (no mocks).

Server starts are the slow part on a 2-core CPU, so the module shares one note server for the
handle tests and ends it with SIGKILL; two more start only as far as each test needs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from llmkit import clients, gpu_count
from llmkit.lifecycle import (PortInUse, ServerDied, ServerNotReady, ServerStartError, ServerUnavailable, cli_flags,
                            describe_exit, free_port, group_members, note_server_command, port_in_use,
                            running_servers, sglang_server_options, start_note_server, start_sglang_server,
                            start_vllm_server, vllm_server_command)

psutil = pytest.importorskip("psutil")
TIMEOUT = 300


def running(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(predicate, timeout: float, step: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# ---------------------------------------------------------------------------------------------- no server needed
def test_cli_flags_spell_options_like_vllm():
    """Keyword options become CLI flags: True → --flag, False → --no-flag, None → left out."""
    assert cli_flags({"max_model_len": 1024, "enforce_eager": True, "trust_remote_code": False, "seed": None}) == [
        "--max-model-len", "1024", "--enforce-eager", "--no-trust-remote-code"]
    assert cli_flags({"disable_cuda_graph": False}, negate_false=False) == []
    assert cli_flags({"api_key": ["a", "b"]}) == ["--api-key", "a", "b"]


def test_commands_bind_localhost_and_carry_the_small_machine_switch(monkeypatch):
    """Both vLLM commands bind 127.0.0.1 and, with LLMKIT_SMALL=1, run eager with a short context."""
    monkeypatch.setenv("LLMKIT_SMALL", "1")
    for cmd in (note_server_command("m", port=1234), vllm_server_command("m", port=1234)):
        assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "1234"
        assert "--enforce-eager" in cmd and cmd[cmd.index("--max-model-len") + 1] == "1024"
    assert vllm_server_command("m")[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert sglang_server_options()["context_length"] == 1024
    assert sglang_server_options(context_length=4096)["context_length"] == 4096


def test_describe_exit_names_signals():
    """Exit statuses read as words in error messages."""
    assert describe_exit(-9) == "signal SIGKILL" and describe_exit(1) == "exit code 1"


def test_port_in_use_is_refused_naming_the_port():
    """A taken port fails at once, before any process starts, and the message names it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
        with pytest.raises(PortInUse, match=str(port)):
            start_note_server("unused-model", port=port)
        with pytest.raises(PortInUse, match=str(port)):
            start_vllm_server("unused-model", port=port)
    assert not port_in_use(port)


def test_unreachable_server_is_a_clear_client_error():
    """Calling a URL where nothing listens raises ServerUnreachable (status 0), not a raw socket error."""
    with pytest.raises(clients.ServerUnreachable, match="is the server running"):
        clients.note_generate(f"http://127.0.0.1:{free_port()}", "写一首七言绝句")


@pytest.mark.skipif(gpu_count() > 0, reason="this machine has a GPU: SGLang may run here")
def test_sglang_without_gpu_says_why():
    """SGLang has no CPU kernels: starting it on a CPU machine fails at once with the reason."""
    with pytest.raises(ServerUnavailable, match="GPU"):
        start_sglang_server("unused-model")


# ---------------------------------------------------------------------------------------------- start failures
@pytest.mark.engine
def test_process_that_exits_fails_fast_with_log_tail(tiny_poet_dir):
    """A server that dies during start-up is reported at once, quoting its log, not after the timeout."""
    t0 = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        start_note_server(str(tiny_poet_dir), timeout=TIMEOUT, max_model_len="not-a-number")
    assert time.monotonic() - t0 < TIMEOUT / 2
    msg = str(info.value)
    assert "exit code" in msg and "not-a-number" in msg and "last log lines" in msg
    assert running_servers() == []


@pytest.mark.engine
def test_timeout_says_what_to_try_and_cleans_up(tiny_poet_dir):
    """A server not ready in time raises ServerNotReady naming the port and the remedies; nothing is left."""
    port = free_port()
    with pytest.raises(ServerNotReady) as info:
        start_note_server(str(tiny_poet_dir), port=port, timeout=2)
    msg = str(info.value)
    assert f"port {port}" in msg and "Try:" in msg and "timeout" in msg
    assert running_servers() == []
    assert wait_until(lambda: not port_in_use(port), 10)


@pytest.mark.engine
def test_parent_death_takes_the_server_down(tiny_poet_dir, tmp_path):
    """If the Python process that started a server is killed (a kernel restart), the watchdog ends the server."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from llmkit.lifecycle import start_note_server
        handle = start_note_server({str(tiny_poet_dir)!r}, wait=False)
        print(handle.pid, flush=True)
        time.sleep(600)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(parent.stdout.readline())
        assert wait_until(lambda: running(server_pid), 30)
        # Let the engine start its own processes, so their clean-up is tested too.
        wait_until(lambda: len(group_members(server_pid)) >= 2, 120, step=0.5)
        members = group_members(server_pid)
        parent.kill()  # like a kernel restart: no atexit, no finally
        parent.wait(10)
        assert wait_until(lambda: not any(running(p) for p in members), 60), [p for p in members if running(p)]
        assert group_members(server_pid) == []
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in group_members(server_pid) if "server_pid" in locals() else []:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.engine
def test_ctrl_c_shuts_down_cleanly(tiny_poet_dir):
    """Ctrl-C in a terminal sends SIGINT to the whole foreground group: the server exits 0, engine included."""
    handle = start_note_server(str(tiny_poet_dir), timeout=TIMEOUT)
    try:
        members = handle.processes()
        os.killpg(handle.pid, signal.SIGINT)
        assert wait_until(lambda: not handle.alive, 60), handle.logs()
        assert handle.returncode == 0, handle.logs()
        assert "stopped by Ctrl-C" in handle.logs(200)
        assert wait_until(lambda: not any(running(p) for p in members), 30)
    finally:
        handle.stop()


# ---------------------------------------------------------------------------------------------- one live server
@pytest.fixture(scope="module")
def server(tiny_poet_dir):
    """A note server for the handle tests; the last of them kills it."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this environment")
    handle = start_note_server(str(tiny_poet_dir), timeout=TIMEOUT)
    yield handle
    handle.stop()


@pytest.mark.engine
def test_handle_describes_a_running_server(server):
    """url, port, pid, logs, processes, repr and the command line are all there."""
    assert server.alive and server.url == f"http://127.0.0.1:{server.port}"
    assert server.ready_seconds and server.ready_seconds > 0
    assert "Application startup complete" in server.logs(200)
    assert server.pid in server.processes() and len(server.processes()) >= 2
    assert "vllm_server.py" in server.command_line() and "running" in repr(server)
    assert server in running_servers()
    assert port_in_use(server.port)


@pytest.mark.engine
def test_second_server_on_same_port_is_refused(server, tiny_poet_dir):
    """Asking for the port a running server holds raises PortInUse naming it."""
    with pytest.raises(PortInUse, match=f"port {server.port}"):
        start_note_server(str(tiny_poet_dir), port=server.port)


@pytest.mark.engine
def test_sigkill_is_reported_and_stop_leaves_nothing(server):
    """A server killed with SIGKILL: .alive is False, the next call raises ServerDied naming the signal,
    and .stop() still ends its orphaned engine processes and frees the port."""
    assert clients.note_generate(server, "写一首七言绝句", max_tokens=4).texts
    family = [server.pid] + [p.pid for p in psutil.Process(server.pid).children(recursive=True)]
    assert len(family) >= 2
    os.kill(server.pid, signal.SIGKILL)
    assert wait_until(lambda: not server.alive, 10)
    assert server.returncode == -signal.SIGKILL
    with pytest.raises(ServerDied, match="SIGKILL"):
        clients.note_generate(server, "写一首七言绝句", max_tokens=4)
    with pytest.raises(ServerDied, match="SIGKILL"):
        server.check()
    server.stop()
    assert wait_until(lambda: not any(running(p) for p in family), 30), [p for p in family if running(p)]
    assert server.processes() == [] and server not in running_servers()
    assert wait_until(lambda: not port_in_use(server.port), 10)
    server.stop()  # idempotent
