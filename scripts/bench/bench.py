"""`make bench`: coze-chat, coze-workflow and coze-file against curl (the floor) and
cozepy (the peer), in one run.

    bench.py --bin DIR --python VENV_PYTHON [--reps N] [--long-reps N] [--upload-mb N]
             [--cases LIST] [--out FILE]

Starts DIR/coze-fake on loopback (stdin held by a pipe; closing it stops the fake),
then measures each case several times, every tool in the same run, interleaved so that
noise from other work on the machine falls on all of them alike. Each process is
measured with os.wait4: wall time (spawn to reaped), user+sys CPU and peak RSS
(ru_maxrss) of that process alone. The server's own CPU is read from
/proc/<pid>/stat (utime+stime) before and after every run, so a case where the server,
not the client, sets the pace is visible (its CPU close to the wall time).

The long streams (the 200,000-delta answer, the 100,000-Message workflow run) are
recorded from the fake once and replayed from memory by replay.py, whose cost per
request is one sendall: those cases measure the client, and their targets are ratios
of CPU time to curl's in the same run.

Prints a Markdown report (and writes it to --out). No target is asserted: the report
states each ratio and whether it meets the target in the issue.
"""
import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "pat_bench"
BOT = "bench-bot"
TICK = os.sysconf("SC_CLK_TCK")
DEVNULL = subprocess.DEVNULL
# The report's cases, in order (--cases picks some, by name or number).
CASES = ("startup", "long", "ttfb", "batch", "memory", "binaries", "scaling", "upload", "workflow",
         "tools")


class Server:
    """A server process that prints {"base_url": …} once it listens and stops when its
    stdin is closed (the fake, the replayer)."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=DEVNULL)
        self.base = json.loads(self.proc.stdout.readline())["base_url"]

    def cpu(self):
        """utime+stime of the server so far, in seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Fake(Server):
    def __init__(self, path):
        super().__init__([path, "--pat", TOKEN])

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(req) as r:
            return json.load(r)

    def bot(self, settings):
        self.admin("POST", "/_fake/bot", settings)

    def connections(self):
        return self.admin("GET", "/_fake/stats")["connections"]


class Replay(Server):
    """replay.py serving recorded streams: `routes` maps "METHOD:/path" to a file."""

    def __init__(self, routes, chunk):
        super().__init__([sys.executable, os.path.join(HERE, "replay.py"), f"--chunk={chunk}"]
                         + [f"{route}={path}" for route, path in routes.items()])


# Replayed streams go out in HTTP chunks of this size by default (--replay-chunk): a
# server or proxy that buffers its writes. It is curl's best case (one write per chunk
# with -N); one chunk per event (--replay-chunk 0, as the Coze API flushes them) costs
# curl a write per event and flatters every ratio to curl.
REPLAY_CHUNK = 16384


def record(fake, path, body, out):
    """POSTs `body` to the fake and writes the response body (an event stream) to `out`;
    returns its size."""
    req = urllib.request.Request(fake.base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {TOKEN}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r, open(out, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)
    return os.path.getsize(out)


class Run:
    """One measured process."""

    def __init__(self, wall, cpu, rss_kb, fake_cpu, ttfb=None):
        self.wall, self.cpu, self.rss_kb, self.fake_cpu, self.ttfb = wall, cpu, rss_kb, fake_cpu, ttfb


def measure(server, argv, env, stdin=None, first_byte=False, stdout=None):
    """Spawn argv, wait for it with wait4; optionally time its first stdout byte, or
    send its stdout to the file `stdout` (for the caller to check).

    Its ru_maxrss is not the tool's: Linux carries the high-water mark across execve,
    so a child of this Python process starts at Python's size. Peak RSS comes from
    `peak_rss` instead.
    """
    null = os.open(os.devnull, os.O_RDWR)
    fin = os.open(stdin, os.O_RDONLY) if stdin else null
    fout = os.open(stdout, os.O_WRONLY | os.O_TRUNC) if stdout else null
    rfd = wfd = None
    if first_byte:
        rfd, wfd = os.pipe()
    actions = [(os.POSIX_SPAWN_DUP2, fin, 0), (os.POSIX_SPAWN_DUP2, wfd if first_byte else fout, 1),
               (os.POSIX_SPAWN_DUP2, null, 2)]
    path = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=env["PATH"])
    f0 = server.cpu()
    t0 = time.perf_counter()
    pid = os.posix_spawn(path, argv, env, file_actions=actions)
    ttfb = None
    if first_byte:
        os.close(wfd)
        if os.read(rfd, 1):
            ttfb = time.perf_counter() - t0
        while os.read(rfd, 1 << 16):
            pass
        os.close(rfd)
    _, status, ru = os.wait4(pid, 0)
    t1 = time.perf_counter()
    for fd in {null, fin, fout}:
        os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"bench: {shlex.join(argv)} exited {code}")
    return Run(t1 - t0, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, server.cpu() - f0, ttfb)


