"""The ``crmbot`` command (DESIGN.md, command line contract)."""
from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from config import ConfigError, Settings, load_settings
from config.logs import setup_logging


def _settings() -> Settings:
    """Settings and the content files, validated before anything starts."""
    from config.content import load_content
    from config.listening import load_listening

    try:
        settings = load_settings()
        load_content()
        load_listening()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    setup_logging(settings.log_level)
    return settings


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """crmbot: a social CRM chatbot service for WeChat, Weibo and Twitter."""
    if ctx.invoked_subcommand in ("serve", "worker"):  # the services whose processes count metrics
        _metrics_files(ctx.invoked_subcommand)


def _metrics_files(service: str) -> None:
    """Count this process's Prometheus metrics in files (prometheus-client's multiprocess mode)
    under ``var/metrics/``: gunicorn's web processes and rq's work horses are forks, and a scrape of
    any web process sums the files of every service there (``workers.metrics``).

    ``serve`` empties ``serve/`` (its last run's counts: a restart is a counter reset). Workers may
    run side by side, so each has ``worker-PID/``, and a starting one removes those of workers that
    are gone. Runs before anything imports prometheus_client (which picks its mode when first
    imported), so here, before the command's options are even parsed."""
    import shutil

    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess folder was set")
    try:
        root = load_settings().var_dir / "metrics"
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    worker = os.getpid()
    folder = root / ("serve" if service == "serve" else f"worker-{worker}")
    stale = [folder] + [path for path in root.glob("worker-*") if not _alive(path.name.removeprefix("worker-"))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    if service == "worker":
        from prometheus_client import values

        # rq forks a work horse per job, and a file per horse's pid would pile up and slow every
        # scrape. A worker runs one horse at a time, so its horses take turns on one file, apart
        # from the worker's own (which counts the failures of jobs it finds abandoned).
        values.ValueClass = values.MultiProcessValue(lambda: worker if os.getpid() == worker else f"{worker}h")


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):  # not a worker's folder, or another user's live process: keep it
        return True
    return True


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations to CRMBOT_DATABASE_URL."""
    from crm_store.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    click.echo("database is up to date")


def _store_uow(settings: Settings):  # type: ignore[no-untyped-def]
    from crm_store.db import make_engine
    from crm_store.uow import UnitOfWork

    return UnitOfWork(make_engine(settings.database_url, settings.database_prepare_threshold))


@main.group()
def user() -> None:
    """Staff accounts."""


@user.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(("agent", "supervisor", "marketer", "admin")))
def user_create(name: str, role: str) -> None:
    """Create a staff user; the password is read from stdin (at least 10 characters)."""
    from crm_store import staff

    settings = _settings()
    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else click.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    with _store_uow(settings) as uow:
        try:
            staff.create_user(name, role, password, uow)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        uow.commit()
    click.echo(f"user {name} created ({role})")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Create an API token for user NAME; printed once, on the last line."""
    from crm_store import staff

    settings = _settings()
    with _store_uow(settings) as uow:
        try:
            secret = staff.create_token(name, uow)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None
        uow.commit()
    click.echo(f"API token for {name} (shown once; send it as 'Authorization: Bearer <token>'):")
    click.echo(secret)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Serve the web app with gunicorn (production style)."""
    from gunicorn.app.base import BaseApplication

    from config.content import load_content
    from nlp import analysis
    from web.app import create_app
    from workers.runtime import with_embedded_redis

    settings, embedded = with_embedded_redis(_settings())
    # Loaded once here: the forked web workers share jieba's dictionary and the models.
    analysis.load(load_content().rules.brand_words)

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in {"bind": f"{host}:{port}", "workers": workers, "timeout": 30,
                               "keepalive": 5, "accesslog": None, "errorlog": "-",
                               "control_socket_disable": True, "child_exit": _web_process_exited}.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Runs in each worker after the fork: every process builds its own connections.
            return create_app(settings)

    try:
        Gunicorn().run()
    finally:
        if embedded:
            embedded.stop()


def _web_process_exited(server: Any, worker: Any) -> None:
    """Gunicorn's ``child_exit`` hook (in the arbiter): prometheus-client's bookkeeping for a web
    process that exited."""
    from workers import metrics

    metrics.mark_process_dead(worker.pid, Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))


def _queue_names(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    """``realtime,analysis`` -> the queues, each known, in the order given (the worker's priority)."""
    from workers.jobs import QUEUES

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUES]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(unknown) or 'none given'}: the queues are {','.join(QUEUES)}")
    return list(dict.fromkeys(names))


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--queues", default="realtime,analysis,polling,reports", show_default=True, callback=_queue_names,
              help="The queues to take jobs from, first ones first (comma-separated): a worker for some of "
                   "them only, to scale them out apart.")
