#!/usr/bin/env python3
"""Runs docs/tutorial.md as written and checks what it says you will see.

Usage: run_tutorial.py TUTORIAL.md BIN_DIR [--keep] [--block-timeout S] [--needs-port P]

--keep keeps the temporary directory (the tutorial's files, and each block's
script and output under meta/); --needs-port P fails at once, saying so, when
something already listens on 127.0.0.1:P (the tutorial's server would not start).

The rule (also stated in docs/tutorial.md, "How this tutorial is tested"):

- Every ```sh block is run, in order, by one bash (`set -e`), in a fresh empty
  directory, with BIN_DIR first on PATH, HOME in that directory and no
  TRANCHE_* variables: variables, the working directory and background jobs
  carry over from block to block, as in the reader's terminal. A block fails
  if one of its commands fails (a command the tutorial expects to fail is
  written `... || echo "exit status $?"`).
- The first ```text block after an ```sh block (before the next ```sh block) is
  what you will see: each non-empty line of it must match a line of the block's
  output (stdout and stderr), in the same order; output lines in between may be
  left out. `…` in an expected line stands for any text (also none, and the
  spaces next to it); a line that
  is only `…` stands for lines left out. Runs of spaces count as one space, and
  leading and trailing spaces are ignored.
- Other fenced blocks (```yaml, ```console, ...) are not run.
- At the end (pass or fail), every process the tutorial started is stopped: bash
  runs in a session of its own and every process of that session gets SIGTERM,
  then SIGKILL.

Exit 0 when every block ran and matched; 1 otherwise, naming the block, its
commands, its output and the first expected line not found.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ELLIPSIS = "\u2026"


def parse_blocks(text):
    """[(line_no, sh_text, expected_text or None)] in document order."""
    fence = re.compile(r"^```(\S*)\s*$")
    blocks = []  # (kind, line_no, body)
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = fence.match(lines[i])
        if not m:
            i += 1
            continue
        kind, start = m.group(1), i + 1
        body = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        blocks.append((kind, start, "\n".join(body) + "\n"))
        i += 1
    steps = []
    for kind, line_no, body in blocks:
        if kind == "sh":
            steps.append([line_no, body, None])
        elif kind == "text" and steps and steps[-1][2] is None:
            steps[-1][2] = body
    return steps


def norm(s):
    return " ".join(s.split())


def line_pattern(expected):
    # `…` also takes the spaces around it: "content …" matches "content; it is".
    parts = [re.escape(p.strip()) for p in norm(expected).split(ELLIPSIS)]
    return re.compile("^" + ".*".join(parts) + "$")


def check(expected, output):
    """None if `expected` matches `output` by the rule above, else the first missing line."""
    out = [norm(l) for l in output.split("\n")]
    pos = 0
    for want in expected.split("\n"):
        if not want.strip() or want.strip() == ELLIPSIS:
            continue
        pat = line_pattern(want)
        while pos < len(out) and not pat.match(out[pos]):
            pos += 1
        if pos == len(out):
            return want
        pos += 1
    return None


def session_pids(sid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.getsid(int(entry)) == sid:
                pids.append(int(entry))
        except OSError:
            pass
    return pids


def stop_session(sid):
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        pids = session_pids(sid)
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and session_pids(sid):
            time.sleep(0.1)


def tail_logs(work):
    for root, _, files in os.walk(work):
        for f in sorted(files):
            if f.endswith(".log"):
                path = os.path.join(root, f)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    lines = fh.read().split("\n")[-15:]
                print(f"--- last lines of {os.path.relpath(path, work)}")
                print("\n".join(lines))


def port_in_use(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def main():
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    argv = sys.argv[1:]
    keep = "--keep" in argv
    block_timeout, needs_port = 90.0, None
    for flag in ("--block-timeout", "--needs-port"):
        if flag in argv:
            i = argv.index(flag)
            value = argv[i + 1]
            del argv[i:i + 2]
            if flag == "--block-timeout":
                block_timeout = float(value)
            else:
                needs_port = int(value)
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 2:
        print(__doc__)
        return 2
    tutorial, bin_dir = os.path.abspath(args[0]), os.path.abspath(args[1])
    name = os.path.relpath(tutorial)
    if needs_port is not None and port_in_use(needs_port):
        print(f"FAILED: something already listens on 127.0.0.1:{needs_port}, the port the tutorial's server takes")
        return 1
    with open(tutorial, encoding="utf-8") as fh:
        steps = parse_blocks(fh.read())
    if not steps:
        print(f"no ```sh blocks in {tutorial}")
        return 1

    top = tempfile.mkdtemp(prefix="tranche-tutorial-")
    work, meta = os.path.join(top, "work"), os.path.join(top, "meta")
    os.makedirs(work)
    os.makedirs(os.path.join(top, "home"))
    os.makedirs(meta)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRANCHE_") and k != "XDG_CONFIG_HOME"}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["HOME"] = os.path.join(top, "home")
    env["LC_ALL"] = "C.UTF-8"
    bash = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=work, env=env, stdin=subprocess.PIPE,
                            stdout=open(os.path.join(meta, "bash.out"), "w"), stderr=subprocess.STDOUT,
                            start_new_session=True, text=True)
    bash.stdin.write("set -e\n")
    bash.stdin.flush()
    failed = None
    started = time.monotonic()
    try:
        for n, (line_no, sh, expected) in enumerate(steps, 1):
            script = os.path.join(meta, f"{n}.sh")
            out_file, rc_file = os.path.join(meta, f"{n}.out"), os.path.join(meta, f"{n}.rc")
            with open(script, "w", encoding="utf-8") as fh:
                fh.write(sh)
            print(f"=== block {n} ({name} line {line_no})", flush=True)
            print("\n".join("$ " + l for l in sh.rstrip("\n").split("\n")), flush=True)
            t0 = time.monotonic()
            bash.stdin.write(f'. "{script}" > "{out_file}" 2>&1 < /dev/null\necho $? > "{rc_file}"\n')
            bash.stdin.flush()
            while not os.path.exists(rc_file) and bash.poll() is None and time.monotonic() - t0 < block_timeout:
                time.sleep(0.05)
            time.sleep(0.05)
            output = open(out_file, encoding="utf-8", errors="replace").read() if os.path.exists(out_file) else ""
            print(output, end="" if output.endswith("\n") or not output else "\n")
            print(f"--- {time.monotonic() - t0:.1f} s", flush=True)
            if not os.path.exists(rc_file):
                why = (f"bash stopped: a command failed (exit {bash.returncode})" if bash.poll() is not None
                       else f"still running after {block_timeout:.0f} s")
                failed = (n, line_no, why)
                break
            if expected is not None:
                missing = check(expected, output)
                if missing is not None:
                    failed = (n, line_no, "expected line not found in the output (in order):\n  " + missing.strip() +
                              "\nexpected block:\n" + expected)
                    break
    finally:
        stop_session(bash.pid)
        bash.wait()
    total = time.monotonic() - started
    if failed:
        n, line_no, why = failed
        print(f"\nFAILED: block {n} of {len(steps)} ({name} line {line_no}): {why}")
        tail_logs(work)
        print(f"(work directory kept: {work})" if keep else "")
        if not keep:
            shutil.rmtree(top, ignore_errors=True)
        return 1
    print(f"\nOK: {len(steps)} blocks of {name} ran as written and showed what it says, in {total:.1f} s")
    if keep:
        print(f"(work directory kept: {work})")
    else:
        shutil.rmtree(top, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
