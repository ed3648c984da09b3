"""llmkit.lifecycle: launching, readiness, failure reports and clean-up, with real processes (no mocks).

Engine starts are the slow part on a 2-core CPU, so the module shares one note server for the
handle tests and ends it with SIGKILL; a few more start only as far as each test needs. The process-group
runner (run_group), the watchdog (``python -m llmkit.lifecycle watch``) and launch/stop themselves are
tested first with small programs that leave a grandchild behind in their group, which start in a blink.
The last section runs the launch scripts in servers/.
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

from pathlib import Path

from llmkit import clients, gpu_count
from llmkit.lifecycle import (PortInUse, ServerDied, ServerNotReady, ServerStartError, ServerUnavailable, cli_flags,
                              describe_exit, fill_placeholders, free_port, group_members, launch, note_server_command, port_in_use,
                              run_group, running_servers, sglang_server_options, start_note_server,
                              start_sglang_server, start_vllm_server, vllm_server_command)
from llmkit.models import llm_kwargs

psutil = pytest.importorskip("psutil")
TIMEOUT = 300
ROOT = Path(__file__).resolve().parents[1]


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


def test_placeholders_leave_json_option_values_alone():
    """{port} and {host} are filled in; a dict option (JSON, braces and all) reaches the server unchanged."""
    flags = cli_flags({"structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}})
    assert [fill_placeholders(f, 8000, "127.0.0.1") for f in flags] == flags
    assert flags[1] == '{"backend": "xgrammar", "disable_any_whitespace": true}'
    assert fill_placeholders("--port={port} --host={host}", 8000, "::1") == "--port=8000 --host=::1"


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
    """SGLang has no CPU wheel: starting it on a CPU machine fails at once with the reason."""
    with pytest.raises(ServerUnavailable, match="GPU"):
        start_sglang_server("unused-model")


# ---------------------------------------------------------------------------------------------- process groups
# A program that leaves a grandchild in its process group: it prints the group id and the grandchild's pid,
# then its output, then sleeps argv[1] seconds. Like an engine's worker, the grandchild outlives its parent.
LEAVES_GRANDCHILD = textwrap.dedent("""
    import os, subprocess, sys, time
    grandchild = subprocess.Popen(["sleep", "300"])
    print("group", os.getpgid(0), "grandchild", grandchild.pid, flush=True)
    print("out: 写一首七言绝句", flush=True)
    time.sleep(float(sys.argv[1]))
