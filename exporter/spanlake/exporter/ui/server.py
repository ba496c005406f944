"""A stdlib HTTP server for the trace viewer: static page + read-only JSON API over a Store.

Routes (GET only; everything else is 405):

- ``/`` and ``/static/<file>``: the page (packaged next to this module).
- ``/api/experiments``: ``{"experiments": [Experiment.to_dict()], "default_experiment"}``.
- ``/api/traces?experiment=&filter=&order_by=&max_results=&page_token=``: one page,
  ``{"traces": [TraceInfo.to_dict()], "next_page_token"}`` (``experiment`` and
  ``order_by`` repeatable; the shapes are the CLI's ``--format json`` ones).
- ``/api/traces/<trace_id>``: ``Trace.to_dict()`` (``spanlake traces get --format json``).
- ``/api/stats?experiment=&filter=&group_by=&interval=&start=&end=&since=``: trace analytics,
  the ``spanlake stats --format json`` document (``experiment`` / ``group_by`` repeatable,
  ``group_by`` also a comma list; ``start`` / ``end`` epoch ms or ISO 8601).

Errors are JSON ``{"error": {"status", "message"}}``: 400 for a bad filter or parameter,
404 for an unknown trace or route, 500 when the store fails. Stores are thread-safe, so
one store serves every request thread. On a loopback bind, requests naming another host
are refused (403) so a web page cannot read traces through DNS rebinding.
"""

from __future__ import annotations

import ipaddress
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from spanlake.exporter.errors import FilterError, NotFoundError, SpanlakeError
from spanlake.exporter.store import Store
from spanlake.exporter.store.metrics import build_query

_log = logging.getLogger(__name__)

MAX_PAGE = 1000
DEFAULT_PAGE = 50

#: The packaged static files (name -> content type); nothing else is served.
_STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "trace.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "overview.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}

#: Defence in depth on top of the page never parsing data as HTML: no inline or remote
#: script, no plugins, no framing.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class ApiError(Exception):
    """An error answered as JSON with ``status``."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:5000`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _load_static(name: str) -> bytes:
    return resources.files("spanlake.exporter.ui").joinpath("static", name).read_bytes()


def _json_bytes(value: Any) -> bytes:
    # default=str: attribute values a store hands back that JSON has no type for.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


class UIServer(ThreadingHTTPServer):
    """The viewer's HTTP server; holds the store it reads and the experiment to preselect."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], store: Store, default_experiment: str | None = None
    ) -> None:
        super().__init__(address, _Handler)
        self.store = store
        self.default_experiment = default_experiment
        self.loopback_only = _is_loopback(address[0])

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        shown = str(host)
        if shown in ("0.0.0.0", "::"):
            shown = "127.0.0.1"
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}/"


def make_server(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 5000,
    default_experiment: str | None = None,
) -> UIServer:
    """A bound (not yet serving) viewer server; port 0 picks a free port."""
    return UIServer((host, port), store, default_experiment)


class _Handler(BaseHTTPRequestHandler):
    server: UIServer
    server_version = "spanlake-ui"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s " + format, self.address_string(), *args)

    # -- dispatch ---------------------------------------------------------------------

    def do_GET(self) -> None:
        try:
            self._check_host()
            parts = urlsplit(self.path)
            path = parts.path
            if path.startswith("/api/"):
                self._send_json(HTTPStatus.OK, self._api(path, parse_qs(parts.query)))
            elif path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            elif path in ("/", "/index.html"):
                self._send_static("index.html")
            elif path.startswith("/static/") and path[len("/static/") :] in _STATIC_TYPES:
                self._send_static(path[len("/static/") :])
            else:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no such page: {path}")
        except ApiError as exc:
            self._send_error(exc.status, str(exc))
        except FilterError as exc:
            self._send_error(HTTPStatus.BAD_REQUEST, str(exc))
        except NotFoundError as exc:
            self._send_error(HTTPStatus.NOT_FOUND, str(exc))
        except SpanlakeError as exc:
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"store error: {exc}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            _log.exception("spanlake ui: request %s failed", self.path)
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see server log)")

    def _not_allowed(self) -> None:
        self._send_error(HTTPStatus.METHOD_NOT_ALLOWED, "the trace viewer is read-only")

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _check_host(self) -> None:
        if not self.server.loopback_only:
            return
        host = _host_name(self.headers.get("Host", ""))
        if host and not _is_loopback(host):
            raise ApiError(HTTPStatus.FORBIDDEN, f"host {host!r} not allowed")

    # -- API --------------------------------------------------------------------------

    def _api(self, path: str, query: dict[str, list[str]]) -> Any:
        store = self.server.store
        if path == "/api/experiments":
            return {
                "experiments": [e.to_dict() for e in store.list_experiments()],
                "default_experiment": self.server.default_experiment,
            }
        if path == "/api/traces":
            return self._search(store, query)
        if path == "/api/stats":
            return self._stats(store, query)
        if path.startswith("/api/traces/"):
            trace_id = unquote(path[len("/api/traces/") :])
            if not trace_id or "/" in trace_id:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no such API route: {path}")
            return store.get_trace(trace_id).to_dict()
        raise ApiError(HTTPStatus.NOT_FOUND, f"no such API route: {path}")

    @staticmethod
    def _search(store: Store, query: dict[str, list[str]]) -> dict[str, Any]:
        experiments = [e for e in query.get("experiment", []) if e] or None
        filter_string = (query.get("filter") or [""])[-1].strip() or None
        order_by = [o for o in query.get("order_by", []) if o.strip()] or None
        page_token = (query.get("page_token") or [""])[-1] or None
        raw_max = (query.get("max_results") or [str(DEFAULT_PAGE)])[-1]
        try:
            max_results = int(raw_max)
        except ValueError:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, f"max_results must be an integer, got {raw_max!r}"
            ) from None
        if not 1 <= max_results <= MAX_PAGE:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"max_results must be between 1 and {MAX_PAGE}")
        try:
            page = store.search_traces(
                experiments, filter_string, order_by, max_results, page_token
            )
        except (FilterError, NotFoundError):
            raise
        except (ValueError, KeyError) as exc:  # e.g. a page token that does not decode
            raise ApiError(HTTPStatus.BAD_REQUEST, f"bad request: {exc}") from exc
        return {
            "traces": [t.to_dict() for t in page.traces],
            "next_page_token": page.next_page_token,
        }

    @staticmethod
    def _stats(store: Store, query: dict[str, list[str]]) -> dict[str, Any]:
        def last(name: str) -> str | None:
            value = (query.get(name) or [""])[-1].strip()
            return value or None

        since, start = last("since"), last("start")
        if since and start:
            raise ApiError(HTTPStatus.BAD_REQUEST, "give since or start, not both")
        metrics_query = build_query(
            [e for e in query.get("experiment", []) if e] or None,
            last("filter"),
            [g for g in query.get("group_by", []) if g.strip()],
            last("interval") or "1h",
            since or start,
            last("end"),
        )
        return store.trace_metrics(metrics_query).to_dict()

    # -- responses --------------------------------------------------------------------

    def _send_static(self, name: str) -> None:
        self._send(HTTPStatus.OK, _load_static(name), _STATIC_TYPES[name])

    def _send_json(self, status: HTTPStatus, value: Any) -> None:
        self._send(status, _json_bytes(value), "application/json")

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        self._send_json(status, {"error": {"status": int(status), "message": message}})

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in _SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
