"""The daemon's events as they are published: the recent ones, and a live stream
(server-sent events) for the review page -- every camera's state first, then each event as
one `data:` line of the same JSON as on ZeroMQ and MQTT."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from facewatch.events.codec import to_json

router = APIRouter(tags=["events"])
PING_EVERY_S = 15.0


@router.get("/events", summary="The most recent published events, oldest first")
def recent_events(request: Request,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    events = request.app.state.context.live.recent()[-limit:]
    return [json.loads(to_json(e)) for e in events]


@router.get("/events/stream", response_class=StreamingResponse,
            summary="Server-sent events: the cameras' states, then every published event")
async def stream_events(request: Request) -> StreamingResponse:
    live = request.app.state.context.live

    async def messages() -> AsyncIterator[str]:
        queue = live.subscribe()
        try:
            yield "retry: 3000\n\n"
            for status in live.cameras().values():
                yield _message(status)
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), PING_EVERY_S)
                except TimeoutError:
                    yield ": ping\n\n"  # keeps proxies from closing an idle stream
                    continue
                yield _message(event)
        finally:
            live.unsubscribe(queue)

    return StreamingResponse(messages(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _message(event: Any) -> str:
    return f"data: {to_json(event).decode()}\n\n"
