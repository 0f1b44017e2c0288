"""The web app of ``metaflowlike ui``: a JSON API under ``/api/`` and a static page.

Built on Starlette (routing, responses, static files) and served by uvicorn. Every
endpoint is a GET that reads through :class:`~metaflowlike.ui.reader.RunBrowser`;
nothing here writes to the datastore. Errors are one JSON object ``{"error": ...}``
with a status code, never a traceback. Path parameters are checked against the id
grammar before they reach the datastore, so none can climb out of its root.

The page itself is one HTML file with vanilla JavaScript and CSS shipped in the package
(``static/``): nothing to build or download. It puts every value in the page as text
(``textContent``), shows the DAG as an ``<img>`` (an SVG image cannot run scripts) and
each card in a sandboxed ``<iframe>`` whose content cannot reach the API.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..exceptions import MetaflowlikeException, NotFound
from ..ids import InvalidId
from .reader import FAILED, RUNNING, SUCCEEDED, BadRequest, RunBrowser

#: the page and its assets may only load what the server itself serves
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'"
)
#: a card runs its own inline scripts (charts) in an opaque origin: it cannot call the API
CARD_POLICY = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; font-src data:"
)
_DAG_COLORS = {SUCCEEDED: "ok", FAILED: "failed", RUNNING: "running"}


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status, headers={"Cache-Control": "no-store"})


def _error(status: int, message: str) -> JSONResponse:
    return _json({"error": message}, status)


def create_app(browser: RunBrowser) -> Starlette:
    """The ASGI app serving ``browser``'s datastore."""
    static_dir = str(resources.files("metaflowlike.ui") / "static")

    def q(request: Request, name: str) -> str | None:
        return request.query_params.get(name)

    async def index(request: Request) -> Response:
        return FileResponse(f"{static_dir}/index.html", headers={"Cache-Control": "no-store"})

    def flows(request: Request) -> Response:
        return _json({"flows": browser.flows()})

    def runs(request: Request) -> Response:
        p = request.path_params
        return _json(
            browser.runs(
                p["flow"],
                status=q(request, "status"),
                tag=q(request, "tag"),
                user=q(request, "user"),
                sort=q(request, "sort") or "created",
                order=q(request, "order") or "desc",
                offset=q(request, "offset"),
                limit=q(request, "limit"),
            )
        )

    def run(request: Request) -> Response:
        p = request.path_params
        return _json(browser.run(p["flow"], p["run"]))

    def dag(request: Request) -> Response:
        from ..client.html import dag_svg
        from ..datastore.records import RunRecord
        from ..graph_render import GraphvizMissing

        p = request.path_params
        data = browser.run(p["flow"], p["run"])
        statuses = {s["name"]: _DAG_COLORS[s["status"]] for s in data["steps"]}
        record = RunRecord(flow=data["flow"], graph=data["graph"])
        try:
            svg = dag_svg(record, statuses)
        except GraphvizMissing as e:
            return _error(503, str(e))
        if not svg.startswith("<svg"):
            return _error(503, "The DAG cannot be drawn: Graphviz (the `dot` program) is missing.")
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    def tasks(request: Request) -> Response:
        p = request.path_params
        return _json(
            browser.tasks(
                p["flow"], p["run"], q(request, "step"), q(request, "offset"), q(request, "limit")
            )
        )

    def _task_args(request: Request) -> tuple[str, str, str, str]:
        p = request.path_params
        return p["flow"], p["run"], p["step"], p["task"]

    def task(request: Request) -> Response:
        return _json(browser.task(*_task_args(request), attempt=q(request, "attempt")))

    def log(request: Request) -> Response:
        return _json(
            browser.log(
                *_task_args(request),
                request.path_params["stream"],
                attempt=q(request, "attempt"),
                offset=q(request, "offset"),
            )
        )

    def card(request: Request) -> Response:
        html = browser.card(
            *_task_args(request), request.path_params["file"], attempt=q(request, "attempt")
        )
        headers = {"Content-Security-Policy": CARD_POLICY, "Cache-Control": "no-store"}
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    def value(request: Request) -> Response:
        if not browser.allow_unpickle:
            return _error(
                403,
                "Showing an artifact's value means unpickling it, which runs code chosen by "
                "whoever wrote it; this server was started without --allow-unpickle. Small "
                "plain values already have a preview in the task's artifact list.",
            )
        return _json(
            browser.artifact_value(
                *_task_args(request), request.path_params["name"], attempt=q(request, "attempt")
            )
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code != 404:
            return _error(exc.status_code, str(exc.detail))
        return _error(404, f"There is no page at {request.url.path}.")

    async def known_error(request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, NotFound) else 400
        if isinstance(exc, MetaflowlikeException) and not isinstance(
            exc, (NotFound, BadRequest, InvalidId)
        ):
            status = 500
        return _error(status, str(exc))

    async def internal_error(request: Request, exc: Exception) -> Response:
        # the server's terminal gets one line; the browser never sees a traceback
        print(f"metaflowlike ui: {request.url.path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return _error(500, "Internal error while reading the datastore (see the server's output).")

    task_path = "/api/tasks/{flow}/{run}/{step}/{task}"
    routes = [
        Route("/", index),
        Route("/api/flows", flows),
        Route("/api/flows/{flow}/runs", runs),
        Route("/api/runs/{flow}/{run}", run),
        Route("/api/runs/{flow}/{run}/dag.svg", dag),
        Route("/api/runs/{flow}/{run}/tasks", tasks),
        Route(task_path, task),
        Route(task_path + "/logs/{stream}", log),
        Route(task_path + "/cards/{file}", card),
        Route(task_path + "/artifacts/{name}", value),
        Mount("/static", StaticFiles(directory=static_dir), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            404: not_found,
            405: not_found,
            HTTPException: not_found,
            MetaflowlikeException: known_error,
            Exception: internal_error,
        },
    )

    async def secure_headers(scope: Any, receive: Any, send: Any) -> None:
        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", PAGE_POLICY.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"no-referrer"))
                message = dict(message, headers=headers)
            await send(message)

        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            response = _error(405, "This server is read-only: it answers GET requests only.")
            await response(scope, receive, send_with_headers)
            return
        await app(scope, receive, send_with_headers)

    return secure_headers  # type: ignore[return-value]
