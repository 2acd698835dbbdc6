"""A local webhook receiver for the demo: prints each batch Tessera delivers and whether
its X-Tessera-Signature matches the destination's secret.

    python -m tessera.demo.webhook [--port 8001] [--secret-file DATA_DIR/demo/webhook-secret]
    tessera destinations enable demo-webhook

How a real receiver checks a delivery: compute HMAC-SHA256 of the raw body with the
secret, compare with the header's hex digest in constant time, and deduplicate on each
message's messageId (delivery is at least once).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from tessera.demo.destinations import SECRET_FILE, WEBHOOK_PORT


def verified(body: bytes, header: str, secret: str) -> bool:
    """Does `header` (sha256=<hex>) sign `body` with `secret`?"""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def serve(port: int, secret: str) -> None:
    seen: set[str] = set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            good = verified(body, self.headers.get("x-tessera-signature", ""), secret)
            batch = orjson.loads(body).get("batch", [])
            fresh = [m for m in batch if m.get("messageId") not in seen]
            seen.update(m.get("messageId") for m in batch)
            names = sorted({str(m.get("event") or m.get("type")) for m in fresh})
            print(f"{len(batch)} messages ({len(fresh)} new: {', '.join(names)}), "
                  f"signature {'ok' if good else 'WRONG'}", flush=True)  # fmt: skip
            self.send_response(200 if good else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    print(f"listening on http://127.0.0.1:{port}/hook", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=WEBHOOK_PORT)
    default = Path("tessera-data") / "demo" / SECRET_FILE
    parser.add_argument("--secret-file", type=Path, default=default)
    args = parser.parse_args()
    serve(args.port, args.secret_file.read_text().strip())


if __name__ == "__main__":
    main()