def peak_rss(argv, env, stdin=None):
    """Peak RSS in KiB of argv, run under /usr/bin/time (whose own few hundred KiB are
    the floor), or None when /usr/bin/time is missing."""
    if not os.path.exists("/usr/bin/time"):
        return None
    with tempfile.NamedTemporaryFile("r") as f:
        fin = open(stdin, "rb") if stdin else DEVNULL
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + argv, env=env, stdin=fin,
                       stdout=DEVNULL, stderr=DEVNULL, check=True)
        if stdin:
            fin.close()
        return int(f.read().strip().splitlines()[-1])


def make_file(path, mib):
    """Write `mib` MiB of fresh random bytes to `path` (nothing compresses, nothing is
    sparse, no two MiB alike); returns (size, sha256 hex)."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mib):
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            f.write(chunk)
    return mib << 20, h.hexdigest()


def upload_case(a, fake, env, p, table, rss, ratio, rows, mib):
    """Case 8: one file of `mib` MiB uploaded by coze-file, curl -F and cozepy, every
    run checked to have delivered the whole file (the fake's record: bytes, sha256)."""
    p(f"### 8. Upload: one {mib} MiB file, streamed from disk")
    p()
    tmp = tempfile.mkdtemp(prefix="coze-bench-upload-")
    try:
        path = os.path.join(tmp, "upload.bin")
        size, sha = make_file(path, mib)
        tools = {
            "coze-file upload": [os.path.join(a.bin, "coze-file"), "upload", path],
            "curl -F": ["curl", "-sS", "-F", f"file=@{path}", "-H", f"Authorization: Bearer {TOKEN}",
                        fake.base + "/v1/files/upload"],
            "cozepy files.upload": [a.python, os.path.join(HERE, "cozepy_upload.py"), path],
        }

        def checked(name, run):
            """Runs `run()`, then checks the fake got exactly one more file: this one, whole."""
            before = len(fake.admin("GET", "/_fake/files")["files"])
            result = run()
            files = fake.admin("GET", "/_fake/files")["files"]
            if len(files) != before + 1:
                raise SystemExit(f"bench: {name}: the fake recorded {len(files) - before} uploads, not 1")
            got = files[-1]
            if got["bytes"] != size or got["sha256"] != sha:
                raise SystemExit(f"bench: {name}: the fake got {got['bytes']} bytes, sha256 "
                                 f"{got['sha256']}; sent {size} bytes, sha256 {sha}")
            return result

        for n, argv in tools.items():  # warm-up: page cache, the interpreter's imports
            checked(n, lambda: measure(fake, argv, env))
        res = {n: [] for n in tools}
        for _ in range(a.long_reps):
            for n, argv in tools.items():
                res[n].append(checked(n, lambda: measure(fake, argv, env)))
        for n, argv in tools.items():
            rss[n] = checked(n, lambda: peak_rss(argv, env))
    finally:
        shutil.rmtree(tmp)
    table(res)
    p(f"Every run was checked: the fake received all {size:,} bytes, with the file's SHA-256. "
      "Throughput (median wall): "
      + ", ".join(f"{n} {size / med([r.wall for r in runs]) / 2**20:,.0f} MiB/s" for n, runs in res.items())
      + ".")
    fake_share = med([r.fake_cpu / r.wall for r in res["curl -F"]])
    p(f"The fake's CPU during curl's run (reading the form, SHA-256 of the content): "
      f"{fake_share:.0%} of curl's wall time"
      f"{' (the fake sets the pace of this case)' if fake_share > 0.8 else ''}.")
    p()
    ours = med([r.wall for r in res["coze-file upload"]])
    cu = med([r.wall for r in res["curl -F"]])
    ratio(f"Upload of {mib} MiB vs curl -F (wall)", ours, cu, "≤ 1.1× curl", ours / cu <= 1.1)
    kb = rss.get("coze-file upload")
    if kb is not None:
        rows.append((f"Upload of {mib} MiB: coze-file peak RSS", f"{kb / 1024:.1f} MB", None,
                     "< 8 MB", kb / 1024 < 8))


def workflow_case(a, fake, env, p, table, rss, ratio, rows, n):
    """Case 9: one workflow run streaming `n` Message events (and the end node's), read
    by coze-workflow in text, results and events modes, curl and cozepy's
    workflows.runs.stream; each run's output checked to hold the last message."""
    p(f"### 9. A long workflow stream: {n:,} Message events, replayed, to /dev/null")
    p()
    wf = "bench-workflow"
    fake.admin("POST", "/_fake/workflow", {"workflow_id": wf, "messages": n})
    flow = os.path.join(a.bin, "coze-workflow")
    body = json.dumps({"workflow_id": wf, "parameters": {"input": "bench"}})
    tmp = tempfile.mkdtemp(prefix="coze-bench-workflow-")
    size = record(fake, "/v1/workflow/stream_run", json.loads(body), os.path.join(tmp, "run.sse"))
    replay = Replay({"POST:/v1/workflow/stream_run": os.path.join(tmp, "run.sse")}, a.replay_chunk)
    env = dict(env, COZE_API_BASE=replay.base)
    tools = {
        "coze-workflow -o text": [flow, "run", "--workflow", wf, "--param", "input=bench", "-o", "text"],
        "coze-workflow -o results": [flow, "run", "--workflow", wf, "--param", "input=bench", "-o", "results"],
        "coze-workflow -o events": [flow, "run", "--workflow", wf, "--param", "input=bench", "-o", "events"],
        "curl -sN": ["curl", "-sN", "-H", f"Authorization: Bearer {TOKEN}", "-H",
                     "Content-Type: application/json", "--data-binary", body,
                     replay.base + "/v1/workflow/stream_run"],
        "cozepy workflows.runs.stream": [a.python, os.path.join(HERE, "cozepy_workflow.py"), wf],
    }
    last = f"{n - 1}: "
    for name, argv in tools.items():  # warm-up, and a check that each sees the whole run
        got = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=DEVNULL, check=True).stdout
        if name.endswith("results"):
            rec = json.loads(got)
            if rec.get("status") != "success":
                raise SystemExit(f"bench: {name}: the run did not succeed: {got[:300]!r}")
        elif last.encode() not in got:
            raise SystemExit(f"bench: {name}: the output lacks the last message ({last!r})")
    res = {name: [] for name in tools}
    for _ in range(a.long_reps):
        for name, argv in tools.items():
            res[name].append(measure(replay, argv, env))
    for name, argv in tools.items():
        rss[name] = peak_rss(argv, env)
    replay.stop()
    shutil.rmtree(tmp)
    table(res, per_event=n + 2)
    p(f"The stream ({size:,} bytes) was recorded from the fake once and replayed from memory "
      f"in {chunking(a.replay_chunk)}; server CPU is the replayer's.")
    p()
    stream_targets(ratio, "Workflow stream", res, "coze-workflow", "cozepy workflows.runs.stream")
    worst = max((rss.get(f"coze-workflow -o {m}") or 0) for m in ("text", "results", "events"))
    if worst:
        rows.append(("Workflow stream: coze-workflow peak RSS, any mode", f"{worst / 1024:.1f} MB", None,
                     "< 8 MB", worst / 1024 < 8))


