"""`orderguard up`: the broker, PostgreSQL and every service as its own process, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

from orderguard.cli.embedded import EmbeddedBroker, EmbeddedPostgres, reserve_port
from orderguard.cli.users import first_admin_password
from orderguard.shared.kafka import create_topics
from orderguard.shared.settings import SCHEMAS, SERVICES, Settings

BROKER_PORT = 9092
FIRST_SERVICE_PORT = 8001
DATABASE = "orderguard"
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)
# A service that ran this long before it died restarts at the first step of the backoff again.
STABLE_AFTER_S = 60.0
# A service's /readyz runs its own checks with 2 s timeouts each (database, broker): a loaded
# machine answers slowly, which is not "not ready".
READYZ_TIMEOUT_S = 10.0


# The order service is the front door: customers place and read orders through it while they
# wait. Every other service reacts to what it published and may fall behind for a moment when
# the machine is saturated, then catch up. The broker and PostgreSQL stay at the supervisor's
# priority: the front door's own writes and relay wait on them (README, "Performance").
FRONT_DOOR = frozenset({"order"})
# How many nice steps below the front door the other services run (`up --background-nice`).
BACKGROUND_NICE = 10
# Partitions of the topics `up` creates on the embedded broker, unless ORDERGUARD_TOPIC_PARTITIONS
# says otherwise (the settings' default, 3, is for a Kafka whose deployment does not say). Here
# every service runs one worker, so more partitions share no work; and Tansu stores a produce
# request as one batch per partition it touches and lists every batch of a partition for each
# fetch that finds records there: one partition makes the fewest batches. At 200 orders/s it took
# the broker's CPU per order from 0.92-0.96 to 0.51-0.52 ms (docs/performance.md, session 19).
EMBEDDED_TOPIC_PARTITIONS = 1


def embedded_settings(database_url: str, bootstrap: str) -> Settings:
    """The settings of what `up` starts, from the environment: the embedded database and broker,
    and EMBEDDED_TOPIC_PARTITIONS unless the environment names a count."""
    settings = Settings(
        database_url=database_url, kafka_bootstrap=bootstrap, kafka_embedded_compat=True
    )
    if "topic_partitions" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"topic_partitions": EMBEDDED_TOPIC_PARTITIONS})


def die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM if the supervisor dies, so nothing is orphaned."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def autogroup(pid: int | str = "self") -> tuple[str, int] | None:
    """The autogroup (one per session) of process `pid` and its nice, where the kernel has
    autogroups: there a session's share of the CPU comes before its processes' nice. None where
    it has none, or shows an empty file (some sandboxed kernels do)."""
    try:
        group, _, nice = Path(f"/proc/{pid}/autogroup").read_text().split()
        return group, int(nice)
    except (OSError, ValueError):
        return None


def autogroup_nice() -> int | None:
    """The nice of this process's autogroup, where the kernel has autogroups."""
    group = autogroup()
    return None if group is None else group[1]


def child_setup(nice: int, session_nice: int | None) -> Callable[[], None]:
    """What a service runs before exec (in its own session by then): die with the supervisor,
    and run `nice` steps below it.

    Linux with autogroups (most desktops and these machines) shares the CPU between sessions
    before it looks at a process's nice, so the new session gets the supervisor's session's
    nice plus `nice` too, or the process's own would count for nothing (a new session starts
    at 0 whatever its parent's is). A nice below 0 needs privileges: without them it stays 0."""

    def setup() -> None:
        die_with_parent()
        if nice:
            with contextlib.suppress(OSError):
                os.nice(nice)
        if session_nice is not None:
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write(str(max(-20, min(19, session_nice + nice))))

    return setup


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    nice: int = 0
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = 0.0
    log_file: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.log_file:
            self.log_file.close()
        self.started_at = time.monotonic()
        self.log_file = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orderguard.cli", "run", self.name],
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a terminal Ctrl-C reaches only the supervisor, which stops
            # services first and the broker and database after them.
            start_new_session=True,
            preexec_fn=child_setup(self.nice, autogroup_nice()),
        )

    def ready(self) -> bool:
        return bool(readiness(self.url)["ready"])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 25) -> bool:
        """SIGTERM, then SIGKILL after `timeout_s`; False when it had to be killed."""
        if not self.running():
            return True
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return False


