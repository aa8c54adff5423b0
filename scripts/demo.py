"""`make demo`: the whole gate on the simulator, on loopback, until Ctrl-C.

Starts a mosquitto broker, `hwsim run` (two lanes, real photos when ../shared is present),
enrols the simulated drivers, imports the simulated canceled card list, and runs
`gated run --config config/example.yaml` with its kiosk. Prints the kiosk URL and a demo login,
then one line per decision (and every error of the daemon).

Each run starts from a fresh demo state: the previous run's database, images, simulator and
broker files are moved to `var/previous/`, so transactions left open by a stopped run do not
hold the lanes of the new one.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
BIN = ROOT / ".venv" / "bin"
CONFIG = ROOT / "config" / "example.yaml"
PHOTOS = ROOT.parent / "shared" / "data" / "real_containers"
SCENARIO = ROOT / "hwsim" / "scenarios" / "demo.yaml"
MQTT_PORT = 18830
DECISION_WORDS = ("PROCEED", "TROUBLE", "INSPECTION")
SHOWN_WORDS = (*DECISION_WORDS, "lost", "recovered", " ERROR ", " CRITICAL ")
KIOSK_PORT = 8080
# state of one demo run (paths of config/example.yaml); keys and the kiosk secret stay
RUN_STATE = ("gated.db", "gated.db-wal", "gated.db-shm", "images", "hwsim", "mosquitto",
             "gated.log", "hwsim.log")


def wait_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.3):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def start_broker() -> subprocess.Popen[bytes]:
    folder = VAR / "mosquitto"
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # started as root, mosquitto drops to its own user: let it write its files
        try:
            user = pwd.getpwnam("mosquitto")
            os.chown(folder, user.pw_uid, user.pw_gid)
        except KeyError:
            pass
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {MQTT_PORT} 127.0.0.1\nallow_anonymous true\n"
        f"persistence true\npersistence_location {folder}/\n"
        "max_queued_messages 100000\n"
        f"log_dest file {folder}/mosquitto.log\n"
    )
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([binary, "-c", str(conf)])
    if not wait_port(MQTT_PORT, 10):
        broker.terminate()
        raise SystemExit(f"mosquitto did not start on 127.0.0.1:{MQTT_PORT}")
    return broker


def set_previous_run_aside() -> None:
    present = [name for name in RUN_STATE if (VAR / name).exists()]
    if not present:
        return
    previous = VAR / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for name in present:
        (VAR / name).rename(previous / name)
    print("demo: starting afresh; the previous run's database and logs are in var/previous/")


def wait_kiosk(gate: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while gate.poll() is None and time.monotonic() < deadline:
        if wait_port(KIOSK_PORT, 0.5):
            return


def stop_on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a closed terminal (SIGHUP) or a kill (SIGTERM) stops like Ctrl-C


def main() -> int:
    signal.signal(signal.SIGHUP, stop_on_signal)
    signal.signal(signal.SIGTERM, stop_on_signal)
    os.chdir(ROOT)
    VAR.mkdir(exist_ok=True)
    set_previous_run_aside()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(start_broker())
        hwsim_command = [
            str(BIN / "hwsim"), "run", "--lanes", "2", "--scenario", str(SCENARIO),
            "--mqtt-port", str(MQTT_PORT), "--state-dir", str(VAR / "hwsim"),
            "--wait-for-gate",
        ]
        if PHOTOS.is_dir():
            hwsim_command += ["--photos", str(PHOTOS)]
            print(f"demo: cameras show the real gate photos in {PHOTOS}")
        else:
            print("demo: ../shared/data/real_containers not found: synthetic pictures")
        hwsim_log = open(VAR / "hwsim.log", "wb")  # noqa: SIM115 - closed with the process
        processes.append(subprocess.Popen(hwsim_command, stdout=hwsim_log, stderr=hwsim_log))
        enrolment = VAR / "hwsim" / "drivers.csv"
        deadline = time.monotonic() + 60
        while not enrolment.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        subprocess.run([str(BIN / "gated"), "drivers", "enroll", str(enrolment),
                        "--config", str(CONFIG)], check=True)
        subprocess.run([str(BIN / "gated"), "ccl", "import", str(VAR / "hwsim" / "ccl.txt"),
                        "--config", str(CONFIG)], check=True)
        gate = subprocess.Popen(
            [str(BIN / "gated"), "run", "--config", str(CONFIG)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        processes.append(gate)  # type: ignore[arg-type]
        wait_kiosk(gate, 60)
        print(f"demo: kiosk at http://127.0.0.1:{KIOSK_PORT}/  login: clerk / clerk-demo "
              "(supervisor / supervisor-demo)")
        print("demo: hwsim log in var/hwsim.log; Ctrl-C stops everything")
        assert gate.stdout is not None
        with open(VAR / "gated.log", "w", encoding="utf-8") as log:
            for line in gate.stdout:
                log.write(line)
                log.flush()
                if any(word in line for word in SHOWN_WORDS):
                    print(line.rstrip())
        status = gate.wait()
        if status != 0:
            print(f"demo: gated run stopped with exit status {status}; see var/gated.log")
        return status
    except KeyboardInterrupt:
        print("\ndemo: stopping")
        return 0
    finally:
        for stop in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
            signal.signal(stop, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
