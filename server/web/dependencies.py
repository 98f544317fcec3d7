"""What the routes take from the app: the runtime, and the creator's bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from reelfork.server.runtime import Runtime

bearer = HTTPBearer(auto_error=False)


def runtime(connection: HTTPConnection) -> Runtime:
    """The server's runtime, for a request or a websocket."""
    found: Runtime = connection.app.state.runtime
    return found


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def creator(
    server: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """401 unless the request carries the creator token."""
    # Bytes: a header may hold any Latin-1 text, and compare_digest refuses non-ASCII str.
    given = credentials.credentials.encode() if credentials is not None else b""
    if not given or not hmac.compare_digest(given, server.creator_token.encode()):
        raise HTTPException(
            401,
            "creator routes need 'Authorization: Bearer <creator token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def maybe_creator(
    server: RuntimeDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> bool:
    """Whether the request carries the creator token: False without one, 401 for a wrong one."""
    if credentials is None:
        return False
    creator(server, credentials)
    return True


CreatorDep = Annotated[bool, Depends(maybe_creator)]
