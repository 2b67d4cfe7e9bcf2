"""Task kinds: registered async functions with a pydantic params model.

They live under app/ (not jobs/) because services validate params against
them and the web process builds forms from them; only the worker runs them.
"""

from app.kinds.registry import KindSpec, RunContext, get_kind, kind_names, register_kind

# Built-in kinds register themselves on import.
from app.kinds import demo  # noqa: E402,F401  isort: skip

__all__ = ["KindSpec", "RunContext", "get_kind", "kind_names", "register_kind"]