def tools_case(a, fake, env, p, rows, m):
    """Case 10: `m` prompts in one coze-chat process, the bot calling one local tool
    (`cat`, which answers with the call's arguments) before each answer, against the
    same prompts answered without a tool: what a tool call adds (the chat stopping at
    requires_action, the child process, submit_tool_outputs and the stream that
    continues the chat)."""
    p(f"### 10. Local tools: {m} prompts, each answered after one tool call")
    p()
    chat = os.path.join(a.bin, "coze-chat")
    prompts = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
    prompts.write("".join(f"weather {i} 天气\n" for i in range(m)))
    prompts.close()
    tools = {
        "coze-chat -o answers, no tool": ({}, [chat, "-o", "answers"]),
        "coze-chat -o answers --tool get_weather=cat": (
            {"tools": {"rounds": [[{"name": "get_weather", "arguments": {"city": "北京"}}]]}},
            [chat, "-o", "answers", "--tool", "get_weather=cat"]),
    }
    res = {name: [] for name in tools}
    for rep in range(a.long_reps + 1):  # the first is a warm-up
        for name, (settings, argv) in tools.items():
            fake.bot(settings)
            out = tempfile.NamedTemporaryFile("r", suffix=".jsonl")
            run = measure(fake, argv, env, stdin=prompts.name, stdout=out.name)
            recs = [json.loads(line) for line in out]
            done = [r for r in recs if r.get("status") == "completed"]
            calls = sum(len(r.get("tool_calls") or []) for r in done)
            if len(done) != m or ("--tool" in argv and calls != m):
                raise SystemExit(f"bench: {name}: {len(done)} of {m} answers completed, {calls} tool calls")
            if rep:
                res[name].append(run)
    fake.bot({})
    os.unlink(prompts.name)
    p("| run | wall | user+sys CPU | per prompt (wall) |")
    p("|---|---|---|---|")
    for name, runs in res.items():
        w = med([r.wall for r in runs])
        p(f"| {name} | {spread([r.wall for r in runs])} | {spread([r.cpu for r in runs])} | "
          f"{fmt_s(w / m)} |")
    p()
    plain = med([r.wall for r in res["coze-chat -o answers, no tool"]])
    tooled = med([r.wall for r in res["coze-chat -o answers --tool get_weather=cat"]])
    p(f"Every run was checked: {m} answers completed, each after one tool call. A tool call "
      f"adds {fmt_s((tooled - plain) / m)} a prompt (wall), its child process included.")
    p()
    rows.append(("Local tool call: added wall time per prompt", fmt_s((tooled - plain) / m), None,
                 "(reported)", True))


