"""Shared fixtures: the shared data folder, real servers on loopback, and the leak check."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Mosquitto, Postgres, find_postgres_bin

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the repository; tests that need it skip when it is absent."""
    data = SHARED / "data"
    if not data.is_dir():
        pytest.skip("../shared/data is not present")
    return data


# --- real servers ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the whole run, for tests that only publish and subscribe."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, which the test may stop and start (outages)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server on a loopback port; skips when the binaries are not installed."""
    if find_postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed")
    server = Postgres()
    server.start()
    yield server
    server.stop()


# --- leak check ----------------------------------------------------------------------------------


def _socket_fds() -> set[str]:
    found = set()
    fd_dir = Path("/proc/self/fd")
    for entry in fd_dir.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(f"{entry.name}->{target}")
    return found


def _pending_tasks() -> list[asyncio.Task[object]]:
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.Task) and not obj.done()
    ]


@pytest.fixture(autouse=True)
def no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves threads, asyncio tasks or sockets behind."""
    if request.node.get_closest_marker("allow_leaks"):
        yield
        return
    threads_before = set(threading.enumerate())
    sockets_before = _socket_fds()
    tasks_before = {id(task) for task in _pending_tasks()}
    yield
    deadline = time.monotonic() + 3.0
    while True:
        gc.collect()
        threads = [
            t for t in threading.enumerate() if t not in threads_before and t.is_alive()
        ]
        sockets = _socket_fds() - sockets_before
        tasks = [t for t in _pending_tasks() if id(t) not in tasks_before]
        if not (threads or sockets or tasks) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    problems = []
    if threads:
        problems.append(f"threads left running: {[t.name for t in threads]}")
    if tasks:
        problems.append(f"asyncio tasks left pending: {[t.get_name() for t in tasks]}")
    if sockets:
        problems.append(f"sockets left open: {len(sockets)}")
    if problems:
        pytest.fail("; ".join(problems))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_leaks: skip the leak check (only for fixtures that outlive a test)"
    )
    config.addinivalue_line(
        "markers", "long: a test of minutes; run first so that it overlaps the others"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first: with `-n 2` one worker runs them while the other takes the rest."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
