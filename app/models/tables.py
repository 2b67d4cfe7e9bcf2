"""Imports every table module so that SQLModel.metadata knows them all."""

from app.models.profiles import Profile
from app.models.runs import Attempt, Run, RunLog
from app.models.users import ApiToken, AuditEvent, User, UserSession

__all__ = ["ApiToken", "Attempt", "AuditEvent", "Profile", "Run", "RunLog", "User", "UserSession"]
