"""Bearer-token auth: one shared token from `api.token_file`, compared in constant time.

Without a token configured (the API bound to loopback), every request is accepted: the same
trust as the ZeroMQ socket on 127.0.0.1.  With one, every /api request needs
`Authorization: Bearer <token>` -- or `?token=` for what a browser fetches by URL (images,
the event stream), which cannot carry a header.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, status


class TokenAuth:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def required(self) -> bool:
        return self._token is not None

    def __call__(self, request: Request) -> None:
        if self._token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            given = request.query_params.get("token", "")
        if not given or not hmac.compare_digest(given.strip().encode(), self._token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                                "missing or wrong token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
