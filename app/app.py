"""The Reflex app: pages, the REST API under /api/v1, the session-cookie
routes under /auth and the live-update hub."""

from __future__ import annotations

import reflex as rx
from starlette.applications import Starlette
from starlette.routing import Mount

from app.api.browser_session import AUTH_PREFIX, create_browser_session_app
from app.api.main import API_PREFIX, create_api
from app.logging import configure_logging
from app.origins import engineio_origin_check
from app.pages.dashboard import dashboard
from app.pages.profiles import profile_page, profiles_page
from app.pages.runs import runs_page
from app.pages.settings import settings_page
from app.pages.sign_in import login_page, setup_page
from app.pages.upcoming import UPCOMING, upcoming_page
from app.settings import get_settings
from state.account import SettingsState
from state.auth import AuthState
from state.live import hub
from state.profiles import ProfilesState, ProfileState
from state.runs import RunsState
from state.sign_in import SetupState, SignInState

_settings = get_settings()
configure_logging(level=_settings.log_level, log_format=_settings.log_format)

app = rx.App(
    # Mounting (not passing FastAPI itself) keeps unknown /api/v1 paths and
    # wrong methods inside FastAPI's handlers: JSON errors, never HTML.
    api_transformer=Starlette(
        routes=[
            Mount(API_PREFIX, app=create_api()),
            Mount(AUTH_PREFIX, app=create_browser_session_app()),
        ]
    ),
)


def _signed_in(*events: object) -> list[object]:
    """on_load for pages that need a user: check the session first."""
    return [AuthState.check_session, *events]


app.add_page(dashboard, route="/", title="Dashboard · Taskdeck",
             on_load=_signed_in(RunsState.load_runs))
app.add_page(runs_page, route="/runs", title="Runs · Taskdeck",
             on_load=_signed_in(RunsState.load_runs))
app.add_page(profiles_page, route="/profiles", title="Profiles · Taskdeck",
             on_load=_signed_in(ProfilesState.load_profiles))
app.add_page(profile_page, route="/profiles/[profile_id]", title="Profile · Taskdeck",
             on_load=_signed_in(ProfileState.load_profile))
app.add_page(settings_page, route="/settings", title="Settings · Taskdeck",
             on_load=_signed_in(SettingsState.open_settings))
app.add_page(login_page, route="/login", title="Sign in · Taskdeck",
             on_load=SignInState.open_sign_in)
app.add_page(setup_page, route="/setup", title="Set up · Taskdeck", on_load=SetupState.open_setup)
for route, (title, text) in UPCOMING.items():
    app.add_page(upcoming_page(title, text), route=route, title=f"{title} · Taskdeck",
                 on_load=_signed_in())

# The address the sign-in limits and the audit log see, behind proxies.
rx.config.get_config().trusted_proxy_hops = _settings.trusted_proxy_hops
# Only Taskdeck's own pages may open the websocket (see app/origins.py).
if app.sio is not None:
    app.sio.eio.cors_allowed_origins = engineio_origin_check(_settings.allowed_origins)

hub.bind(app)
app.register_lifespan_task(hub.run)
