"""A real OpenAI-compatible HTTP server on loopback, answering from a script.

Tests point litellm at it exactly as they would at vLLM, llama.cpp or Ollama
(``model="openai/fake-model", api_base=server.url``), so the whole client path runs: request
building, HTTP, status handling, response parsing, usage accounting. Only
``POST /v1/chat/completions`` is served. Each request takes the next scripted :class:`Reply`
(an answer, an HTTP error with its headers, optionally after a delay); every request is kept
in :attr:`FakeOpenAI.requests` with its headers and JSON body so a test can check what the
client really sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted response: an answer (status 200, ``content``) or an error (``status``, ``body``)."""

    status: int = 200
    content: str = ""
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)
    body: dict | None = None  # an error's JSON body; None: an OpenAI-style error object
    delay_s: float = 0.0  # sleep before answering (a slow or hung provider)


def answer(content: str, **kw) -> Reply:
    return Reply(content=content, **kw)


def error(status: int, message: str = "", **kw) -> Reply:
    return Reply(status=status, content=message or f"scripted error {status}", **kw)


@dataclass
class Received:
    """What the client sent."""

    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict
    at: float  # time.monotonic() on arrival

    @property
    def text(self) -> str:
        """Every message's content, joined: what the model would have read."""
        return "\n".join(str(m.get("content", "")) for m in self.body.get("messages", []))


def _tokens(text: str) -> int:
    # a deterministic stand-in for a tokenizer: ~4 characters a token, as for English/code
    return len(text) // 4 + 1


class FakeOpenAI:
    """The server; use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(self, *replies: Reply, model: str = "fake-model", fallback: Reply | None = None):
        self.model = model
        self._script: deque[Reply] = deque(replies)
        # what every request gets once the script has run out (a model that always answers the
        # same); None: such a request is unexpected, answered 400 and listed in ``unexpected``
        self.fallback = fallback
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.unexpected: list[str] = []  # requests that found no scripted reply, or a bad shape
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- script -------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def _next(self, received: Received) -> Reply | None:
        with self._lock:
            self.requests.append(received)
            return self._script.popleft() if self._script else self.fallback

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The ``api_base`` a client uses: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-openai", kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- responses ----------------------------------------------------------------------
    def completion(self, received: Received, reply: Reply) -> dict:
        prompt_tokens = sum(_tokens(str(m.get("content", ""))) for m in received.body.get("messages", []))
        completion_tokens = _tokens(reply.content)
        n = len(self.requests)
        return {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": received.body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _handler_for(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real provider: httpx reuses connections
        # headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every response
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout); nothing to answer

        def do_GET(self) -> None:
            server.unexpected.append(f"GET {self.path}")
            self._send(404, {"error": {"message": f"not served: GET {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"_unparsed": raw.decode(errors="replace")}
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
            if self.path.rstrip("/") != "/v1/chat/completions":
                server.unexpected.append(f"POST {self.path}")
                self._send(404, {"error": {"message": f"not served: POST {self.path}"}})
                return
            if not isinstance(body.get("messages"), list) or "model" not in body:
                server.unexpected.append(f"malformed request: {sorted(body)}")
                self._send(
                    400, {"error": {"message": "model and messages are required", "type": "invalid_request_error"}}
                )
                return
            reply = server._next(received)
            if reply is None:
                server.unexpected.append("request after the script ran out")
                self._send(
                    400, {"error": {"message": "fake server: no scripted reply left", "type": "invalid_request_error"}}
                )
                return
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.status == 200:
                self._send(200, server.completion(received, reply), reply.headers)
            else:
                body = (
                    reply.body
                    if reply.body is not None
                    else {"error": {"message": reply.content, "type": "server_error", "code": reply.status}}
                )
                self._send(reply.status, body, reply.headers)

    return Handler
