"""Exercise checkers: ``check("02.1", my_answer)`` says ✅ and why, or gives a hint, never the solution.

Every notebook ends with exercises. Under them, one cell per exercise holds ``my_answer = None`` and a
``check(...)`` call: ``None`` means "not answered yet" and never fails, so the committed notebooks run
clean. A hidden cell (tagged ``solution``) computes a worked solution and asserts, quietly, that it
passes its check. Some checks need what the notebook computed (the engine, a table, an output); the
cell passes it as keyword arguments, e.g. ``check("03.2", my_answer, table=table)``.

The framework is in ``core``; each notebook's checkers, with the cases that test them, are in
``nb00`` … ``nb17``.
"""

from llmkit.exercises import (nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09, nb10, nb11,  # noqa: F401
                              nb12, nb13, nb14, nb15, nb16, nb17)
from llmkit.exercises.core import EXERCISES, Case, Hint, Verdict, check, evaluate

MODULES = (nb00, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09, nb10, nb11, nb12, nb13, nb14, nb15, nb16, nb17)
__all__ = ["EXERCISES", "MODULES", "Case", "Hint", "Verdict", "check", "evaluate"]