def readiness(url: str) -> dict[str, Any]:
    """A service's answer to /readyz: `ready`, and what is not (its failed checks, or why it
    did not answer)."""
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=READYZ_TIMEOUT_S) as response:
            return {"ready": response.status == 200}
    except urllib.error.HTTPError as exc:  # 503: the body names the failed checks
        with contextlib.suppress(Exception):
            checks = json.loads(exc.read())["checks"]
            return {"ready": False, "failing": sorted(k for k, ok in checks.items() if not ok)}
        return {"ready": False, "failing": [f"HTTP {exc.code}"]}
    except Exception as exc:
        return {"ready": False, "failing": [f"no answer: {exc!r}"]}


def hold_data_dir(data_dir: Path) -> IO[bytes] | None:
    """The data dir's lock, held until the returned file is closed (or the process dies); None
    when another `up` holds it. Two `up`s on one data dir would start two PostgreSQLs on the
    same pgdata; status.json alone is written only once everything is ready, too late to tell."""
    lock = (data_dir / "up.lock").open("ab")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def read_status(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / "status.json"
    if not path.exists():
        return None
    current = json.loads(path.read_text())
    if not _alive(current.get("supervisor_pid")):
        return None
    services = current["services"].values()
    with ThreadPoolExecutor(max_workers=len(services) or 1) as pool:
        for service, answer in zip(
            services, pool.map(readiness, [s["url"] for s in services]), strict=True
        ):
            service.update(answer)
    return current


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Demo:
    """`up --demo`: the services run with the scenario's scaled detectors file, then the
    scenario generator plays a labelled shop against them (see orderguard.scenario)."""

    speedup: float = 2880.0
    rate: float = 20.0
    duration_s: float = 300.0
    seed: int = 1

    def env(self, data_dir: Path) -> dict[str, str]:
        from orderguard.scenario.scale import SYSTEM_ENV, Scale

        detectors = data_dir / "demo-detectors.yaml"
        detectors.write_text(Scale(self.speedup).detectors_yaml())
        secret = secrets.token_urlsafe(16)
        return {
            **SYSTEM_ENV,
            "ORDERGUARD_DETECTORS_FILE": str(detectors),
            # the generator sends part of the scans over the signed carrier webhook
            "ORDERGUARD_LOGISTICS__CARRIER_SECRETS": json.dumps({"sf-express": secret}),
        }

    def command(self, data_dir: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "orderguard.cli",
            "scenario",
            "run",
            "--data-dir",
            str(data_dir),
            "--speedup",
            f"{self.speedup:g}",
            "--rate",
            f"{self.rate:g}",
            "--duration",
            f"{self.duration_s:g}",
            "--seed",
            str(self.seed),
            "--labels",
            str(data_dir / "scenario-labels.jsonl"),
        ]


class Supervisor:
    def __init__(
        self, data_dir: Path, demo: Demo | None = None, background_nice: int = BACKGROUND_NICE
    ) -> None:
        self.data_dir = data_dir
        self.background_nice = background_nice
        self.logs = data_dir / "logs"
        self.demo = demo
        self.generator: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._database_url = ""
        self._api_key = ""
        # The ports of the broker and the services, held until everything stopped (see
        # reserve_port): a restart finds its port as it left it.
        self._ports: list[socket.socket] = []

    def _say(self, message: str) -> None:
        # A closed terminal or pipe (`make run | tee` on Ctrl-C) must not stop the shutdown.
        with contextlib.suppress(OSError):
            print(f"orderguard | {message}", flush=True)

    def _read_api_key(self) -> str:
        path = self.data_dir / "api-key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24) + "\n")
            path.chmod(0o600)
        return path.read_text().strip()

    def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        lock = hold_data_dir(self.data_dir)
        if lock is None:
            self._say(f"already running here; see `orderguard status` (state in {self.data_dir})")
            return 1
        try:
            return self._run()
        finally:
            lock.close()

    def _run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request_stop)

        postgres = EmbeddedPostgres(self.data_dir / "pgdata")
        broker = EmbeddedBroker(self._port(BROKER_PORT), log_file=self.logs / "broker.log")
        services: list[ServiceProcess] = []
        try:
            started = time.monotonic()
            postgres.start()
            database_url = postgres.ensure_database(DATABASE)
            self._database_url = database_url
            self._say(f"PostgreSQL ready: {database_url} (data kept in {postgres.datadir})")
            broker.start()
            self._say(
                f"broker (Tansu, in memory: nothing is kept across restarts) on {broker.bootstrap}"
            )
            api_key = self._read_api_key()
            self._api_key = api_key
            settings = embedded_settings(database_url, broker.bootstrap)
            base_env = {
                **os.environ,
                "ORDERGUARD_DATABASE_URL": database_url,
                "ORDERGUARD_KAFKA_BOOTSTRAP": broker.bootstrap,
                "ORDERGUARD_KAFKA_EMBEDDED_COMPAT": "true",
                "ORDERGUARD_TOPIC_PARTITIONS": str(settings.topic_partitions),
                "ORDERGUARD_API_KEYS": json.dumps({api_key: ["*"]}),
                "ORDERGUARD_HTTP_HOST": "127.0.0.1",
            }
            if self.demo:
                base_env.update(self.demo.env(self.data_dir))
                self._say(
                    f"demo: detectors scaled for speedup {self.demo.speedup:g}"
                    f" ({base_env['ORDERGUARD_DETECTORS_FILE']})"
                )
            # The broker starts empty every time, but the database may hold an earlier run's
            # offsets and sent outbox rows: the same reset as when the broker dies mid-run.
            republished = self._fill_new_broker(settings)
            if republished:
                self._say(f"{republished} outbox row(s) kept from the last run to publish again")
            port = FIRST_SERVICE_PORT
            for name in SERVICES:
                port = self._port(port)
                services.append(
                    ServiceProcess(
                        name,
                        port,
                        {**base_env, "ORDERGUARD_HTTP_PORT": str(port)},
                        self.logs / f"{name}.log",
                        nice=0 if name in FRONT_DOOR else self.background_nice,
                    )
                )
                port += 1
            by_name = {service.name: service for service in services}
            # The console (in the notifier) calls these services for people, server-side.
            for called in ("order", "aftersales", "logistics"):
                by_name["notifier"].env[f"ORDERGUARD_NOTIFIER__CONSOLE_{called.upper()}_URL"] = (
                    by_name[called].url
                )
            admin_password = asyncio.run(first_admin_password(database_url))
            for service in services:
                service.start()
            self._write_status(broker, database_url, api_key, services)
            self._wait_ready(services)
            if self._stopping:
                return 0
            self._say(f"all services ready in {time.monotonic() - started:.1f}s")
            for service in services:
                self._say(
                    f"  {service.name:<10} {service.url}  (docs {service.url}/docs, log {service.log_path})"
                )
            self._say(
                f"API key: {api_key}   (also in {self.data_dir / 'api-key'}; `orderguard status --json`)"
            )
            self._say(
                f"console: {by_name['notifier'].url}/console/  "
                + (
                    f"first admin: admin / {admin_password}  (one-time: change it at sign-in)"
                    if admin_password
                    else "(people: `orderguard users list`)"
                )
            )
            self._say("Ctrl-C stops everything.")
            if self.demo:
                self._say(
                    "demo: playing a labelled shop; anomalies reach the queues within a minute"
                    f" (work items: curl {services[-1].url}/work-items -H 'X-API-Key: {api_key}')"
                )
                self.generator = subprocess.Popen(
                    self.demo.command(self.data_dir),
                    env=base_env,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            self._watch(services, broker, postgres, settings)
            return 0
        finally:
            self._stop_all(services, broker, postgres)

    def _port(self, preferred: int) -> int:
        """`preferred` if it is free, else any free port; held for us until we stop."""
        reservation = reserve_port(preferred)
        self._ports.append(reservation)
        return int(reservation.getsockname()[1])

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stopping = True

    def _wait_ready(self, services: list[ServiceProcess], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(services)
        while pending and not self._stopping:
            for service in list(pending):
                if service.process and service.process.poll() is not None:
                    raise RuntimeError(
                        f"{service.name} exited with {service.process.returncode} while starting; see {service.log_path}"
                    )
                if service.ready():
                    pending.remove(service)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not ready after {timeout_s}s: {', '.join(s.name for s in pending)}"
                )
            time.sleep(0.2)

    def _watch(
        self,
        services: list[ServiceProcess],
        broker: EmbeddedBroker,
        postgres: EmbeddedPostgres,
        settings: Settings,
    ) -> None:
        """Restart what died, with backoff, until asked to stop: the database and the broker
        first (the services cannot work without them), then any service."""
        while not self._stopping:
            now = time.monotonic()
            if self.generator and self.generator.poll() is not None:
                self._say(
                    f"demo scenario finished (exit {self.generator.returncode}); the services keep"
                    " running. `orderguard scenario check` compares again."
                )
                self.generator = None
            if not postgres.alive():
                self._recover_database(postgres, services)
                continue
            if not broker.alive():
                self._recover_broker(broker, postgres, services, settings)
                continue
            for service in services:
                assert service.process is not None
                code = service.process.poll()
                if code is None:
                    continue
                if service.next_start == 0.0:
                    if now - service.started_at > STABLE_AFTER_S:
                        service.restarts = 0
                    delay = RESTART_BACKOFF_S[min(service.restarts, len(RESTART_BACKOFF_S) - 1)]
                    service.next_start = now + delay
                    self._say(
                        f"{service.name} exited with {code}; restarting in {delay}s (log {service.log_path})"
                    )
                elif now >= service.next_start:
                    service.restarts += 1
                    service.next_start = 0.0
                    service.start()
                    self._write_status(broker, self._database_url, self._api_key, services)
            time.sleep(0.2)

    def _recover_database(self, postgres: EmbeddedPostgres, services: list[ServiceProcess]) -> None:
        """Start PostgreSQL again on its data dir: every committed transaction is kept. The
        services ride it out (their pools reconnect); one that exited meanwhile restarts at once."""
        self._say("PostgreSQL died; restarting it (committed data is kept)")
        for attempt in range(len(RESTART_BACKOFF_S) * 4):
            if self._stopping:
                return
            try:
                postgres.restart()
                break
            except Exception as exc:
                delay = RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)]
                self._say(f"PostgreSQL did not start ({exc!r}); trying again in {delay}s")
                time.sleep(delay)
        else:
            raise RuntimeError(f"PostgreSQL does not start again; see {postgres.datadir / 'log'}")
        if postgres.url(DATABASE) != self._database_url:
            raise RuntimeError("PostgreSQL came back on another address; restart `orderguard up`")
        self._say("PostgreSQL is back")
        for service in services:
            service.restarts = 0
            if not service.running():
                service.next_start = time.monotonic()

    def _fill_new_broker(self, settings: Settings) -> int:
        """On a broker that holds nothing (it keeps its logs in memory): create the topics, and
        forget the consumer offsets stored in the database, which point into logs it no longer
        has (an engine would skip every new record below them); the kept outbox rows go out
        again (consumers drop what they applied already, by event id). How many rows that is."""
        asyncio.run(create_topics(settings))
        return forget_broker_state(self._database_url)

    def _recover_broker(
        self,
        broker: EmbeddedBroker,
        postgres: EmbeddedPostgres,
        services: list[ServiceProcess],
        settings: Settings,
    ) -> None:
        """Start the broker again. It keeps nothing in memory, so the services stop while it is
        rebuilt: topics created again, the consumers' stored offsets (which point into the lost
        logs) forgotten, and every outbox row still kept published again, so the events of the
        last hour reach their consumers (which drop what they applied already, by event id).
        Lost for good: records other systems published straight to Kafka (payments.events,
        carriers.scans) that were not consumed yet, outbox rows already cleaned up (sent over an
        hour ago) that a consumer had not reached, and dead letters older than that hour."""
        self._say(
            "broker died; restarting it. It kept everything in memory: stopping the services"
            " while its topics are created again and the outboxes published again"
        )
        # Their state is in the database: a short grace, as their Kafka clients cannot leave cleanly.
        self._stop_services(services, timeout_s=5)
        broker.start()
        republished = self._fill_new_broker(settings)
        self._say(
            f"broker is back; {republished} outbox row(s) to publish again; starting services"
        )
        for service in services:
            service.restarts = 0
            service.next_start = 0.0
            service.start()
        self._write_status(broker, self._database_url, self._api_key, services)

    def _write_status(
        self,
        broker: EmbeddedBroker,
        database_url: str,
        api_key: str,
        services: list[ServiceProcess],
    ) -> None:
        status = {
            "supervisor_pid": os.getpid(),
            "data_dir": str(self.data_dir),
            "api_key": api_key,
            "broker": {
                "bootstrap": broker.bootstrap,
                "kind": "tansu (embedded, in memory)",
                "pid": broker.pid,
            },
            "database": {"url": database_url, "kind": "postgresql (embedded)"},
            "services": {
                s.name: {
                    "url": s.url,
                    "metrics": f"{s.url}/metrics",
                    "pid": s.process.pid if s.process else None,
                    "ready": False,
                }
                for s in services
            },
        }
        # Written whole, then renamed over the old one: a reader never sees half a file.
        path = self.data_dir / "status.json"
        written = path.with_suffix(".json.tmp")
        written.write_text(json.dumps(status, indent=2) + "\n")
        written.replace(path)

    def _stop_services(self, services: list[ServiceProcess], timeout_s: float) -> None:
        """SIGTERM to every running service at once, SIGKILL to those still running after."""
        running = [s for s in services if s.running()]
        for service in running:
            assert service.process is not None
            service.process.terminate()
        deadline = time.monotonic() + timeout_s
        for service in running:
            if not service.stop(timeout_s=max(0.1, deadline - time.monotonic())):
                self._say(f"{service.name} did not stop in time; killed it")

    def _stop_all(
        self, services: list[ServiceProcess], broker: EmbeddedBroker, postgres: EmbeddedPostgres
    ) -> None:
        if self.generator and self.generator.poll() is None:
            self.generator.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.generator.wait(timeout=5)
        self._say("stopping services")
        self._stop_services(services, timeout_s=25)
        for service in services:
            if service.log_file:
                service.log_file.close()
        broker.stop()
        postgres.stop()
        for reservation in self._ports:
            reservation.close()
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "status.json").unlink()
        self._say("stopped")


def forget_broker_state(database_url: str) -> int:
    """After the broker lost its logs: forget every service's stored consumer offsets and mark
    its kept outbox rows unsent, so its relay publishes them to the new broker in id order.
    Returns how many rows will be published again. Run while the services are stopped."""
    republished = 0
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1)) as conn:
        for schema in SCHEMAS.values():
            exists = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                (f'"{schema}".outbox', f'"{schema}".consumer_offsets'),
            ).fetchone()
            if not (exists and exists[0]):
                continue  # a service that never started: nothing stored
            conn.execute(f'DELETE FROM "{schema}".consumer_offsets')
            cursor = conn.execute(
                f'UPDATE "{schema}".outbox SET sent_at = NULL WHERE sent_at IS NOT NULL'
            )
            republished += cursor.rowcount
        conn.commit()
    return republished