def worker(burst: bool, queues: list[str]) -> None:
    """Run an rq worker for the service's jobs. It outlives a Redis outage: when Redis goes away the
    worker waits for it and starts working again, with no restart of the service."""
    from redis import Redis
    from rq import Worker
    from rq.exceptions import StopRequested

    from workers import jobs
    from workers.runtime import Runtime, wait_for_redis, with_embedded_redis

    class ServiceWorker(Worker):  # type: ignore[misc]
        stopping = False  # a stop was asked for (SIGTERM, SIGINT), as opposed to Redis going away

        def request_stop(self, signum: int, frame: Any) -> None:
            ServiceWorker.stopping = True
            super().request_stop(signum, frame)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            from workers.metrics import count_job_failure

            super().__init__(*args, exception_handlers=[count_job_failure], **kwargs)

    settings, embedded = with_embedded_redis(_settings())
    runtime = Runtime.build(settings)
    runtime.router  # load the bot and the NLP models once in the parent; forked jobs inherit them
    jobs.RUNTIME = runtime
    redis = Redis.from_url(settings.redis_url)
    try:
        while True:
            # rq's scheduler (with_scheduler) queues the sends due later and the retries with a
            # backoff, for the queues this worker takes.
            ServiceWorker(queues, connection=redis).work(burst=burst, with_scheduler=True)
            if burst or ServiceWorker.stopping:
                break
            click.echo("worker: lost Redis, waiting for it to come back", err=True)
            try:
                wait_for_redis(redis, lambda: ServiceWorker.stopping)
            except StopRequested:  # rq's signal handler, still installed, on a stop while waiting
                break
    finally:
        if embedded:
            embedded.stop()


@main.command()
def scheduler() -> None:
    """Run the periodic jobs of ``workers/schedule.py`` (rq cron): outbox drain, Weibo and Twitter
    polls, follower snapshots. Like the worker, it outlives a Redis outage."""
    from redis import Redis
    from redis.exceptions import RedisError
    from rq.cron import CronScheduler
    from rq.exceptions import StopRequested

    from workers.runtime import wait_for_redis, with_embedded_redis
    from workers.schedule import register_all

    settings, embedded = with_embedded_redis(_settings())
    redis = Redis.from_url(settings.redis_url)
    try:
        while True:
            cron = CronScheduler(connection=redis)
            register_all(cron, settings)
            try:
                cron.start()  # returns on SIGTERM or SIGINT
                break
            except RedisError as exc:
                click.echo(f"scheduler: lost Redis ({exc.__class__.__name__}), waiting for it", err=True)
            try:
                wait_for_redis(redis, lambda: False)
            except StopRequested:  # the scheduler's signal handler, on a stop while waiting
                break
    finally:
        if embedded:
            embedded.stop()


@main.command()
@click.argument("channel", type=click.Choice(("weibo", "twitter")))
@click.option("--wait", "max_wait", default=30, show_default=True, type=click.IntRange(0, 3600),
              help="Wait out a rate limit that resets within this many seconds, then read on.")
