"""Real servers for tests, started on free loopback ports: mosquitto and PostgreSQL."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Mosquitto:
    """A mosquitto broker of the test's own on a loopback port; can be stopped and restarted."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        extra_conf: str = "",
        max_queued_messages: int = 100000,
    ) -> None:
        """`max_queued_messages` per client; mosquitto's own default is 1000 (tests of a slow
        subscriber use that, as a site's broker left at its defaults would)."""
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.max_queued_messages = max_queued_messages
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.workdir / "mosquitto.conf"
        # run as root, mosquitto would switch to its own user, who can write neither the
        # persistence file nor the log in the test's folder
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"{user}listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            f"max_queued_messages {self.max_queued_messages}\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
            f"{self.extra_conf}\n"
        )
        self.process = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def find_postgres_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


class Postgres:
    """A throw-away PostgreSQL cluster on a loopback port, run as the `postgres` user."""

    def __init__(self) -> None:
        bindir = find_postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found")
        self.bindir = bindir
        # pytest's own temporary folders are private to root; the server runs as `postgres`
        self.workdir = Path(tempfile.mkdtemp(prefix="gated-pg-"))
        self.datadir = self.workdir / "data"
        self.port = free_port()

    def _run_as_postgres(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
        self._run_as_postgres("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "gated")
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run_as_postgres(
            "pg_ctl", "-D", str(self.datadir), "-o", options, "-l",
            str(self.workdir / "postgres.log"), "-w", "start",
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://gated@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A fresh database on this server; returns its URL."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=gated dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://gated@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run_as_postgres("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
