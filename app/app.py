"""The Reflex app: pages, the REST API under /api/v1 and the live-update hub."""

from __future__ import annotations

import reflex as rx
from starlette.applications import Starlette
from starlette.routing import Mount

from app.api.main import API_PREFIX, create_api
from app.logging import configure_logging
from app.pages.dashboard import dashboard
from app.pages.runs import runs_page
from app.pages.upcoming import UPCOMING, upcoming_page
from app.settings import get_settings
from state.live import hub
from state.runs import RunsState

_settings = get_settings()
configure_logging(level=_settings.log_level, log_format=_settings.log_format)

app = rx.App(
    # Mounting (not passing FastAPI itself) keeps unknown /api/v1 paths and
    # wrong methods inside FastAPI's handlers: JSON errors, never HTML.
    api_transformer=Starlette(routes=[Mount(API_PREFIX, app=create_api())]),
)
app.add_page(dashboard, route="/", title="Dashboard · Taskdeck", on_load=RunsState.load_runs)
app.add_page(runs_page, route="/runs", title="Runs · Taskdeck", on_load=RunsState.load_runs)
for route, (title, text) in UPCOMING.items():
    app.add_page(upcoming_page(title, text), route=route, title=f"{title} · Taskdeck")

hub.bind(app)
app.register_lifespan_task(hub.run)