def poll(channel: str, max_wait: int) -> None:
    """One poll of CHANNEL now, in the foreground: every source of the configured account, then
    the day's follower count; prints what each fetched, stored new, the errors and the cursor.
    Exits 1 when a source could not be read at all (expired token, failure)."""
    from channels.base import AuthExpired
    from config.content import load_content
    from nlp import analysis
    from workers import listening

    settings = _settings()  # the listening rules are checked there too
    try:
        content = load_content()
        store = _store_uow(settings)
        listener = listening.listener_for(channel, settings, lambda: store, content.rules)
    except (AuthExpired, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    analysis.load(content.rules.brand_words)
    runs = listener.poll(force=True, max_wait=max_wait)
    for run in runs:
        click.echo(run.line())
    if any(run.outcome in ("auth_expired", "failed") for run in runs):
        sys.exit(1)


@main.command()
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First brand day (YYYY-MM-DD); default: six days before --to.")
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last brand day; default: today.")
@click.option("--channel", default=None, help="Only this channel (wechat, webchat, weibo, twitter).")
@click.option("--account", default=None, help="Only this account of the channel.")
@click.option("--agent", default=None, help="Only this agent's rows (service KPIs).")
@click.option("--by", type=click.Choice(("period", "day")), default="period", show_default=True,
              help="One row for the whole period, or a row per day as well.")
@click.option("--format", "output", type=click.Choice(("table", "csv", "json")), default="table", show_default=True)
def kpi(start: Any, end: Any, channel: str | None, account: str | None, agent: str | None, by: str,
        output: str) -> None:
    """The service and fan KPIs (DESIGN.md names) per channel and account, and per agent, for the
    brand days --from .. --to (CRMBOT_TIMEZONE). JSON is the API's document, service and fan KPIs
    in one row per channel, account, agent and day."""
    import csv
    import json
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from config.content import load_content
    from crm_store import kpis
    from crm_store.models import utcnow

    settings = _settings()
    last = end.date() if end else utcnow().astimezone(ZoneInfo(settings.timezone)).date()
    first = start.date() if start else last - timedelta(days=6)
    try:
        period = kpis.Period(first, last, settings.timezone)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from/--to") from None
    rules = load_content().rules
    with _store_uow(settings) as uow:
        service = kpis.service_kpis(uow, period, kpis.first_response_minutes(rules), channel=channel,
                                    account=account, agent=agent, by_day=by == "day")
        fans = [] if agent else kpis.fan_kpis(uow, period, channel=channel, account=account, by_day=by == "day")
        uow.commit()  # the day rollups it brought up to date
    rows = kpis.merged(service, fans)
    if output == "json":
        click.echo(json.dumps({"from": first.isoformat(), "to": last.isoformat(), "timezone": settings.timezone,
                               "items": rows}, ensure_ascii=False, indent=2))
        return
    columns = ["channel", "account", "agent", "day"] + [c for c in dict.fromkeys(k for r in rows for k in r)
                                                         if c not in ("channel", "account", "agent", "day")]
    if output == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return
    click.echo(f"KPIs {first} .. {last} ({settings.timezone})")
    for r in rows:
        who = " / ".join(str(r[c]) for c in ("channel", "account", "agent", "day") if r[c] is not None)
        click.echo(f"\n{who}")
        for name in (*kpis.SERVICE, *kpis.FANS):
            if name in r:
                extra = (f"  ({r[name + '_numerator']}/{r[name + '_denominator']})"
                         if name in kpis.RATES else "")
                click.echo(f"  {name:<24} {'-' if r[name] is None else r[name]}{extra}")


def _first_admin(settings: Settings) -> str:
    """On a store with no staff yet, an admin with a generated password; how to sign in."""
    from sqlalchemy import select

    from crm_store import models, staff

    with _store_uow(settings) as uow:
        if uow.session.scalar(select(models.StaffUser.id).limit(1)) is not None:
            return "(sign in with your staff account; add one: crmbot user create NAME --role admin)"
        password = secrets.token_urlsafe(12)
        staff.create_user("admin", models.ADMIN, password, uow)
        uow.commit()
    return f"(first start: user admin, password {password} - sign in, then add your team under Users)"


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Everything in one go on embedded defaults: migrate, web, worker, scheduler."""
    from crm_store.migrate import upgrade
    from workers.runtime import with_embedded_redis

    settings, embedded = with_embedded_redis(_settings())
    upgrade(settings.database_url)
    login = _first_admin(settings)
    env = {**os.environ, "CRMBOT_REDIS_URL": settings.redis_url or ""}
    me = [sys.executable, "-m", "web.cli"]
    children = [
        subprocess.Popen([*me, "serve", "--host", host, "--port", str(port), "--workers", "2"], env=env),
        subprocess.Popen([*me, "worker"], env=env),
        subprocess.Popen([*me, "scheduler"], env=env),
    ]
    click.echo(f"\ncrmbot is running at http://{host}:{port}/\n"
               f"  staff console: http://{host}:{port}/console/login {login}\n"
               f"  WeChat webhook: http://{host}:{port}/webhooks/wechat (token: CRMBOT_WECHAT_TOKEN)\n"
               f"  store: {settings.database_url}\n  redis: {settings.redis_url}\n"
               f"  talk to it as a WeChat user: crmbot chat --url http://{host}:{port}/webhooks/wechat\n"
               f"  stop: Ctrl-C\n")
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            if embedded:
                embedded.keep_alive()  # the processes reconnect by themselves once it is back
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded:
            embedded.stop()
    failed = [child.args[3] for child in children if child.returncode not in (0, -signal.SIGTERM, None)]
    if failed and not stopping:
        raise click.ClickException(f"stopped because a process exited: {', '.join(failed)}")


@main.command()
@click.option("--url", default="http://127.0.0.1:8000/webhooks/wechat", show_default=True)
@click.option("--openid", default=None, help="The WeChat user to be (default: a new one).")
@click.option("--account", default="gh_crmbotdemo", show_default=True, help="The Official Account's original id.")
def chat(url: str, openid: str | None, account: str) -> None:
    """Talk to the running service as a WeChat user, through the real signed webhook.

    Type a message, or /subscribe, /unsubscribe, /click KEY, /quit.
    """
    import requests

    from channels.wechat_push import WeChatServer, event_xml, text_xml

    settings = _settings()
    server = WeChatServer(settings.wechat_token, settings.wechat_app_id, settings.wechat_aes_key)
    openid = openid or "oCHAT" + "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=23))
    click.echo(f"you are WeChat user {openid}; /quit to leave")
    for line in _lines():
        line = line.strip()
        if not line:
            continue
        if line == "/quit":
            break
        if line.startswith("/"):
            command, _, key = line[1:].partition(" ")
            event = {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "click": "CLICK"}.get(command)
            if event is None:
                click.echo("commands: /subscribe /unsubscribe /click KEY /quit")
                continue
            xml = event_xml(account, openid, event, key or None)
        else:
            xml = text_xml(account, openid, line, random.getrandbits(62))
        query, body = server.push(xml, openid=openid)
        try:
            response = requests.post(f"{url}?{query}", data=body, timeout=10,
                                     headers={"Content-Type": "text/xml"})
        except requests.RequestException as exc:
            raise click.ClickException(f"cannot reach {url}: {exc.__class__.__name__}") from None
        if response.status_code != 200:
            click.echo(f"[{response.status_code}] {response.text}")
            continue
        reply = server.read_reply(response.content)
        click.echo(f"品牌: {reply['Content']}" if reply else "(no reply)")


@main.command()
@click.option("--customers", default=3000, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--days", default=28, show_default=True, type=click.IntRange(1, 365))
@click.option("--seed", default=13, show_default=True, type=int, help="The same seed tells the same stories.")
def demo(customers: int, days: int, seed: int) -> None:
    """Fill the store with a demo brand through the real service: customers' WeChat messages
    through the bot, staff working tickets, points, leads, over the last DAYS days. Refuses when
    the store holds demo data already."""
    from crm_store.migrate import upgrade
    from web.demo import DemoExists, fill_demo, format_summary
    from workers.runtime import Runtime, with_embedded_redis

    settings, embedded = with_embedded_redis(_settings())
    try:
        upgrade(settings.database_url)
        runtime = Runtime.build(settings)
        try:
            summary = fill_demo(runtime, customers, days, seed, progress=click.echo)
        except DemoExists as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            runtime.engine.dispose()
    finally:
        if embedded:
            embedded.stop()
    click.echo(format_summary(summary))


@main.group()
def nlp() -> None:
    """Text analysis: evaluate, score and retrain the models."""


def _nlp_rules():  # type: ignore[no-untyped-def]
    from config.content import load_content

    rules = load_content().rules
    return rules.brand_words, rules.intents


@nlp.command("eval")
@click.option("--data", "data", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A labeled JSON-lines file (text, lang, sentiment, intent); default: the shipped test split.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def nlp_eval(data: Path | None, as_json: bool) -> None:
    """Accuracy, macro-F1 and confusion matrices: ours next to snownlp / VADER / keyword rules."""
    import json

    from nlp import analysis
    from nlp.evaluate import DataError, evaluate, format_report, load_labeled

    brand_words, intents = _nlp_rules()
    analysis.load(brand_words)
    try:
        rows = load_labeled(data) if data else load_labeled(split="test")
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    report = evaluate(rows, intents)
    click.echo(json.dumps(report, ensure_ascii=False, indent=1) if as_json else format_report(report))


@nlp.command("predict")
def nlp_predict() -> None:
    """Score texts from stdin (a text per line, or JSON lines with text and lang); JSON lines out."""
    import json

    from nlp import analysis

    brand_words, _ = _nlp_rules()
    analysis.load(brand_words)
    for line in sys.stdin.buffer:
        raw = line.rstrip(b"\r\n")
        text, lang = raw, None
        if raw.lstrip().startswith(b"{"):
            try:
                item = json.loads(raw)
                text, lang = str(item.get("text", "")), item.get("lang")
            except (json.JSONDecodeError, AttributeError):
                pass  # not JSON after all: score the line as text
        result = analysis.analyze(text, lang)
        given = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
        click.echo(json.dumps({
            "text": given, "lang": result.lang,
            "sentiment": result.sentiment.label, "sentiment_score": result.sentiment.score,
            "intent": result.intent.name, "intent_confidence": result.intent.confidence,
            "keywords": list(result.keywords)}, ensure_ascii=False))


@nlp.command("train")
def nlp_train() -> None:
    """Rebuild the models from nlp/data/labeled.jsonl (reproducible) and record their figures."""
    from nlp.evaluate import format_report
    from nlp.train import train

    brand_words, intents = _nlp_rules()
    metrics = train(brand_words=brand_words, intent_rules=intents)
    for name, info in metrics["models"].items():
        click.echo(f"{name}: C={info['C']} rows={info['train_rows']} features={info['features']}")
    click.echo(format_report(metrics["test"]))


@main.group("bot")
def bot_commands() -> None:
    """The bot's understanding, as the webhook runs it: route texts, score a labeled file."""


def _bot_router():  # type: ignore[no-untyped-def]
    from bot.route import router_for
    from config.content import load_content
    from nlp import analysis

    try:
        content = load_content()
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    analysis.load(content.rules.brand_words)
    return router_for(content)


@bot_commands.command("route")
def bot_route() -> None:
    """Texts on stdin (a text per line, or JSON lines with "text") to JSON lines: text, intent,
    confidence, sentiment and action, as for a new conversation. Writes nothing."""
    import json

    from bot.route import route

    router = _bot_router()
    for line in sys.stdin.buffer:
        text = line.rstrip(b"\r\n").decode("utf-8", errors="replace")
        if text.lstrip().startswith("{"):
            try:
                item = json.loads(text)
                text = str(item["text"]) if isinstance(item, dict) and "text" in item else text
            except json.JSONDecodeError:
                pass  # not JSON after all: route the line as text
        click.echo(json.dumps(route(text, router), ensure_ascii=False))


@bot_commands.command("test")
@click.option("--data", "data", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="A labeled JSON-lines file (text, lang, sentiment, intent), e.g. a brand's own WeChat messages.")
@click.option("--split", default=None, help="Only rows of this split (train | test).")
@click.option("--channel", default=None, help="Only rows of this channel (wechat | weibo | twitter).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures (and every mistake) as JSON.")
def bot_test(data: Path, split: str | None, channel: str | None, as_json: bool) -> None:
    """Score the router's decisions against a labeled file: macro-F1, per-intent recall, confusions."""
    import json

    from bot.route import format_test, score_routes
    from nlp.evaluate import DataError, load_labeled

    router = _bot_router()
    try:
        rows = [row for row in load_labeled(data, split=split) if channel is None or row.get("channel") == channel]
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    if not rows:
        raise click.ClickException(f"{data}: no rows of channel {channel!r}")
    report = score_routes(rows, router)
    click.echo(json.dumps(report, ensure_ascii=False, indent=1) if as_json else format_test(report))


def _lines():  # type: ignore[no-untyped-def]
    """Lines typed at a prompt, or piped in; ends at EOF."""
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input("你: ")
        except EOFError:
            return


if __name__ == "__main__":
    main()
