"""``card server``: show the cards of running and finished tasks, refreshing live.

A small HTTP server over the datastore (any backend: it reads through the storage
layer). The index lists the tasks of a run that have cards; a card page is the stored
card with a few lines of script added that ask the server for the card's fingerprint
every ``refresh_interval`` seconds and reload the page when the task stored a new
version (``current.card.refresh()``). Binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from .store import CardRef, card_file_name, live_cards, read_card

_CARD_PATH = re.compile(r"/(card|stamp)/([^/]+)/([^/]+)/([^/]+)/([^/]+)/([A-Za-z0-9_.-]+\.html)\Z")
_INTERVAL = re.compile(r'<meta name="mfl-refresh-interval" content="([0-9.]+)">')

POLLER = """<script>
(function () {
  var stamp = %(stamp)s, every = %(every)d;
  function poll() {
    fetch(%(url)s, {cache: 'no-store'}).then(function (r) { return r.json(); })
      .then(function (d) { if (d.stamp !== stamp) { location.reload(); } })
      .catch(function () {}).finally(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
</script>"""


def fingerprint(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class CardServer:
    """Answers for one flow of one datastore; ``run_id`` None means the newest run."""

    def __init__(self, fds: Any, flow_name: str, run_id: str | None = None) -> None:
        self.fds, self.flow_name, self.run_id = fds, flow_name, run_id

    def _run(self) -> str | None:
        if self.run_id:
            return self.run_id
        runs = self.fds.list_runs(self.flow_name)
        return max(runs, key=lambda r: (len(r), r)) if runs else None

    def index(self) -> str:
        from .page import page

        run_id = self._run()
        rows = []
        if run_id:
            for step in self.fds.list_steps(self.flow_name, run_id):
                for task_id in sorted(self.fds.list_tasks(self.flow_name, run_id, step)):
                    pathspec = f"{self.flow_name}/{run_id}/{step}/{task_id}"
                    for ref in live_cards(self.fds, pathspec):
                        url = f"/card/{pathspec}/{ref.file_name}"
                        rows.append(
                            f'<tr><td><a href="{html.escape(url)}">{html.escape(pathspec)}</a></td>'
                            f"<td>{html.escape(ref.type)}</td><td>{html.escape(ref.id or '')}</td>"
                            f"<td>{ref.attempt}</td></tr>"
                        )
        table = (
            '<table class="mfl-table"><thead><tr><th>Task</th><th>Type</th><th>Id</th>'
            f"<th>Attempt</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            if rows
            else '<p class="mfl-note">No cards yet.</p>'
        )
        title = f"Cards of {self.flow_name}/{run_id}" if run_id else f"No runs of {self.flow_name}"
        body = f"<header><h1>{html.escape(title)}</h1></header><section>{table}</section>"
        return page(title, body, extra_head='<meta http-equiv="refresh" content="3">')

    def card(self, pathspec: str, file_name: str) -> str | None:
        """The newest stored version of the card, or None."""
        for ref in live_cards(self.fds, pathspec):
            if ref.file_name == file_name:
                return read_card(self.fds, ref)
        return None

    def live_page(self, pathspec: str, file_name: str) -> str | None:
        text = self.card(pathspec, file_name)
        if text is None:
            return None
        m = _INTERVAL.search(text)
        every = max(250, int(float(m.group(1)) * 1000)) if m else 2000
        poller = POLLER % {
            "stamp": json.dumps(fingerprint(text)),
            "every": every,
            "url": json.dumps(f"/stamp/{pathspec}/{file_name}"),
        }
        cut = text.rfind("</body>")
        return text[:cut] + poller + text[cut:] if cut >= 0 else text + poller


def make_handler(server: CardServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
            path = unquote(self.path.split("?", 1)[0])
            if path in ("/", "/index.html"):
                return self._send(200, server.index())
            m = _CARD_PATH.match(path)
            if m:
                kind, pathspec, name = m.group(1), "/".join(m.group(2, 3, 4, 5)), m.group(6)
                if kind == "card":
                    text = server.live_page(pathspec, name)
                    if text is not None:
                        return self._send(200, text)
                else:
                    text = server.card(pathspec, name)
                    if text is not None:
                        body = json.dumps({"stamp": fingerprint(text)})
                        return self._send(200, body, "application/json")
            self._send(404, "<!DOCTYPE html><title>Not found</title><p>No such card.</p>")

        def _send(self, code: int, body: str, ctype: str = "text/html; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the terminal belongs to the user

    return Handler


def serve(fds: Any, flow_name: str, host: str, port: int, run_id: str | None = None) -> None:
    httpd = ThreadingHTTPServer((host, port), make_handler(CardServer(fds, flow_name, run_id)))
    httpd.daemon_threads = True
    host_shown, port_shown = str(httpd.server_address[0]), httpd.server_address[1]
    print(
        f"Serving the cards of {flow_name} at http://{host_shown}:{port_shown}/ (Ctrl-C stops)",
        flush=True,
    )
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


__all__ = ["CardServer", "serve", "fingerprint", "card_file_name", "CardRef"]
