"""The registry of task kinds and the context a kind receives when it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from app.errors import TaskKindNotFound, ValidationFailed


class RunContext(Protocol):
    """What a running kind may tell the outside world."""

    run_id: int
    attempt: int

    async def progress(self, percent: float, message: str = "") -> None: ...

    async def log(self, message: str, level: str = "info") -> None: ...


KindFunction = Callable[[RunContext, Any], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class KindSpec:
    name: str
    title: str
    params_model: type[BaseModel]
    function: KindFunction

    def parse_params(self, params: dict[str, Any]) -> BaseModel:
        """Validate raw params; raise ValidationFailed naming the bad fields."""
        try:
            return self.params_model.model_validate(params)
        except ValidationError as error:
            fields = {
                ".".join(str(p) for p in e["loc"]) or "params": e["msg"] for e in error.errors()
            }
            raise ValidationFailed(
                f"Invalid params for task kind '{self.name}'", details={"fields": fields}
            ) from None


_KINDS: dict[str, KindSpec] = {}


def register_kind(
    name: str, *, title: str, params: type[BaseModel]
) -> Callable[[KindFunction], KindFunction]:
    """Decorator: register `function` as the task kind `name`."""

    def decorator(function: KindFunction) -> KindFunction:
        if name in _KINDS:
            raise ValueError(f"task kind {name!r} is registered twice")
        _KINDS[name] = KindSpec(name=name, title=title, params_model=params, function=function)
        return function

    return decorator


def get_kind(name: str) -> KindSpec:
    try:
        return _KINDS[name]
    except KeyError:
        raise TaskKindNotFound(f"No task kind named '{name}'", details={"kind": name}) from None


def kind_names() -> list[str]:
    return sorted(_KINDS)
