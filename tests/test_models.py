"""llmkit.models: how the course picks its model and its engine settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmkit import models


def test_env_path_that_does_not_exist_names_variable_and_path(monkeypatch, tmp_path):
    missing = tmp_path / "no-such-model"
    monkeypatch.setenv("LLMKIT_MODEL", str(missing))
    with pytest.raises(models.ModelNotFound) as err:
        models.default_model()
    assert "LLMKIT_MODEL" in str(err.value) and str(missing) in str(err.value)


def test_env_folder_without_config_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMKIT_MODEL", str(tmp_path))
    with pytest.raises(models.ModelNotFound, match="config.json"):
        models.default_model()


def test_env_hub_id_passes_through(monkeypatch):
    monkeypatch.setenv("LLMKIT_MODEL", "Qwen/Qwen3-0.6B")
    assert models.default_model() == "Qwen/Qwen3-0.6B"


def test_env_existing_folder_is_made_absolute(monkeypatch, tiny_poet_dir):
    monkeypatch.setenv("LLMKIT_MODEL", str(tiny_poet_dir))
    assert models.default_model() == str(tiny_poet_dir.resolve())


def test_without_gpu_the_default_is_tiny_poet(monkeypatch, tiny_poet_dir):
    monkeypatch.delenv("LLMKIT_MODEL", raising=False)
    monkeypatch.setattr(models, "gpu_count", lambda: 0)
    assert models.default_model() == str(tiny_poet_dir)


def test_with_gpu_and_cached_hub_model_the_default_is_the_hub_model(monkeypatch, tmp_path):
    snap = tmp_path / "hub" / "models--Qwen--Qwen3-0.6B" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    monkeypatch.delenv("LLMKIT_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(models, "gpu_count", lambda: 1)
    assert models.default_model() == "Qwen/Qwen3-0.6B"


def test_with_gpu_but_no_hub_falls_back_to_tiny_poet(monkeypatch, tmp_path, tiny_poet_dir):
    monkeypatch.delenv("LLMKIT_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "gpu_count", lambda: 1)
    assert models.default_model() == str(tiny_poet_dir)


def test_small_machine_switch(monkeypatch):
    monkeypatch.setenv("LLMKIT_SMALL", "1")
    monkeypatch.setattr(models, "gpu_count", lambda: 0)
    kw = models.llm_kwargs(max_model_len=256)
    assert kw["enforce_eager"] is True and kw["max_model_len"] == 256
    assert kw["kv_cache_memory_bytes"] == models.CPU_KV_CACHE_BYTES
    monkeypatch.setenv("LLMKIT_SMALL", "0")
    monkeypatch.setattr(models, "gpu_count", lambda: 1)
    assert "enforce_eager" not in models.llm_kwargs()


def test_cli_model_reports_bad_env_cleanly(tmp_path):
    env = {"LLMKIT_MODEL": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "llmkit", "model"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "LLMKIT_MODEL" in r.stderr and "Traceback" not in r.stderr


def test_sglang_kwargs_small_switch_and_attention_backend(monkeypatch):
    monkeypatch.setenv("LLMKIT_SMALL", "1")
    monkeypatch.setenv("LLMKIT_SGLANG_ATTENTION_BACKEND", "triton")
    kw = models.sglang_kwargs(context_length=2048)
    assert kw["disable_cuda_graph"] is True and kw["context_length"] == 2048 and kw["attention_backend"] == "triton"
    monkeypatch.setenv("LLMKIT_SMALL", "0")
    monkeypatch.delenv("LLMKIT_SGLANG_ATTENTION_BACKEND")
    assert models.sglang_kwargs() == {"random_seed": 0}


def test_shared_gpu_gives_a_share_only_on_a_full_size_gpu(monkeypatch):
    """A share of the GPU for vLLM or SGLang outside small-machine mode; nothing on a CPU or in small mode."""
    monkeypatch.setattr(models, "gpu_count", lambda: 1)
    monkeypatch.setenv("LLMKIT_SMALL", "0")
    assert models.shared_gpu() == {"gpu_memory_utilization": 0.25}
    assert models.shared_gpu("sglang", 0.2) == {"mem_fraction_static": 0.2}
    monkeypatch.setenv("LLMKIT_SMALL", "1")
    assert models.shared_gpu() == {}
    monkeypatch.delenv("LLMKIT_SMALL")
    monkeypatch.setattr(models, "gpu_count", lambda: 0)
    assert models.shared_gpu("sglang") == {}
