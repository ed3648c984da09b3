"""llmkit: the small helper library of the vLLM and SGLang course.

The notebooks import the names below from ``llmkit`` itself, and everything else from the module of its
concept, one module per concept:

==================  ============================================================================="""

from llmkit.chat import NO_THINKING
from llmkit.models import (HUB_MODEL, ModelNotFound, default_model, gpu_count, llm_kwargs, sglang_kwargs,
                           small_machine)

__version__ = "0.2.0"
__all__ = ["HUB_MODEL", "NO_THINKING", "ModelNotFound", "default_model", "gpu_count", "llm_kwargs", "sglang_kwargs",
           "small_machine"]
