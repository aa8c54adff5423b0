"""The shipped site broker configuration, run for real: TLS, passwords, ACL, outage queues."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gated.config import SiteConfig, TlsConfig
from tests.servers import free_port, wait_for_port
from tests.test_tos_helpers import (
    REPO,
    Tos,
    await_until,
    database,
    running,
    site_config,
    write_moves,
)
from tos_bridge import TosBridge

SITE_CONF = REPO / "config" / "mosquitto-site.conf"
SITE_ACL = REPO / "config" / "mosquitto-site.acl"


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA and a broker certificate for 127.0.0.1, made with openssl."""
    paths = {name: directory / name for name in ("ca.key", "ca.crt", "broker.key",
                                                  "broker.csr", "broker.crt", "san.ext")}
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=gated test CA", "-keyout", str(paths["ca.key"]),
         "-out", str(paths["ca.crt"]))
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(paths["broker.key"]), "-out", str(paths["broker.csr"]))
    paths["san.ext"].write_text("subjectAltName=IP:127.0.0.1\n")
    _run("openssl", "x509", "-req", "-in", str(paths["broker.csr"]), "-CA", str(paths["ca.crt"]),
         "-CAkey", str(paths["ca.key"]), "-CAcreateserial", "-days", "2",
         "-extfile", str(paths["san.ext"]), "-out", str(paths["broker.crt"]))
    return paths


class SiteBroker:
    """mosquitto on the shipped configuration, with its paths moved into the test's folder."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = free_port()
        certs = _certificates(workdir)
        self.ca = certs["ca.crt"]
        passwd = workdir / "gated.passwd"
        _run("mosquitto_passwd", "-c", "-b", str(passwd), "gated", "gate-secret")
        _run("mosquitto_passwd", "-b", str(passwd), "tos", "tos-secret")
        replacements = {
            "persistence_location": f"{workdir}/",
            "password_file": str(passwd),
            "acl_file": str(SITE_ACL),
            "listener": f"{self.port} 127.0.0.1",
            "cafile": str(certs["ca.crt"]),
            "certfile": str(certs["broker.crt"]),
            "keyfile": str(certs["broker.key"]),
            "log_dest": f"file {workdir}/mosquitto.log",
        }
        text = SITE_CONF.read_text()
        for key, value in replacements.items():
            text, count = re.subn(rf"^{key} .*$", f"{key} {value}", text, flags=re.M)
            assert count == 1, key
        if os.geteuid() == 0:  # mosquitto would drop to its own user, who cannot read tmp_path
            text = f"user {pwd.getpwuid(0).pw_name}\n" + text
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(text)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(self.conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None


@pytest.fixture
def site_broker(tmp_path: Path) -> Iterator[SiteBroker]:
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("openssl and mosquitto_passwd are needed")
    broker = SiteBroker(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


def _secured(tmp_path: Path, broker: SiteBroker, user: str, password: str) -> SiteConfig:
    secret = tmp_path / f"{user}.password"
    secret.write_text(password + "\n")
    return site_config(
        tmp_path,
        broker,
        username=user,
        password_file=str(secret),
        tls=TlsConfig(ca_file=str(broker.ca)),
    )


async def test_a_tos_away_for_longer_than_the_default_queue_gets_everything(
    tmp_path: Path, site_broker: SiteBroker
) -> None:
    """3000 moves while the TOS is away: more than mosquitto's default queue of 1000."""
    config = _secured(tmp_path, site_broker, "gated", "gate-secret")
    tos_config = _secured(tmp_path, site_broker, "tos", "tos-secret")
    engine, sessions = database(config)
    tos = Tos(tos_config, tls_ca=str(site_broker.ca), login=("tos", "tos-secret"))
    tos.close()  # away, its session and subscription stay at the broker
    bridge = TosBridge(config, sessions)
    try:
        async with running(bridge):
            ids = write_moves(sessions, config.site_id, 3000, ("1", "2"), 500)
            await await_until(lambda: bridge.counters.published == 3000, 60, "all published")
            tos = Tos(tos_config, tls_ca=str(site_broker.ca), login=("tos", "tos-secret"))
            await await_until(lambda: len(tos.seen) == 3000, 60, "the queue delivered")
            await await_until(lambda: bridge.counters.acked == 3000, 60, "all acked")
        assert tos.first_order == {"1": ids[0::2], "2": ids[1::2]}
        assert bridge.counters.resent == 0
    finally:
        tos.close()
        engine.dispose()


async def test_the_acl_keeps_the_tos_out_of_the_gate_topics(
    tmp_path: Path, site_broker: SiteBroker
) -> None:
    config = _secured(tmp_path, site_broker, "gated", "gate-secret")
    tos_config = _secured(tmp_path, site_broker, "tos", "tos-secret")
    engine, sessions = database(config)
    bridge = TosBridge(config, sessions)
    tos = Tos(tos_config, tls_ca=str(site_broker.ca), login=("tos", "tos-secret"),
              client_id="tos-forger", persistent=False)
    try:
        async with running(bridge):
            await await_until(lambda: bridge.ready, 20, "bridge connected over TLS")
            # a forged move from the TOS account is refused by the broker's ACL
            tos.client.publish("gated/demo/moves", b'{"forged": true}', qos=1)
            # and so is a forged error reply: tos/errors is the gate's, though under tos/
            tos.client.publish("gated/demo/tos/errors", b'{"forged": true}', qos=1)
            tos.send("holds", {"schema_version": 1, "action": "place",
                               "container_number": "CSQU3054383", "kind": "customs"})
            await await_until(lambda: bridge.counters.commands == 1, 10, "hold applied")
        assert all(topic != "moves" for topic, _payload, _retain in tos.raw)
        assert all(b"forged" not in payload for _topic, payload, _retain in tos.raw)
    finally:
        tos.close()
        engine.dispose()


async def test_a_wrong_password_never_connects(tmp_path: Path, site_broker: SiteBroker) -> None:
    config = _secured(tmp_path, site_broker, "gated", "wrong")
    engine, sessions = database(config)
    bridge = TosBridge(config, sessions)
    try:
        log = site_broker.workdir / "mosquitto.log"
        async with running(bridge):
            write_moves(sessions, config.site_id, 3, ("1",))
            await await_until(
                lambda: "not authorised" in log.read_text(), 10, "the broker refusing the login"
            )
            assert bridge.counters.connects == 0
            assert not bridge.ready
        assert bridge.counters.published == 0
    finally:
        engine.dispose()


def test_the_acl_lets_the_tos_write_exactly_its_command_topics() -> None:
    from tos_bridge.commands import COMMAND_TOPICS

    acl = (Path(__file__).resolve().parent.parent / "config" / "mosquitto-site.acl").read_text()
    user, writes = None, set()
    for line in acl.splitlines():
        words = line.split()
        if words[:1] == ["user"]:
            user = words[1]
        elif user == "tos" and words[:2] in (["topic", "write"], ["topic", "readwrite"]):
            writes.add(words[2])
    assert writes == {f"gated/+/tos/{kind}" for kind in COMMAND_TOPICS}
