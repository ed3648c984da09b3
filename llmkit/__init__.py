"""llmkit: the small helper library of the vLLM and SGLang course.

One module per concept: ``models`` (which model, which engine settings), ``tiny_poet`` (the
embedded model), ``random_models`` (random-weight stand-ins of real architectures), ``system`` (what
this machine has). The notebooks import from here.
"""

from llmkit.models import (HUB_MODEL, ModelNotFound, default_model, gpu_count, llm_kwargs, sglang_kwargs,
                           small_machine)

__version__ = "0.1.0"
__all__ = ["HUB_MODEL", "ModelNotFound", "default_model", "gpu_count", "llm_kwargs", "sglang_kwargs", "small_machine"]