def stream_targets(ratio, label, res, tool, peer):
    """The targets of a replayed long stream: `-o text` within 1.5× curl's CPU, `-o
    events` within 2×, and `-o text` at least 20× less CPU than the peer."""
    cu = med([r.cpu for r in res["curl -sN"]])
    for mode, goal, limit in (("text", "≤ 1.5× curl", 1.5), ("events", "≤ 2× curl", 2.0)):
        ours = med([r.cpu for r in res[f"{tool} -o {mode}"]])
        ratio(f"{label} `-o {mode}` vs curl (CPU)", ours, cu, goal, ours / cu <= limit)
    ours = med([r.cpu for r in res[f"{tool} -o text"]])
    py = med([r.cpu for r in res[peer]])
    ratio(f"{label} `-o text` vs {peer.split()[0]} (CPU)", ours, py, "≥ 20× less CPU", py / ours >= 20)


def chunking(size):
    return "one HTTP chunk per event" if size == 0 else f"HTTP chunks of {size:,} bytes"


def med(xs):
    return statistics.median(xs)


def fmt_s(x):
    if x >= 1:
        return f"{x:.2f} s"
    if x >= 0.01:
        return f"{x * 1e3:.0f} ms"
    return f"{x * 1e3:.1f} ms"


def spread(xs, f=fmt_s):
    return f"{f(med(xs))} ({f(min(xs))}–{f(max(xs))})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--long-reps", type=int, default=5)
    ap.add_argument("--deltas", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--scale-prompts", type=int, default=1000,
                    help="prompts of the --jobs scaling case (0 skips it)")
    ap.add_argument("--upload-mb", type=int, default=400,
                    help="MiB of the upload case's file (0 skips it)")
    ap.add_argument("--messages", type=int, default=100_000,
                    help="Message events of the workflow case's run (0 skips it)")
    ap.add_argument("--replay-chunk", type=int, default=REPLAY_CHUNK,
                    help="bytes per HTTP chunk of a replayed stream (0: one chunk per event)")
    ap.add_argument("--tool-prompts", type=int, default=100,
                    help="prompts of the local tools case (0 skips it)")
    ap.add_argument("--cases", default=",".join(CASES),
                    help="the cases to run, by name or number, comma-separated: "
                         + ", ".join(f"{i} {c}" for i, c in enumerate(CASES, 1)))
    ap.add_argument("--out")
    ap.add_argument("--command", default="make bench")
    a = ap.parse_args()
    chosen = set()
    for c in a.cases.split(","):
        c = c.strip()
        if c.isdigit() and 1 <= int(c) <= len(CASES):
            c = CASES[int(c) - 1]
        if c not in CASES:
            ap.error(f"--cases: unknown case {c!r} (one of {', '.join(CASES)}, or 1–{len(CASES)})")
        chosen.add(c)

    def want(case_name):
        return case_name in chosen

    chat = os.path.join(a.bin, "coze-chat")
    fake = Fake(os.path.join(a.bin, "coze-fake"))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.mkdtemp(),
           "COZE_API_BASE": fake.base, "COZE_API_TOKEN": TOKEN, "COZE_BOT_ID": BOT,
           "PYTHONWARNINGS": "ignore", "LC_ALL": "C.UTF-8"}
    cozepy = [a.python, os.path.join(HERE, "cozepy_chat.py")]
    prompt = "你好"
    body = json.dumps({"bot_id": BOT, "user_id": "bench-user", "stream": True,
                       "auto_save_history": True,
                       "additional_messages": [{"role": "user", "content": prompt,
                                                "content_type": "text"}]}, ensure_ascii=False)
    curl = ["curl", "-sN", "-H", f"Authorization: Bearer {TOKEN}",
            "-H", "Content-Type: application/json", "--data-binary", body,
            fake.base + "/v3/chat"]
    ours_text = [chat, "-o", "text", prompt]
    ours_events = [chat, "-o", "events", prompt]
    out = []
    rows = []  # (target, ours, floor/peer, ratio, goal, met)

    def p(line=""):
        print(line, flush=True)
        out.append(line)

    def case(settings, tools, reps, server=None, **kw):
        """Run every tool `reps` times, interleaved; returns {name: [Run]}. The tools
        talk to the fake set to `settings`, or to `server` (a replayer)."""
        e = env
        if server is None:
            server = fake
            fake.bot(settings)
        else:
            e = dict(env, COZE_API_BASE=server.base)
        for argv in tools.values():  # warm-up: page cache, the fake's first conversation
            measure(server, argv, e, **kw)
        res = {n: [] for n in tools}
        for _ in range(reps):
            for n, argv in tools.items():
                res[n].append(measure(server, argv, e, **kw))
        for n, argv in tools.items():
            rss[n] = peak_rss(argv, e)
        return res

    @contextlib.contextmanager
    def long_answer():
        """The long answer (n deltas) recorded from the fake once, then replayed; yields
        the replayer and the recording's size."""
        tmp = tempfile.mkdtemp(prefix="coze-bench-answer-")
        path = os.path.join(tmp, "answer.sse")
        fake.bot({"deltas": n})
        size = record(fake, "/v3/chat", json.loads(body), path)
        fake.bot({})
        replay = Replay({"POST:/v3/chat": path}, a.replay_chunk)
        try:
            yield replay, size
        finally:
            replay.stop()
            shutil.rmtree(tmp)

    rss = {}  # tool -> peak RSS (KiB) of one extra run under /usr/bin/time

    def table(res, per_event=None, ttfb=False, rss_of=rss):
        head = "| tool | wall | user+sys CPU | peak RSS | server CPU |"
        sep = "|---|---|---|---|---|"
        if ttfb:
            head = "| tool | first byte on stdout | wall | user+sys CPU | peak RSS |"
        if per_event:
            head += " CPU per event |"
            sep += "---|"
        p(head)
        p(sep if not ttfb else "|---|---|---|---|---|")
        for n, runs in res.items():
            w = [r.wall for r in runs]
            c = [r.cpu for r in runs]
            fc = [r.fake_cpu for r in runs]
            rss = "n/a" if rss_of.get(n) is None else f"{rss_of[n] / 1024:.1f} MB"
            if ttfb:
                p(f"| {n} | {spread([r.ttfb for r in runs])} | {fmt_s(med(w))} | {fmt_s(med(c))} | {rss} |")
                continue
            line = f"| {n} | {spread(w)} | {spread(c)} | {rss} | {fmt_s(med(fc))} |"
            if per_event:
                line += f" {med(c) / per_event * 1e6:.2f} µs |"
            p(line)
        p()

    def ratio(name, ours, other, goal, met):
        rows.append((name, ours, other, goal, met))

    started = time.time()
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                      if l.startswith("model name")), platform.processor())
    git = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip()
    p(f"Run: `{a.command}` on {when}; commit {git or '?'}")
    p(f"Machine: {os.cpu_count()} CPUs (`nproc` {os.sched_getaffinity(0).__len__()}), "
      f"{cpu_model}, Linux {platform.release()}; load average at start "
      f"{os.getloadavg()[0]:.2f}")
    p(f"Repetitions: {a.reps} per short case, {a.long_reps} per long case, after one "
      f"warm-up each, tools interleaved; medians with (min–max). Wall: spawn to reaped; "
      f"CPU: the process's user+sys (wait4); peak RSS: one more run under /usr/bin/time; "
      f"server CPU: the fake's (or the replayer's) utime+stime over the run (10 ms ticks).")
    p()

    # 1. Start-up to answer.
    if want("startup"):
        p("### 1. Start-up: one short prompt, answered")
        p()
        r1 = case({}, {"coze-chat -o text": ours_text, "cozepy chat.stream": cozepy + ["one", prompt],
                       "curl -sN": curl}, a.reps)
        table(r1)
        ours = med([r.wall for r in r1["coze-chat -o text"]])
        py = med([r.wall for r in r1["cozepy chat.stream"]])
        cu = med([r.wall for r in r1["curl -sN"]])
        ratio("Start-up vs cozepy", ours, py, "≥ 50× faster", py / ours >= 50)
        ratio("Start-up vs curl", ours, cu, "≤ 2× curl", ours / cu <= 2)
        rows.append(("Start-up (wall, one short prompt answered)", fmt_s(ours), None, "< 3 ms",
                     ours < 3e-3))

    # 2. A long answer.
    n = a.deltas  # also the long answer of case 5
    if want("long"):
        p(f"### 2. A long answer: {n:,} deltas of one CJK character, replayed, to /dev/null")
        p()
        with long_answer() as (replay, size):
            tools2 = {"coze-chat -o text": ours_text, "coze-chat -o events": ours_events,
                      "coze-chat -o answers": [chat, "-o", "answers", prompt],
                      "curl -sN": curl[:-1] + [replay.base + "/v3/chat"],
                      "cozepy chat.stream": cozepy + ["one", prompt]}
            r2 = case(None, tools2, a.long_reps, server=replay)
        events = n + 8  # created, in_progress, n deltas, completed x5 (answer, verbose, 3 follow-ups)
        table(r2, per_event=events)
        stream_targets(ratio, "Long answer", r2, "coze-chat", "cozepy chat.stream")
        p(f"The stream ({size:,} bytes) was recorded from the fake once and replayed from "
          f"memory in {chunking(a.replay_chunk)}; server CPU is the replayer's.")
        p()

    # 3. Time to first delta.
    if want("ttfb"):
        p("### 3. Time to first delta (the fake holds the stream 1 s after it)")
        p()
        r3 = case({"first_delta_hold_ms": 1000},
                  {"coze-chat -o text": ours_text, "curl -sN": curl}, max(5, a.reps // 2 + 1),
                  first_byte=True)
        table(r3, ttfb=True)
        ours = med([r.ttfb for r in r3["coze-chat -o text"]])
        cu = med([r.ttfb for r in r3["curl -sN"]])
        ratio("Time to first delta vs curl", ours, cu, "≤ curl + 1 ms", ours - cu <= 1e-3)

    # 4. Batch.
    if want("batch"):
        m = a.batch
        p(f"### 4. Batch: {m} prompts in one process")
        p()
        prompts = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        prompts.write("".join(f"question {i} 问题\n" for i in range(m)))
        prompts.close()
        fake.bot({})
        conns = {}
        res4 = {"coze-chat -o answers": [], "cozepy chat.stream loop": []}
        tools4 = {"coze-chat -o answers": [chat, "-o", "answers"],
                  "cozepy chat.stream loop": cozepy + ["batch"]}
        for i in range(a.long_reps):
            for name, argv in tools4.items():
                c0 = fake.connections()
                res4[name].append(measure(fake, argv, env, stdin=prompts.name))
                conns.setdefault(name, []).append(fake.connections() - c0)
        for name, argv in tools4.items():
            rss[name] = peak_rss(argv, env, stdin=prompts.name)
        os.unlink(prompts.name)
        table(res4)
        for name, cs in conns.items():
            p(f"TCP connections the fake accepted for {name}: {', '.join(map(str, cs))}")
        p()
        ours = med([r.wall for r in res4["coze-chat -o answers"]])
        py = med([r.wall for r in res4["cozepy chat.stream loop"]])
        ratio(f"Batch of {m} vs cozepy", ours, py, "≥ 10× faster", py / ours >= 10)
        c = max(conns["coze-chat -o answers"])
        rows.append((f"Batch of {m}: TCP connections", str(c), None, "1", c == 1))

    # 5. Memory.
    if want("memory"):
        p("### 5. Peak RSS by answer size")
        p()
        p("| answer | -o text | -o events | -o answers |")
        p("|---|---|---|---|")
        worst = 0
        for d in (1, n):
            fake.bot({"deltas": 1})
            cells = []
            with contextlib.ExitStack() as stack:
                e = env
                if d > 1:  # the long answer, replayed
                    replay, _ = stack.enter_context(long_answer())
                    e = dict(env, COZE_API_BASE=replay.base)
                kbs = {mode: [peak_rss([chat, "-o", mode, prompt], e) for _ in range(3)]
                       for mode in ("text", "events", "answers")}
            for mode, kb in kbs.items():
                if None in kb:
                    cells.append("n/a (no /usr/bin/time)")
                    continue
                mb = max(kb) / 1024
                if mode != "answers":
                    worst = max(worst, mb)
                cells.append(f"{mb:.1f} MB")
            p(f"| {d:,} delta{'s' if d > 1 else ''} | " + " | ".join(cells) + " |")
        p()
        p("(max of 3 runs under /usr/bin/time; `answers` keeps the whole answer for its record, so it grows by "
          "the answer's size, 3 bytes per delta here)")
        p()
        rows.append(("Peak RSS, text and events, any answer size", f"{worst:.1f} MB", None,
                     "< 8 MB", worst < 8))

    # 6. Binary sizes.
    if want("binaries"):
        p("### 6. Release binaries")
        p()
        p("| binary | size |")
        p("|---|---|")
        biggest = 0
        for b in ("coze-auth", "coze-token", "coze-conv", "coze-chat", "coze-file", "coze-workflow",
                  "coze-bot", "coze-fake"):
            size = os.path.getsize(os.path.join(a.bin, b))
            biggest = max(biggest, size) if b != "coze-fake" else biggest
            p(f"| {b} | {size / 2**20:.2f} MiB ({size:,} bytes) |")
        p()
        rows.append(("Largest release binary (the tools)", f"{biggest / 2**20:.2f} MiB", None,
                     "< 4 MB", biggest < 4e6))

    # 7. Batch scaling with --jobs.
    k = a.scale_prompts
    if k and want("scaling"):
        p(f"### 7. Batch scaling: {k:,} prompts, the fake answering each in 200 ms")
        p()
        p("| --jobs | wall | prompts/s | speed-up vs --jobs 1 | TCP connections |")
        p("|---|---|---|---|---|")
        fake.bot({"latency_ms": 200})
        qs = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        qs.write("".join(f"scaling question {i}\n" for i in range(k)))
        qs.close()
        base = None
        for jobs in (1, 4, 16):
            c0 = fake.connections()
            r = measure(fake, [chat, "-o", "answers", "--jobs", str(jobs)], env, stdin=qs.name)
            conns7 = fake.connections() - c0
            base = base or r.wall
            p(f"| {jobs} | {fmt_s(r.wall)} | {k / r.wall:.1f} | {base / r.wall:.1f}× | {conns7} |")
        os.unlink(qs.name)
        fake.bot({})
        p()
        p("(one run each: with a 200 ms answer the wall time is the server's latency divided "
          "among the jobs, so repetitions add little but time)")
        p()

    # 8. Upload.
    mib = a.upload_mb
    if mib and want("upload"):
        upload_case(a, fake, env, p, table, rss, ratio, rows, mib)

    # 9. A long workflow stream.
    if a.messages and want("workflow"):
        workflow_case(a, fake, env, p, table, rss, ratio, rows, a.messages)

    # 10. Local tools.
    if a.tool_prompts and want("tools"):
        tools_case(a, fake, env, p, rows, a.tool_prompts)

    # Summary.
    p("### Targets")
    p()
    p("| target | ours | other | ratio | goal | met |")
    p("|---|---|---|---|---|---|")
    for name, ours, other, goal, met in rows:
        if other is None:
            p(f"| {name} | {ours} | | | {goal} | {'—' if goal == '(reported)' else 'yes' if met else '**no**'} |")
            continue
        if "first delta" in name:
            r = f"{(ours - other) * 1e3:+.2f} ms"
        elif "curl" in name:
            r = f"{ours / other:.2f}× curl"
        else:
            r = f"{other / ours:.1f}× {'less CPU' if '(CPU)' in name else 'faster'}"
        p(f"| {name} | {fmt_s(ours)} | {fmt_s(other)} | {r} | {goal} | {'yes' if met else '**no**'} |")
    p()
    p(f"Load average at the end {os.getloadavg()[0]:.2f}; the whole run took "
      f"{time.time() - started:.0f} s.")
    fake.stop()
    if a.out:
        with open(a.out, "w") as f:
            f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
