"""Local webhook receivers for destination tests and benchmarks: real HTTP servers on
loopback that speak the Segment batch format, healthy or not.

- `healthy`: 200 to every batch;
- `hang`: reads the request and never answers (until the receiver stops);
- `half500`: 500 to every other request;
- `flaky`: 30% of requests fail, in equal parts 500, 429 with `Retry-After: 1`, and a
  hang longer than the client's timeout (seeded, so a run can be repeated);
- `refuse`: 400 to any batch holding a message whose event is "Bad", 200 otherwise.

`received` holds every message of every batch answered 2xx (with duplicates, in order),
`signatures` the X-Tessera-Signature and body of each of those requests.
"""

from __future__ import annotations

import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class Receiver:
    def __init__(self, mode: str = "healthy", *, seed: int = 13, hang_seconds: float = 30) -> None:
        self.mode = mode
        self.received: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.signatures: list[tuple[str, bytes]] = []
        self.requests_seen: list[tuple[str, str]] = []  # (path, Authorization) of each
        #: the bodies of DELETE requests (an erasure forwarded), answered 200
        self.deletions: list[dict[str, Any]] = []
        self.requests = 0
        self.answers: dict[int, int] = {}
        self.hang_seconds = hang_seconds
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests_seen.append((self.path, self.headers.get("authorization", "")))
                status, headers = receiver._answer(body)
                if status is None:
                    receiver._stopped.wait(receiver.hang_seconds)
                    self.close_connection = True
                    return
                if 200 <= status < 300:
                    receiver._keep(body, self.headers.get("x-tessera-signature", ""))
                answer = b'{"success": true}' if status < 300 else b'{"error": "nope"}'
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_DELETE(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.deletions.append(orjson.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, body: bytes) -> tuple[int | None, dict[str, str]]:
        with self._lock:
            self.requests += 1
            n = self.requests
            draw = self._random.random()
        status: int | None = 200
        headers: dict[str, str] = {}
        if self.mode == "hang":
            status = None
        elif self.mode == "half500" and n % 2 == 0:
            status = 500
        elif self.mode == "flaky" and draw < 0.3:
            status, headers = [(500, {}), (429, {"Retry-After": "1"}), (None, {})][int(draw / 0.1)]
        elif self.mode == "refuse" and any(
            m.get("event") == "Bad" for m in orjson.loads(body).get("batch", [])
        ):
            status = 400
        with self._lock:
            key = status if status is not None else 0
            self.answers[key] = self.answers.get(key, 0) + 1
        return status, headers

    def _keep(self, body: bytes, signature: str) -> None:
        batch = orjson.loads(body).get("batch", [])
        now = time.time()
        with self._lock:
            self.received.extend(batch)
            self.arrivals.extend([now] * len(batch))
            self.signatures.append((signature, body))

    def message_ids(self) -> list[str]:
        with self._lock:
            return [str(m.get("messageId")) for m in self.received]

    def wait_for(self, count: int, timeout: float = 60) -> None:
        """Until `count` distinct messageIds arrived (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(set(self.message_ids())) < count:
            assert time.monotonic() < deadline, (
                f"{len(set(self.message_ids()))} of {count} messages arrived; answers "
                f"{self.answers}"
            )
            time.sleep(0.05)


class FakeAdPlatform:
    """Google Ads' Customer Match job API and Meta's custom audience users edge, as far as
    Tessera speaks them, keeping each platform's members (hashed e-mails). A request that
    breaks the platform's format is answered 400, as the platform would."""

    def __init__(self) -> None:
        self.google: set[str] = set()
        self.meta: set[str] = set()
        self.jobs: dict[str, str] = {}
        self.ran: list[str] = []
        self.problems: list[str] = []
        platform = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                return orjson.loads(self.rfile.read(int(self.headers.get("content-length", 0))))

            def do_POST(self) -> None:
                status, body = platform._handle("POST", self.path, self._body())
                self._answer(status, body)

            def do_DELETE(self) -> None:
                status, body = platform._handle("DELETE", self.path, self._body())
                self._answer(status, body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _refuse(self, why: str) -> tuple[int, dict[str, Any]]:
        self.problems.append(why)
        return 400, {"error": {"message": why}}

    def _handle(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        if path.endswith("/offlineUserDataJobs:create"):
            job = body.get("job", {})
            user_list = job.get("customerMatchUserListMetadata", {}).get("userList", "")
            if job.get("type") != "CUSTOMER_MATCH_USER_LIST" or "/userLists/" not in user_list:
                return self._refuse("job.type and customerMatchUserListMetadata.userList needed")
            name = path.split("/v17/", 1)[1].removesuffix(":create") + f"/{len(self.jobs) + 1}"
            self.jobs[name] = user_list
            return 200, {"resourceName": name}
        if path.endswith(":addOperations"):
            job = path.split("/v17/", 1)[1].removesuffix(":addOperations")
            if job not in self.jobs:
                return self._refuse(f"no job {job}")
            for operation in body.get("operations", []):
                ((verb, data),) = operation.items()
                emails = [i["hashedEmail"] for i in data.get("userIdentifiers", [])
                          if "hashedEmail" in i]  # fmt: skip
                if verb not in ("create", "remove") or not data.get("userIdentifiers"):
                    return self._refuse(f"bad operation {operation}")
                (self.google.update if verb == "create" else self.google.difference_update)(emails)
            return 200, {}
        if path.endswith(":run"):
            self.ran.append(path)
            return 200, {"name": "operations/1"}
        if path.startswith("/v19.0/") and path.endswith("/users"):
            payload = body.get("payload", {})
            schema, data = payload.get("schema"), payload.get("data")
            if (
                not isinstance(schema, list)
                or not isinstance(data, list)
                or any(len(row) != len(schema) for row in data)
            ):
                return self._refuse("payload needs schema and rows of the same length")
            column = schema.index("EMAIL_SHA256")
            emails = {row[column] for row in data if row[column]}
            (self.meta.update if method == "POST" else self.meta.difference_update)(emails)
            return 200, {"num_received": len(data), "num_invalid_entries": 0}
        return self._refuse(f"unknown endpoint {method} {path}")
