"""`orderguard up`: the broker, PostgreSQL and every service as its own process, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orderguard.cli.embedded import EmbeddedBroker, EmbeddedPostgres, free_port, port_is_free
from orderguard.shared.kafka import create_topics
from orderguard.shared.settings import SERVICES, Settings

BROKER_PORT = 9092
FIRST_SERVICE_PORT = 8001
DATABASE = "orderguard"
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)


def _die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM if the supervisor dies, so nothing is orphaned."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _port(preferred: int) -> int:
    return preferred if port_is_free(preferred) else free_port()


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    log_file: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
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
            preexec_fn=_die_with_parent,
        )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as response:
                return bool(response.status == 200)
        except Exception:
            return False


def read_status(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / "status.json"
    if not path.exists():
        return None
    current = json.loads(path.read_text())
    if not _alive(current.get("supervisor_pid")):
        return None
    for service in current["services"].values():
        try:
            with urllib.request.urlopen(f"{service['url']}/readyz", timeout=1) as response:
                service["ready"] = response.status == 200
        except Exception:
            service["ready"] = False
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
            "ORDERGUARD_CARRIER_SECRETS": json.dumps({"sf-express": secret}),
        }

    def command(self, data_dir: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "orderguard",
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
    def __init__(self, data_dir: Path, demo: Demo | None = None) -> None:
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.demo = demo
        self.generator: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def _say(self, message: str) -> None:
        # A closed terminal or pipe (`make run | tee` on Ctrl-C) must not stop the shutdown.
        with contextlib.suppress(OSError):
            print(f"orderguard | {message}", flush=True)

    def _api_key(self) -> str:
        path = self.data_dir / "api-key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24) + "\n")
            path.chmod(0o600)
        return path.read_text().strip()

    def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        if read_status(self.data_dir) is not None:
            self._say(f"already running here; see `orderguard status` (state in {self.data_dir})")
            return 1
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request_stop)

        postgres = EmbeddedPostgres(self.data_dir / "pgdata")
        broker = EmbeddedBroker(_port(BROKER_PORT), log_file=self.logs / "broker.log")
        services: list[ServiceProcess] = []
        try:
            started = time.monotonic()
            postgres.start()
            database_url = postgres.ensure_database(DATABASE)
            self._say(f"PostgreSQL ready: {database_url} (data kept in {postgres.datadir})")
            broker.start()
            self._say(
                f"broker (Tansu, in memory: nothing is kept across restarts) on {broker.bootstrap}"
            )
            api_key = self._api_key()
            base_env = {
                **os.environ,
                "ORDERGUARD_DATABASE_URL": database_url,
                "ORDERGUARD_KAFKA_BOOTSTRAP": broker.bootstrap,
                "ORDERGUARD_KAFKA_EMBEDDED_COMPAT": "true",
                "ORDERGUARD_API_KEYS": json.dumps({api_key: ["*"]}),
                "ORDERGUARD_HTTP_HOST": "127.0.0.1",
            }
            if self.demo:
                base_env.update(self.demo.env(self.data_dir))
                self._say(
                    f"demo: detectors scaled for speedup {self.demo.speedup:g}"
                    f" ({base_env['ORDERGUARD_DETECTORS_FILE']})"
                )
            settings = Settings(
                database_url=database_url,
                kafka_bootstrap=broker.bootstrap,
                kafka_embedded_compat=True,
            )
            asyncio.run(create_topics(settings))
            port = FIRST_SERVICE_PORT
            for name in SERVICES:
                port = _port(port)
                services.append(
                    ServiceProcess(
                        name,
                        port,
                        {**base_env, "ORDERGUARD_HTTP_PORT": str(port)},
                        self.logs / f"{name}.log",
                    )
                )
                port += 1
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
                    preexec_fn=_die_with_parent,
                )
            self._watch(services)
            return 0
        finally:
            self._stop_all(services, broker, postgres)

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

    def _watch(self, services: list[ServiceProcess]) -> None:
        """Restart a service that died, with backoff, until asked to stop."""
        while not self._stopping:
            now = time.monotonic()
            if self.generator and self.generator.poll() is not None:
                self._say(
                    f"demo scenario finished (exit {self.generator.returncode}); the services keep"
                    " running. `orderguard scenario check` compares again."
                )
                self.generator = None
            for service in services:
                assert service.process is not None
                code = service.process.poll()
                if code is None:
                    continue
                if service.next_start == 0.0:
                    delay = RESTART_BACKOFF_S[min(service.restarts, len(RESTART_BACKOFF_S) - 1)]
                    service.next_start = now + delay
                    self._say(
                        f"{service.name} exited with {code}; restarting in {delay}s (log {service.log_path})"
                    )
                elif now >= service.next_start:
                    service.restarts += 1
                    service.next_start = 0.0
                    service.start()
            time.sleep(0.2)

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
        (self.data_dir / "status.json").write_text(json.dumps(status, indent=2) + "\n")

    def _stop_all(
        self, services: list[ServiceProcess], broker: EmbeddedBroker, postgres: EmbeddedPostgres
    ) -> None:
        if self.generator and self.generator.poll() is None:
            self.generator.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.generator.wait(timeout=5)
        self._say("stopping services")
        running = [s for s in services if s.process and s.process.poll() is None]
        for service in running:
            assert service.process is not None
            service.process.terminate()
        deadline = time.monotonic() + 25
        for service in running:
            assert service.process is not None
            try:
                service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(f"{service.name} did not stop in time; killing it")
                service.process.kill()
                service.process.wait()
        for service in services:
            if service.log_file:
                service.log_file.close()
        broker.stop()
        postgres.stop()
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "status.json").unlink()
        self._say("stopped")
