"""`gated run` starts, and stops cleanly on SIGTERM within the deadline."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gated.supervisor import Service, Supervisor

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"


def test_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "gated.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for command in ("run", "check-config", "db"):
        assert command in out
    out = subprocess.run([sys.executable, "-m", "hwsim.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "usage: hwsim" in out


def test_run_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    from tests.servers import free_port

    text = (
        EXAMPLE.read_text()
        .replace("sqlite:///var/gated.db", f"sqlite:///{tmp_path}/g.db")
        .replace("port: 8080", f"port: {free_port()}")
        .replace("port: 18830", f"port: {free_port()}")
    )
    config.write_text(text)
    process = subprocess.Popen(
        [sys.executable, "-m", "gated.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        lines = []
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "supervising" in line:
                break
        else:
            pytest.fail("daemon did not start: " + "".join(lines))
        process.send_signal(signal.SIGTERM)
        # a hang check, not a stopwatch: the 5 s stop deadline itself is tested below with a
        # service that will not stop; here the machine may be loaded by other tests
        code = process.wait(timeout=30)
        assert code == 0, "".join(lines) + process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


async def test_supervisor_restarts_a_crashed_service() -> None:
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("device exploded")
        await asyncio.Event().wait()

    supervisor = Supervisor([Service("flaky", flaky)], backoff_start_s=0.01)
    task = asyncio.create_task(supervisor.run(install_signal_handlers=False), name="sup")
    for _ in range(200):
        if runs >= 3:
            break
        await asyncio.sleep(0.01)
    supervisor.stop()
    await task
    assert runs == 3
    assert supervisor.restarts["flaky"] == 2


async def test_a_service_that_exits_does_not_stop_the_others() -> None:
    calls = 0

    async def gives_up() -> None:
        nonlocal calls
        calls += 1
        raise SystemExit(3)  # as uvicorn does when its port is taken

    async def lane() -> None:
        await asyncio.Event().wait()

    supervisor = Supervisor(
        [Service("kiosk", gives_up), Service("lane-1", lane)], backoff_start_s=0.01
    )
    task = asyncio.create_task(supervisor.run(install_signal_handlers=False), name="sup")
    for _ in range(200):
        if calls >= 2:
            break
        await asyncio.sleep(0.01)
    assert not task.done()
    supervisor.stop()
    await task
    assert calls >= 2


def test_the_daemon_process_does_not_load_opencv() -> None:
    """OpenCV costs 40 MB a process; the daemon leaves it to the OCR workers (and to sites
    with video-stream cameras), so its modules must not import it."""
    probe = (
        "import sys, gated.cli, gated.daemon, gated.cameras, gated.kiosk, gated.ocr_service; "
        "from gated.domain import ContainerRead; "
        "from gated.ocr_service import OcrService; "
        "read = ContainerRead(image='a.jpg', camera='AH', container_number='MSCU1234566', "
        "size_type='22G1', confidence=0.9); "
        "fused = OcrService.fuse(None, [read, read]); "  # the lane fuses in the daemon
        "assert fused and fused[0].container_number == 'MSCU1234566', fused; "
        "print(sorted(m for m in ('cv2', 'numpy', 'PIL.ImageOps') if m in sys.modules))"
    )
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "[]"


def test_the_ocr_package_names_every_export() -> None:
    import ocr

    for name in ocr.__all__:
        assert getattr(ocr, name) is not None
    with pytest.raises(AttributeError):
        ocr.no_such_thing  # noqa: B018


async def test_a_service_that_will_not_stop_does_not_hold_up_the_stop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("gated.supervisor.STOP_DEADLINE_S", 0.2)
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                pass  # a badly written driver that swallows the cancel

    async def lane() -> None:
        await asyncio.Event().wait()

    supervisor = Supervisor([Service("stubborn", stubborn), Service("lane-1", lane)])
    task = asyncio.create_task(supervisor.run(install_signal_handlers=False), name="sup")
    await asyncio.sleep(0.05)
    supervisor.stop()
    try:
        done, _ = await asyncio.wait({task}, timeout=5.0)
        assert done, "the supervisor waited past its deadline"
        assert "stubborn did not stop" in caplog.text
    finally:
        released.set()
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("command", "complaint"),
    [
        (["gated.cli", "--log-level", "NOPE", "check-config", "x.yaml"], "--log-level"),
        (["hwsim.cli", "plc", "--port", "0"], "port 0 is not in 1-65535"),
        (["hwsim.cli", "rpm", "--port", "five"], "not a port number"),
    ],
)
def test_bad_command_line_values_are_refused(command: list[str], complaint: str) -> None:
    answer = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, timeout=60
    )
    assert answer.returncode == 2 and complaint in answer.stderr
