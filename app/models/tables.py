"""Imports every table module so that SQLModel.metadata knows them all."""

from app.models.runs import Attempt, Run, RunLog

__all__ = ["Attempt", "Run", "RunLog"]
