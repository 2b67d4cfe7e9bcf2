"""Soak: does an OAuth2 profile keep a valid token for "hours" without one
401 reaching a caller? Time is compressed: tokens live LIFETIME_S seconds,
so a run of DURATION_S covers DURATION_S / LIFETIME_S token lifetimes (90
lifetimes of a 1-hour token = 90 hours).

The production path: the profile is created in a migrated SQLite database
(credentials encrypted), two "workers" each run the worker's own refresher
loop (`jobs.profiles.refresh_tokens_forever`, with the store that records
token state in the database and publishes it) on their own Redis
connection, and CALLERS tasks call a protected endpoint through the
outbound client with the profile as the database resolves it.

    .venv/bin/python bench/oauth_soak.py [duration_s] [lifetime_s] [callers]

Prints requests, 401s (must be 0), token requests, the refreshes expected,
the token state the database ends with, and the median and p99 latency.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def main(duration_s: float, lifetime_s: float, callers: int) -> int:
    import redis.asyncio as aioredis

    from app.db import session_scope
    from app.embedded_redis import plan_embedded_redis, wait_for_redis
    from app.logging import configure_logging
    from app.migrate import upgrade_to_head
    from app.models.profiles import ProfileInput
    from app.services import profiles as profile_store
    from app.services.oauth2 import TokenManager
    from app.services.outbound import close_http_client, send
    from app.services.token_states import LiveTokenStateStore
    from jobs.profiles import refresh_tokens_forever
    from tests.integration.oauth_server import OAuthServer

    configure_logging(level="WARNING", log_format="console")
    data = Path(tempfile.mkdtemp(prefix="taskdeck-soak-"))
    os.environ.update(TASKDECK_DATA_DIR=str(data), TASKDECK_SECRET_KEY="soak-" + "k" * 40)
    plan = plan_embedded_redis(data / "redis")
    redis_process = subprocess.Popen(plan.argv, stdout=subprocess.DEVNULL)
    server = OAuthServer(client_secret="soak-secret", expires_in=lifetime_s).start()
    try:
        wait_for_redis(plan.url)
        upgrade_to_head()
        with session_scope() as session:
            profile_id = profile_store.create_profile(
                session=session, actor=None,
                data=ProfileInput(
                    name="soak", base_url=server.url, timeout_s=5,
                    auth={"kind": "oauth2_client_credentials", "token_url": server.token_url,
                          "client_id": server.client_id, "client_secret": "soak-secret"},
                ),
            ).id
            profile = profile_store.resolve_profile(session=session, profile_id=profile_id)
        connections = [aioredis.Redis.from_url(plan.url) for _ in range(2)]
        workers = []
        for connection in connections:
            store = LiveTokenStateStore(connection)
            workers.append({"tokens": TokenManager(redis=connection, store=store),
                            "token_store": store})
        deadline = time.monotonic() + duration_s
        latencies_ms: list[float] = []
        statuses: dict[int, int] = {}

        async def caller(index: int) -> None:
            manager = workers[index % 2]["tokens"]
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await send(profile, "GET", "/api/ping", tokens=manager)
                latencies_ms.append((time.perf_counter() - started) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                await asyncio.sleep(0.05)

        loops = [asyncio.create_task(refresh_tokens_forever(ctx)) for ctx in workers]
        await asyncio.gather(*(caller(i) for i in range(callers)))
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await close_http_client()
        for connection in connections:
            await connection.aclose()
        with session_scope() as session:
            final_state = profile_store.get_profile(session=session, profile_id=profile_id)
    finally:
        server.stop()
        redis_process.terminate()
        redis_process.wait(timeout=10)

    ordered = sorted(latencies_ms)
    print(f"duration_s={duration_s:g} lifetime_s={lifetime_s:g} callers={callers}")
    print(f"token lifetimes covered: {duration_s / lifetime_s:.0f}")
    print(f"requests: {sum(statuses.values())}  by status: {dict(sorted(statuses.items()))}")
    print(f"401 seen by the API server: {server.unauthorized}")
    print(f"token requests: {server.token_requests}  (one per 80% of a lifetime would be "
          f"{duration_s / (0.8 * lifetime_s):.0f})")
    print(f"call latency ms: median {statistics.median(ordered):.1f}  "
          f"p99 {ordered[int(len(ordered) * 0.99) - 1]:.1f}")
    print(f"token state in the database at the end: {final_state.token_state.status.value}")
    return 1 if server.unauthorized or statuses.get(401) else 0


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    duration, lifetime, count = (args + [90, 3, 20][len(args):])[:3]
    raise SystemExit(asyncio.run(main(duration, lifetime, int(count))))
