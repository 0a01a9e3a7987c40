#!/usr/bin/env python3
"""Sets up a running tranche-server for bench/checkin.sh and bench/propagation.sh.

  provision.py PORT ADMIN_TOKEN DEVICES TOKENS_OUT [--baseline] [--rollout PLAN_FILE] [--sample OUT]

Creates tenant 'bench', provisions DEVICES devices with POST /v1/devices/bulk
(10,000 per request, the server's limit), writes their tokens one per line to
TOKENS_OUT, registers releases content 1.0 and 1.1, with --baseline makes 1.0
the channel's baseline (what a rollback returns to), and with --rollout starts a
rollout of 1.1 from PLAN_FILE. With --sample, writes the median-sized check-in
answer of 21 devices reporting content 1.0 (the body nginx serves in checkin.sh).
Standard library only.
"""
import argparse
import http.client
import json
import sys
import time

BULK = 10_000


class Api:
    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.token = token

    def try_call(self, method, path, body=None, token=None):
        headers = {"Authorization": "Bearer " + (token or self.token), "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def call(self, method, path, body=None, token=None, expect=(200, 201)):
        status, raw = self.try_call(method, path, body, token)
        if status not in expect:
            sys.exit(f"provision: {method} {path}: {status} {raw[:400]!r}")
        return raw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("admin_token")
    ap.add_argument("devices", type=int)
    ap.add_argument("tokens_out")
    ap.add_argument("--baseline", action="store_true",
                    help="make 1.0 the baseline: a one-stage rollout of it, promoted to completed")
    ap.add_argument("--rollout", help="plan YAML file: start a rollout of content 1.1")
    ap.add_argument("--sample", help="write a typical check-in answer here")
    args = ap.parse_args()
    api = Api(args.port, args.admin_token)

    api.call("POST", "/v1/tenants", {"id": "bench", "enrollment_key": "bench-enrollment-key-0001"})
    start = time.monotonic()
    with open(args.tokens_out, "w") as out:
        for first in range(0, args.devices, BULK):
            n = min(BULK, args.devices - first)
            body = {"tenant": "bench", "devices": [{"device_id": f"b-{i:07d}"} for i in range(first, first + n)]}
            answer = json.loads(api.call("POST", "/v1/devices/bulk", body))
            out.write("".join(d["device_token"] + "\n" for d in answer["devices"]))
    took = time.monotonic() - start
    print(f"provisioned {args.devices} devices in {took:.1f} s "
          f"({took / max(1, (args.devices + BULK - 1) // BULK):.2f} s per request of {BULK})", flush=True)

    for version, fill in (("1.0", "a"), ("1.1", "b")):
        api.call("POST", "/v1/releases", {"channel": "content", "version": version,
                                          "targets": [{"path": f"content/{fill}.bin", "length": 1024,
                                                       "sha256": fill * 64}]})
    if args.baseline:
        plan = "name: baseline\nstages:\n  - {name: all, percent: 100%, bake: 0s}\n"
        api.call("POST", "/v1/rollouts", {"channel": "content", "version": "1.0", "id": "r-base",
                                          "plan_yaml": plan})
        # Completion needs devices running 1.0 past their trial (core::covers): the
        # first few check in with it, then the promote is retried until the
        # engine's next tick has counted them.
        with open(args.tokens_out) as f:
            first = [next(f).strip() for _ in range(min(5, args.devices))]
        for t in first:
            api.call("POST", "/v1/checkin", {"versions": {"content": "1.0"}}, token=t)
        deadline = time.monotonic() + 30
        while True:
            status, raw = api.try_call("POST", "/v1/rollouts/r-base/promote", {"reason": "bench baseline"})
            if status == 200:
                break
            if status != 409 or time.monotonic() > deadline:
                sys.exit(f"provision: POST /v1/rollouts/r-base/promote: {status} {raw[:400]!r}")
            time.sleep(0.2)
        print("baseline: content 1.0 (rollout r-base completed)", flush=True)
    if args.rollout:
        with open(args.rollout) as f:
            plan = f.read()
        api.call("POST", "/v1/rollouts", {"channel": "content", "version": "1.1", "id": "r-bench",
                                          "plan_yaml": plan})
        print("rollout r-bench of content 1.1 started", flush=True)

    if args.sample:
        with open(args.tokens_out) as f:
            tokens = [next(f).strip() for _ in range(min(21, args.devices))]
        answers = sorted((api.call("POST", "/v1/checkin", {"versions": {"content": "1.0"}}, token=t)
                          for t in tokens), key=len)
        with open(args.sample, "wb") as f:
            f.write(answers[len(answers) // 2])


if __name__ == "__main__":
    main()
