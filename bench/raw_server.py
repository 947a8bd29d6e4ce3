"""The floor for HTTP rows: a bare ASGI app on the same uvicorn setup, serving fixed bytes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn


def make_app(body: bytes, content_type: bytes) -> Any:
    async def app(scope: dict[str, Any], _receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


if __name__ == "__main__":
    port, path, ctype = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].encode()
    uvicorn.run(
        make_app(path.read_bytes(), ctype),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
    )
