"""Privacy on the wire: credential events of every card kind go through the TOS bridge to a
real mosquitto; what a subscriber receives holds no full FASC-N."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gated import credentials as cred
from gated.config import SecurityConfig
from hwsim.card_reader import scripted_fascn
from tests.servers import Mosquitto
from tests.test_credential_flow import EXPECTED, NOW, _forbidden_forms, _run_every_kind
from tests.test_tos_helpers import Tos, await_until, database, running, site_config
from tos_bridge import TosBridge


async def test_published_credential_events_hold_no_fascn(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = site_config(tmp_path, mosquitto)
    security = SecurityConfig(marsec_level=1, fascn_key_file=str(tmp_path / "fascn.key"))
    key = cred.load_fascn_key(security.fascn_key_file)
    engine, sessions = database(config)
    tos = Tos(config)
    try:
        with sessions() as session:
            for kind in ("valid", "expired", "canceled"):
                cred.register_driver(session, scripted_fascn(kind), key=key, company_code="ACME")
            ccl = tmp_path / "ccl.txt"
            ccl.write_text(f"{scripted_fascn('canceled').to_hex()} 02DEC2026\n")
            cred.import_canceled_card_list(session, ccl, key=key, now=NOW - timedelta(hours=1))
            assert await _run_every_kind(tmp_path, session, security, key) == EXPECTED

        bridge = TosBridge(config, sessions)
        async with running(bridge):
            await await_until(
                lambda: len(tos.messages("lanes/3/credential")) == len(EXPECTED), 20,
                "every credential event published",
            )
        events = tos.messages("lanes/3/credential")
        assert {event["credential_last4"] for event in events} == {"0042", "0077", "0099", None}
        wire = b"\n".join(payload for _topic, payload, _retain in tos.raw).decode("utf-8")
        for form in _forbidden_forms():
            assert form not in wire, f"a FASC-N part ({len(form)} chars) was published"
    finally:
        tos.close()
        engine.dispose()