""")

# A small server for launch(): /health answers 200; it too leaves a grandchild in its group.
HEALTH_SERVER = textwrap.dedent("""
    import http.server, subprocess, sys
    subprocess.Popen(["sleep", "300"])
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    print("serving", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
""")


def group_and_grandchild(text: str) -> tuple[int, int]:
    """The group id and grandchild pid that LEAVES_GRANDCHILD printed."""
    words = next(line for line in text.splitlines() if line.startswith("group ")).split()
    return int(words[1]), int(words[3])


def assert_group_ended(pgid: int, *pids: int) -> None:
    """Nothing of the group is left (zombies awaiting their reaper count as ended)."""
    assert wait_until(lambda: not any(running(p) for p in (pgid, *pids)), 15), [p for p in pids if running(p)]
    assert group_members(pgid) == []


def test_run_group_success_returns_output_and_ends_the_group():
    """Exit 0: the output comes back, and the grandchild left in the group is ended too."""
    done = run_group([sys.executable, "-c", LEAVES_GRANDCHILD, "0"], timeout=120)
    assert done.returncode == 0 and "out: 写一首七言绝句" in done.stdout
    pgid, grandchild = group_and_grandchild(done.stdout)
    assert_group_ended(pgid, grandchild)


def test_run_group_output_to_a_log_file(tmp_path):
    """With log=..., the output goes to the file and comes back from it; the exit code is the program's."""
    log = tmp_path / "out.log"
    done = run_group([sys.executable, "-c", LEAVES_GRANDCHILD + "\nsys.exit(3)", "0"], timeout=120, log=log)
    assert done.returncode == 3 and "out: 写一首七言绝句" in done.stdout == log.read_text(encoding="utf-8")
    assert_group_ended(*group_and_grandchild(done.stdout))


def test_run_group_timeout_ends_the_group(tmp_path):
    """Past the timeout: TimeoutExpired, and the program and its grandchild are both ended."""
    log = tmp_path / "out.log"
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_group([sys.executable, "-c", LEAVES_GRANDCHILD, "300"], timeout=3, log=log)
    assert time.monotonic() - t0 < 60
    assert_group_ended(*group_and_grandchild(log.read_text(encoding="utf-8")))


def test_run_group_timeout_keeps_the_captured_output():
    """Captured (no log file), the output so far travels on the TimeoutExpired."""
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run_group([sys.executable, "-c", LEAVES_GRANDCHILD, "300"], timeout=3)
    output = info.value.output.decode() if isinstance(info.value.output, bytes) else info.value.output
    assert "out: 写一首七言绝句" in output
    assert_group_ended(*group_and_grandchild(output))


# A Python program that runs LEAVES_GRANDCHILD through run_group, as a notebook or script would.
RUNS_A_GROUP = textwrap.dedent("""
    import signal, sys
    from llmkit.lifecycle import run_group
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started from a background job
    try:
        run_group([sys.executable, "-c", sys.argv[2], "300"], timeout=600, log=sys.argv[1])
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(130)
""")


def test_run_group_ctrl_c_ends_the_group(tmp_path):
    """Ctrl-C reaches the caller (the program has its own session, so a terminal's SIGINT misses it): the
    caller's KeyboardInterrupt ends the program and its grandchild, then propagates."""
    log = tmp_path / "out.log"
    caller = subprocess.Popen([sys.executable, "-c", RUNS_A_GROUP, str(log), LEAVES_GRANDCHILD],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert wait_until(lambda: log.exists() and "grandchild" in log.read_text(encoding="utf-8"), 60)
        pgid, grandchild = group_and_grandchild(log.read_text(encoding="utf-8"))
        assert pgid != caller.pid and running(grandchild)
        os.killpg(caller.pid, signal.SIGINT)  # what Ctrl-C in a terminal does to the foreground group
        out, _ = caller.communicate(timeout=60)
        assert caller.returncode == 130 and "KeyboardInterrupt" in out
        assert_group_ended(pgid, grandchild)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()


def test_watchdog_ends_the_group_when_its_pipe_closes():
    """`python -m llmkit.lifecycle watch PGID GRACE` waits on stdin; at EOF it ends the group: SIGTERM, then
    SIGKILL after GRACE seconds for what ignores SIGTERM (here the program itself)."""
    ignores_term = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + LEAVES_GRANDCHILD
    program = subprocess.Popen([sys.executable, "-c", ignores_term, "300"], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)
    dog = subprocess.Popen([sys.executable, "-m", "llmkit.lifecycle", "watch", str(program.pid), "2"],
                           stdin=subprocess.PIPE, start_new_session=True)
    try:
        pgid, grandchild = group_and_grandchild(program.stdout.readline())
        time.sleep(1)
        assert dog.poll() is None and running(grandchild), "the watchdog waits while the pipe is open"
        dog.stdin.close()  # what happens when the launching Python process ends, however it ends
        assert dog.wait(60) == 0
        assert program.wait(10) == -signal.SIGKILL
        assert_group_ended(pgid, grandchild)
    finally:
        for proc in (program, dog):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_watchdog_usage():
    """The watchdog names its arguments when called wrongly."""
    done = subprocess.run([sys.executable, "-m", "llmkit.lifecycle", "watch"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "usage: python -m llmkit.lifecycle watch PGID GRACE_SECONDS" in done.stderr


def test_launch_polls_health_and_stop_ends_the_group():
    """launch() fills in {port}, returns once /health is 200; stop() ends the server and its grandchild."""
    handle = launch("health", [sys.executable, "-c", HEALTH_SERVER, "{port}"], timeout=60)
    try:
        assert handle.health() and handle in running_servers() and port_in_use(handle.port)
        members = handle.processes()
        assert handle.pid in members and len(members) == 2, members
        assert "serving" in handle.logs()
    finally:
        code = handle.stop(timeout=10)
    assert code == -signal.SIGTERM and handle not in running_servers()
    assert_group_ended(handle.pid, *members)
    assert wait_until(lambda: not port_in_use(handle.port), 10)


# A Python program that launches HEALTH_SERVER, prints the server's pid and its watchdog's command, then waits.
LAUNCHES_A_SERVER = textwrap.dedent("""
    import psutil, sys, time
    from llmkit.lifecycle import launch
    handle = launch("health", [sys.executable, "-c", sys.argv[1], "{port}"], timeout=60)
    dog = next(p for p in psutil.Process().children() if p.pid != handle.pid)
    print(handle.pid, " ".join(dog.cmdline()), flush=True)
    time.sleep(600)
""")


def test_parent_death_watchdog_ends_a_launched_server():
    """The launcher is killed (no atexit, no finally): its watchdog, `python -m llmkit.lifecycle watch`, ends
    the server's whole group."""
    parent = subprocess.Popen([sys.executable, "-c", LAUNCHES_A_SERVER, HEALTH_SERVER], stdout=subprocess.PIPE,
                              text=True)
    try:
        pid, *dog_cmd = parent.stdout.readline().split()
        server_pid = int(pid)
        assert dog_cmd[1:] == ["-m", "llmkit.lifecycle", "watch", pid, "15.0"]
        members = group_members(server_pid)
        assert len(members) == 2
        parent.kill()
        parent.wait(10)
        assert_group_ended(server_pid, *members)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


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
    assert "-m llmkit.note_server" in server.command_line() and "running" in repr(server)
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


# ---------------------------------------------------------------------------------------------- launch scripts
def test_vllm_flags_are_llm_kwargs(monkeypatch):
    """`python -m llmkit vllm-flags` (what launch_vllm.sh passes on) is llm_kwargs() as flags: one source."""
    for small in ("1", "0"):
        monkeypatch.setenv("LLMKIT_SMALL", small)
        done = subprocess.run([sys.executable, "-m", "llmkit", "vllm-flags"], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == cli_flags(llm_kwargs())
    assert "--enforce-eager" not in cli_flags(llm_kwargs())  # LLMKIT_SMALL=0 here: the full-size settings


@pytest.mark.engine
def test_launch_vllm_sh_serves_on_localhost(tiny_poet_dir):
    """servers/launch_vllm.sh runs `vllm serve` (on CPU too) with the course defaults on 127.0.0.1; extra flags
    (here --port) pass through; it answers /health and a completion, and stop() leaves nothing."""
    script = ROOT / "servers" / "launch_vllm.sh"
    handle = launch("launch_vllm", ["bash", str(script), "--port", "{port}"], timeout=TIMEOUT,
                    env={"PYTHON": sys.executable, "LLMKIT_MODEL": str(tiny_poet_dir)}, model=str(tiny_poet_dir))
    try:
        log = handle.logs(400)
        plain = next(line for line in log.splitlines() if line.strip().startswith("vllm serve "))
        assert f"--host 127.0.0.1 --port 8000 {' '.join(cli_flags(llm_kwargs()))} --port {handle.port}" in plain
        listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == handle.port}
        assert listening == {"127.0.0.1"}
        assert clients.served_model(handle) == str(tiny_poet_dir)
        assert clients.openai_completion(handle, "写一首七言绝句", max_tokens=4).texts
        members = handle.processes()
        assert len(members) >= 2, "vllm serve and its engine process"
    finally:
        handle.stop()
    assert not any(running(p) for p in members) and handle.processes() == []
    assert wait_until(lambda: not port_in_use(handle.port), 10)


@pytest.mark.skipif(gpu_count() > 0, reason="this machine has a GPU: SGLang may run here")
def test_launch_sglang_sh_without_gpu_says_why():
    """On a machine without an NVIDIA GPU the SGLang script exits at once with the reason."""
    done = subprocess.run(["bash", str(ROOT / "servers" / "launch_sglang.sh")], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "LLMKIT_SGLANG_PYTHON": sys.executable})
    assert done.returncode == 1 and "no NVIDIA GPU" in done.stderr and "launch_vllm.sh" in done.stderr
