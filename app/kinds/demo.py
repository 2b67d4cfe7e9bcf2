"""The built-in `demo` kind: walks through N steps, reporting progress and a
log line per step; can be told to fail, to show what a failure looks like."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field

from app.kinds.registry import RunContext, register_kind


class DemoFailure(Exception):
    """Raised on purpose when the demo is told to fail."""


class DemoParams(BaseModel):
    steps: int = Field(default=10, ge=1, le=1000, description="How many steps to take")
    step_delay_s: float = Field(default=0.3, ge=0, le=60, description="Pause per step")
    fail_at_step: int | None = Field(default=None, ge=1, description="Fail at this step")


@register_kind("demo", title="Demo", params=DemoParams)
async def run_demo(ctx: RunContext, params: DemoParams) -> dict[str, Any]:
    for step in range(1, params.steps + 1):
        await asyncio.sleep(params.step_delay_s)
        if params.fail_at_step == step:
            await ctx.log(f"Step {step} of {params.steps} failed on purpose", level="error")
            raise DemoFailure(f"Told to fail at step {step}")
        await ctx.log(f"Step {step} of {params.steps} done")
        await ctx.progress(100.0 * step / params.steps, f"Step {step} of {params.steps}")
    return {"steps": params.steps}
