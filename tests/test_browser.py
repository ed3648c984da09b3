"""The workshop path in a real browser: the README's JupyterLab (scripts/lab.sh, what `make lab` runs), notebook
04 run from the Run menu, and the sampling explorer's temperature slider dragged with the mouse, which must
redraw the plot from the engine.

Playwright drives Debian's Chromium, headless. Screenshots go to test-artifacts/. JupyterLab runs on
127.0.0.1 on a free port with a known token and its own settings (autosave off, so the committed notebook is
never written) and is stopped with its kernels at the end: no process and no port is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
NOTEBOOK = ROOT / "notebooks" / "04_sampling.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# JupyterLab settings for the test only: never autosave (the notebook in git stays as it is), render every
# cell (no virtual scrolling), and no news or update checks (there is no network).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
RUN_ALL_TIMEOUT = 180   # notebook 04 on a 2-core CPU: about 40 s under nbval, the engine start included
REDRAW_TIMEOUT = 60


def chromium() -> str | None:
    """Debian's Chromium (Playwright's own browser download is not used)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def skip_reason() -> str | None:
    """Why this machine cannot run the browser test; None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (scripts/setup.sh installs it from requirements/course.txt)"
    if chromium() is None:
        return ("Chromium not found: `apt-get install chromium` (needs root; scripts/setup.sh does it when run "
                "as root)")
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "vLLM is not installed in this environment (notebook 04 needs it)"
    return None


pytestmark = [pytest.mark.engine, pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))]


# ------------------------------------------------------------------------------------ JupyterLab
def lab_env(tmp: Path, port: int, token: str) -> dict:
    """The environment a learner's `make lab` has, plus the test's port, token and throwaway Jupyter dirs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "MPLBACKEND"}
    settings = tmp / "lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    for name in ("workspaces", "runtime"):
        (tmp / name).mkdir(exist_ok=True)
    env.update(PORT=str(port), JUPYTER_TOKEN=token, JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    return env


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port."""
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextlib.contextmanager
def running_lab(tmp: Path):
    """scripts/lab.sh on a free port with a known token; on exit, shut down server and kernels and check
    that no process or port is left."""
    import psutil

    from llmkit.lifecycle import free_port

    port, token = free_port(), secrets.token_hex(16)
    log_path = ARTIFACTS / "browser-jupyterlab.log"
    checkpoints = NOTEBOOK.parent / ".ipynb_checkpoints"
    had_checkpoints, before = checkpoints.exists(), NOTEBOOK.read_bytes()
    log = log_path.open("w")
    args = ["--ServerApp.port_retries=0"]  # scripts/lab.sh adds --allow-root when run as root (CI)
    proc = subprocess.Popen(["bash", "scripts/lab.sh", *args], cwd=ROOT,
                            env=lab_env(tmp, port, token), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    lab = SimpleNamespace(url=f"http://127.0.0.1:{port}", port=port, token=token, proc=proc, pids=set())
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{lab.url}/api/status", params={"token": token}, timeout=2).ok:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer in 90 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield lab
    finally:
        with contextlib.suppress(psutil.Error):
            lab.pids |= {p.pid for p in psutil.Process(proc.pid).children(recursive=True)} | {proc.pid}
        with contextlib.suppress(requests.RequestException):
            requests.post(f"{lab.url}/api/shutdown", headers={"Authorization": f"token {token}"}, timeout=10)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        leftovers = []
        for pid in lab.pids:   # only the processes this test started: the server, its kernels and theirs
            with contextlib.suppress(psutil.NoSuchProcess):
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    leftovers.append(p)
        _, alive = psutil.wait_procs(leftovers, timeout=20)
        lab.leftovers = []
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                lab.leftovers.append(f"{p.pid} {p.name()}")
                p.kill()
        log.close()
        if NOTEBOOK.read_bytes() != before:
            NOTEBOOK.write_bytes(before)
            raise AssertionError("the browser session wrote the committed notebook (restored it)")
        if not had_checkpoints and checkpoints.exists():
            shutil.rmtree(checkpoints)


# ------------------------------------------------------------------------------------ the page
def code_prompts(page) -> list[str]:
    """The execution prompt of every code cell: "[ ]:", "[*]:" (running or queued), "[12]:", or "" where the
    cell's source is hidden (the solution cells)."""
    return [t.strip() for t in page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()]


def wait_for_run(page, cells: slice, n_code: int, timeout: float) -> list[str]:
    """Wait until the code cells in ``cells`` have run (each shows a number) or the run stopped at an error,
    and the kernel is idle (that covers the hidden cells, which show no prompt)."""
    deadline = time.monotonic() + timeout
    started, idle_polls = False, 0
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    while time.monotonic() < deadline:
        prompts = code_prompts(page)
        if len(prompts) == n_code:   # the notebook is fully rendered
            prompts = [p for p in prompts[cells] if p]
            busy = any("*" in p for p in prompts)
            started = started or busy or all(re.search(r"\d", p) for p in prompts)
            idle_polls = idle_polls + 1 if started and not busy and idle.count() else 0
            if idle_polls >= 2:
                return prompts
        page.wait_for_timeout(1000)
    raise AssertionError(f"cells still running after {timeout:.0f} s: {code_prompts(page)[cells]}")


def error_text(page) -> str:
    """The text of every error output on the page (tracebacks)."""
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return "\n".join(t for t in errors.all_inner_texts() if "Error" in t or "Traceback" in t)


def menu(page, top: str, item: str) -> None:
    """Click a menu bar entry, then one of its items, as a learner does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).click()


def shot(target, name: str) -> bytes:
    """Save a screenshot under test-artifacts/ and return its bytes."""
    return target.screenshot(path=str(ARTIFACTS / f"browser-04-{name}.png"))


# ------------------------------------------------------------------------------------ the test
def test_run_notebook_04_and_drag_the_temperature_slider(tmp_path):
    """Open 04 in JupyterLab, run it from the Run menu, drag "temperature": the explorer's plot is redrawn."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("browser-04-*.png"):
        old.unlink()
    t0 = time.monotonic()
    timings = {}
    with running_lab(tmp_path) as lab:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=chromium(), args=CHROMIUM_ARGS,
                headless=True, viewport={"width": 1400, "height": 1000})
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            try:
                page.goto(f"{lab.url}/lab/tree/notebooks/04_sampling.ipynb?token={lab.token}")
                page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
                # The status bar names the notebook's kernel (from its metadata) and says when it is ready.
                page.get_by_text(re.compile(r"^Python \(vLLM course\) \| Idle$")).wait_for(timeout=90_000)
                timings["opened"] = time.monotonic() - t0
                shot(page, "1-opened")

                # Run everything but the last cell (its cleanup stops the engine the slider needs).
                n_code = len(code_prompts(page))
                page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").last.click()
                menu(page, "Run", "Run All Above Selected Cell")
                prompts = wait_for_run(page, slice(0, n_code - 1), n_code, RUN_ALL_TIMEOUT)
                timings["ran"] = time.monotonic() - t0
                assert all(re.search(r"\d", p) for p in prompts), \
                    f"the run stopped at an error: {prompts}\n{error_text(page)[-3000:]}"

                # The explorer: the output holding the "temperature" slider, and its plot image.
                label = page.locator(".widget-label", has_text=re.compile(r"^temperature$"))
                slider = page.locator(".widget-slider", has=label)
                assert slider.count() == 1, "one temperature slider (the sampling explorer)"
                explorer = page.locator(".jp-OutputArea-output", has=slider)
                image = explorer.locator(".widget-output img").first
                explorer.scroll_into_view_if_needed()
                image.wait_for()
                src_before = image.get_attribute("src")
                readout_before = slider.locator(".widget-readout").inner_text()
                before_png = shot(explorer, "2-explorer-before")

                # Drag the handle to a fifth of the track (temperature about 0.5), like a mouse does.
                handle = slider.locator(".noUi-handle")
                track = slider.locator(".noUi-target").bounding_box()
                box = handle.bounding_box()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.mouse.down()
                page.mouse.move(track["x"] + 0.2 * track["width"], box["y"] + box["height"] / 2, steps=12)
                page.mouse.up()
                deadline = time.monotonic() + REDRAW_TIMEOUT
                while image.get_attribute("src") == src_before and time.monotonic() < deadline:
                    page.wait_for_timeout(500)
                readout_after = slider.locator(".widget-readout").inner_text()
                page.wait_for_timeout(500)   # let the new image paint before the screenshot
                after_png = shot(explorer, "3-explorer-after")
                timings["redrawn"] = time.monotonic() - t0
                assert float(readout_after) < float(readout_before), \
                    f"the slider did not move: {readout_before} → {readout_after}"
                assert image.get_attribute("src") != src_before, "the plot image was not redrawn"
                assert after_png != before_png

                # The last cell: the notebook's own cleanup stops the engine.
                page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").last.click()
                page.keyboard.press("Control+Enter")
                last = wait_for_run(page, slice(n_code - 1, n_code), n_code, 60)
                assert re.search(r"\d", last[0]) and not error_text(page), error_text(page)[-2000:]
                shot(page, "4-cleaned-up")
            except Exception:
                with contextlib.suppress(Exception):
                    shot(page, "failure")
                raise
            finally:
                context.close()
    assert lab.proc.returncode is not None, "JupyterLab is still running"
    assert not lab.leftovers, f"processes left behind: {lab.leftovers}"
    assert port_is_free(lab.port), f"port {lab.port} is still in use"
    print(f"browser test: {readout_before} → {readout_after}; " +
          ", ".join(f"{k} at {v:.0f} s" for k, v in timings.items()) + f"; done in {time.monotonic() - t0:.0f} s")
