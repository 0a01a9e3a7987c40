#!/usr/bin/env python3
"""A hostile control plane and TUF host for tranche-agent (agent_hostile_server_test).

Standard library only. Plays both halves of what an agent talks to:

  POST /d/DEVICE/v1/enroll     201 {"device_token": "token-DEVICE"}
  POST /d/DEVICE/v1/checkin    200 {"channels": {"content": OFFER}, "ask_again_s": 1}
  POST /d/DEVICE/v1/events     200; every event goes to LOG_DIR/events.jsonl
  GET  /d/DEVICE/tuf/metadata/NAME, /d/DEVICE/tuf/targets/PATH
                               files of --repo (the repository the test signed with
                               the real `tranche` CLI); `Range: bytes=N-` answered 206

The /d/DEVICE prefix (the agent's server_url) names the device, so each agent of
a test has its own mode. The test switches it at run time:

  POST /_mode {"device": D, "mode": M, "offer": {action, desired, targets, reason} | null,
              "ask_again_s": TEXT, "retry_after": TEXT}

TEXT is put into the answer as it is: JSON numbers no Python value prints
(2^64, 1e400, -0.0), or a Retry-After header that is not a number.

Modes (all but the check-in ones leave the control plane honest):

  honest                   serve the repository as it is
  bad_signature            timestamp.json with one hex digit of its signature changed
                           (the timestamp is the one file fetched at every refresh whose
                           bytes no other signed file pins: an altered snapshot or
                           targets would fail its hash before its signature)
  wrong_hash               target files of the right length, one byte changed
  truncated                targets: the full Content-Length announced, half of it sent,
                           connection closed (a range request: half of the rest)
  endless                  targets: 200 without a length, a body that does not end (for
                           the agent's cap; given up after 1 GiB or 60 s)
  expired                  metadata from --expired-repo (same keys, timestamp re-published
                           with a lifetime that has run out: signed, but expired)
  http_500_tuf             every /tuf/ request: 500
  timeout                  every /tuf/ request: accepted, never answered (until the mode
                           changes, at most 60 s)
  malformed_json_metadata  timestamp.json: 200 with a body that is not JSON
  http_500_checkin         check-in: 500
  malformed_json_checkin   check-in: 200 with a body that is not JSON
  wrong_shape_checkin      check-in: 200 with JSON of the wrong shape
  ask_again                check-in: honest, but ask_again_s is the mode's TEXT
  retry_after_checkin      check-in: 503 with the header Retry-After: TEXT
  replayed_events          events: 409 "replayed: last accepted seq is 0" (the agent's
                           queue starts after 0: nothing of it is acknowledged)

Every request is logged to LOG_DIR/requests.jsonl (device, method, path, mode,
status, range). Prints "port N" on stdout once it listens on 127.0.0.1.
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = {
    "honest", "bad_signature", "wrong_hash", "truncated", "endless", "expired",
    "http_500_tuf", "timeout", "malformed_json_metadata", "http_500_checkin",
    "malformed_json_checkin", "wrong_shape_checkin", "ask_again", "retry_after_checkin",
    "replayed_events", "duplicate_key_checkin",
}


class State:
    def __init__(self, repo, expired_repo, log_dir):
        self.repo = repo
        self.expired_repo = expired_repo
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.devices = {}  # device -> {"mode", "offer", "generation"}
        self.events_file = open(os.path.join(log_dir, "events.jsonl"), "a", encoding="utf-8")
        self.requests_file = open(os.path.join(log_dir, "requests.jsonl"), "a", encoding="utf-8")

    def device(self, name):
        with self.lock:
            d = self.devices.setdefault(name, {"mode": "honest", "offer": None, "generation": 0})
            return dict(d)

    def set_mode(self, name, mode, offer, ask_again_s=None, retry_after=None):
        with self.lock:
            d = self.devices.setdefault(name, {"mode": "honest", "offer": None, "generation": 0})
            d["mode"] = mode
            d["offer"] = offer
            d["ask_again_s"] = ask_again_s
            d["retry_after"] = retry_after
            d["generation"] += 1
            self.changed.notify_all()

    # Blocks until the device's mode changes or `limit` seconds pass.
    def wait_for_change(self, name, generation, limit):
        deadline = time.monotonic() + limit
        with self.lock:
            while self.devices.get(name, {}).get("generation") == generation:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.changed.wait(left)

    def log(self, f, record):
        line = json.dumps(record, sort_keys=True)
        with self.lock:
            f.write(line + "\n")
            f.flush()


STATE = None


def altered_signature(data):
    """timestamp.json with the first signature's first hex digit changed."""
    doc = json.loads(data)
    sig = doc["signatures"][0]["sig"]
    flipped = ("1" if sig[0] != "1" else "2") + sig[1:]
    text = data.decode("utf-8")
    assert text.count(sig) == 1
    return text.replace(sig, flipped).encode("utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: every close is ours
    server_version = "hostile/1"

    def log_message(self, fmt, *args):  # the request log is requests.jsonl
        pass

    # ---- plumbing --------------------------------------------------------------

    def split(self):
        path = urllib.parse.urlsplit(self.path).path
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] == "d" and parts[2]:
            return parts[2], "/" + "/".join(parts[3:])
        return "", path

    def record(self, device, mode, status, **extra):
        rec = {"t": time.time(), "device": device, "method": self.command, "path": self.rest,
               "mode": mode, "status": status}
        rng = self.headers.get("Range")
        if rng:
            rec["range"] = rng
        rec.update(extra)
        STATE.log(STATE.requests_file, rec)

    def send(self, status, body, content_type="application/json", headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status, obj):
        self.send(status, json.dumps(obj))

    def body_json(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n > 0 else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    # ---- control plane -----------------------------------------------------------

    def do_POST(self):
        device, self.rest = self.split()
        if self.rest == "/_mode" and not device:
            body = self.body_json() or {}
            mode = body.get("mode")
            if mode not in MODES or not body.get("device"):
                self.send_json(400, {"error": "unknown mode or no device: %r" % (body,)})
                return
            STATE.set_mode(body["device"], mode, body.get("offer"), body.get("ask_again_s"),
                           body.get("retry_after"))
            self.record(body["device"], mode, 200)
            self.send_json(200, {"ok": True})
            return
        if not device:
            self.send_json(404, {"error": "no /d/DEVICE prefix"})
            return
        st = STATE.device(device)
        mode = st["mode"]
        body = self.body_json()
        if self.rest == "/v1/enroll":
            self.record(device, mode, 201)
            self.send_json(201, {"device_token": "token-" + device})
        elif self.rest == "/v1/checkin":
            if mode == "http_500_checkin":
                self.record(device, mode, 500)
                self.send(500, "internal server error (hostile)", "text/plain")
            elif mode == "malformed_json_checkin":
                self.record(device, mode, 200)
                self.send(200, "<html><body>this is not JSON</body></html>", "text/html")
            elif mode == "retry_after_checkin":
                self.record(device, mode, 503)
                self.send(503, json.dumps({"error": "unavailable", "message": "hostile"}),
                          headers={"Retry-After": st.get("retry_after") or "0"})
            elif mode == "duplicate_key_checkin":
                # The offer under the first "channels", nothing under the second:
                # a reader that keeps either one is fooled; the agent refuses both.
                self.record(device, mode, 200)
                offer = json.dumps({"content": st["offer"]} if st["offer"] else {})
                self.send(200, '{"channels": ' + offer + ', "channels": {}, "ask_again_s": 1}')
            elif mode == "wrong_shape_checkin":
                self.record(device, mode, 200)
                self.send_json(200, {"channels": {"content": {"action": 7, "desired": ["2.0.0"],
                                                              "targets": "all of them"}},
                                     "ask_again_s": 1})
            else:
                channels = {"content": st["offer"]} if st["offer"] else {}
                versions = body.get("versions") if isinstance(body, dict) else None
                self.record(device, mode, 200, versions=versions)
                if mode == "ask_again":
                    # The TEXT spliced in as it is, in place of a placeholder string.
                    text = json.dumps({"channels": channels, "ask_again_s": "@ASK@"})
                    self.send(200, text.replace('"@ASK@"', st.get("ask_again_s") or "null"))
                else:
                    self.send_json(200, {"channels": channels, "ask_again_s": 1})
        elif self.rest == "/v1/events" and mode == "replayed_events":
            self.record(device, mode, 409)
            self.send_json(409, {"error": "conflict",
                                 "message": "replayed: last accepted seq is 0"})
        elif self.rest == "/v1/events":
            events = body.get("events", []) if isinstance(body, dict) else []
            for e in events:
                STATE.log(STATE.events_file, dict(e, device=device))
            self.record(device, mode, 200, events=len(events))
            self.send_json(200, {"accepted": len(events)})
        else:
            self.record(device, mode, 404)
            self.send_json(404, {"error": "not found"})

    # ---- TUF host ----------------------------------------------------------------

    def do_GET(self):
        device, self.rest = self.split()
        st = STATE.device(device)
        mode = st["mode"]
        rel = urllib.parse.unquote(self.rest)
        if not device or not rel.startswith("/tuf/"):
            self.record(device, mode, 404)
            self.send_json(404, {"error": "not found"})
            return
        if mode == "http_500_tuf":
            self.record(device, mode, 500)
            self.send(500, "internal server error (hostile)", "text/plain")
            return
        if mode == "timeout":
            self.record(device, mode, 0)
            STATE.wait_for_change(device, st["generation"], 60)
            self.close_connection = True
            return
        parts = rel.split("/")[2:]  # metadata|targets, then the file
        if len(parts) < 2 or parts[0] not in ("metadata", "targets") or any(
                p in ("", ".", "..") for p in parts[1:]):
            self.record(device, mode, 404)
            self.send_json(404, {"error": "not found"})
            return
        base = STATE.expired_repo if mode == "expired" and parts[0] == "metadata" else STATE.repo
        path = os.path.join(base, *parts)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            self.record(device, mode, 404)
            self.send_json(404, {"error": "not found"})
            return
        name = parts[-1]
        if parts[0] == "metadata":
            if name == "timestamp.json" and mode == "bad_signature":
                data = altered_signature(data)
            if name == "timestamp.json" and mode == "malformed_json_metadata":
                self.record(device, mode, 200)
                self.send(200, "<html><body>this is not JSON {{{</body></html>", "text/html")
                return
            self.record(device, mode, 200)
            self.send(200, data)
            return
        self.serve_target(device, mode, data)

    def serve_target(self, device, mode, data):
        if mode == "wrong_hash":
            data = bytes([data[0] ^ 0x01]) + data[1:]  # same length, not the signed bytes
        if mode == "endless":
            self.record(device, mode, 200)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()  # no Content-Length: the body ends when the connection does
            chunk = b"A" * 16384
            deadline = time.monotonic() + 60
            sent = 0
            try:
                # Bounded only so that a client without a cap cannot keep this up forever.
                while time.monotonic() < deadline and sent < (1 << 30):
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                pass
            self.close_connection = True
            return
        start = 0
        status = 200
        headers = {}
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            try:
                start = int(rng[len("bytes="):-1])
            except ValueError:
                start = -1
            if start < 0 or start >= len(data):
                self.record(device, mode, 416)
                self.send(416, "", "text/plain", {"Content-Range": "bytes */%d" % len(data)})
                return
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        if mode == "truncated":
            self.record(device, mode, status, sent=len(body) // 2)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.record(device, mode, status)
        self.send(status, body, "application/octet-stream", headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global STATE
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", required=True, help="TUF repository directory (metadata/, targets/)")
    p.add_argument("--expired-repo", help="the same repository with an expired timestamp")
    p.add_argument("--log-dir", required=True, help="where events.jsonl and requests.jsonl go")
    a = p.parse_args()
    STATE = State(a.repo, a.expired_repo or a.repo, a.log_dir)
    httpd = Server(("127.0.0.1", 0), Handler)
    print("port %d" % httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
