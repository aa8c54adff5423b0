"""A lane's credential flow end to end: simulated reader on a pty, driver, check, records.

Also the privacy test: after a run with every card kind, no full FASC-N is in the logs, in any
stored row or in any queued event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from drivers.card_reader import CardPresented, CardReader
from gated import credentials as cred
from gated.config import CardReaderConfig, SecurityConfig
from gated.db import make_engine, session_factory, upgrade
from gated.models import Base, OutboxEvent
from hwsim.card_reader import SimulatedCardReader, scripted_fascn

NOW = datetime.now(UTC)
EXPECTED = {
    "valid": [],
    "expired": [cred.EXPIRED],
    "canceled": [cred.CANCELED],
    "biometric_fail": [cred.BIOMETRIC_FAILED],
    "corrupted": [cred.UNREADABLE],
    "slow": [],
    "counterfeit": [cred.NOT_AUTHENTIC],
}


@pytest.fixture
async def gate(tmp_path: Path) -> AsyncIterator[tuple[Session, SecurityConfig, bytes]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    upgrade(engine)
    security = SecurityConfig(marsec_level=2, fascn_key_file=str(tmp_path / "fascn.key"))
    key = cred.load_fascn_key(security.fascn_key_file)
    with session_factory(engine)() as session:
        for kind in ("valid", "expired", "canceled"):
            cred.register_driver(
                session, scripted_fascn(kind), key=key, company_code="ACME", name=f"{kind} driver"
            )
        ccl = tmp_path / "ccl.txt"
        ccl.write_text(f"{scripted_fascn('canceled').to_hex()} 02DEC2026\n")
        cred.import_canceled_card_list(session, ccl, key=key, now=NOW - timedelta(hours=1))
        yield session, security, key
    engine.dispose()


async def _run_every_kind(
    tmp_path: Path, session: Session, security: SecurityConfig, key: bytes
) -> dict[str, list[str]]:
    results: dict[str, list[str]] = {}
    cards: asyncio.Queue[CardPresented] = asyncio.Queue()
    with SimulatedCardReader(tmp_path / "ttyTWIC", chunk_delay_s=0.02) as sim:
        config = CardReaderConfig(port=str(sim.link_path))
        reader = CardReader("3", config, cards.put_nowait, lambda health: None)
        task = asyncio.create_task(reader.run(), name="lane 3 card reader")
        try:
            await asyncio.sleep(0.1)
            for kind in EXPECTED:
                await sim.present(kind)
                card = await asyncio.wait_for(cards.get(), 10)
                check = cred.check_credential(
                    session, card, key=key, security=security, company_code="ACME", now=NOW
                )
                cred.record_check(session, check, site="T1", lane="3")
                session.commit()
                results[kind] = [reason.code for reason in check.reasons]
                assert check.valid == (results[kind] == [])
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    return results


async def test_each_card_kind_gets_its_answer(
    tmp_path: Path, gate: tuple[Session, SecurityConfig, bytes]
) -> None:
    assert await _run_every_kind(tmp_path, *gate) == EXPECTED


def _forbidden_forms() -> list[str]:
    forms = []
    for kind in ("valid", "expired", "canceled"):
        fascn = scripted_fascn(kind)
        forms += [fascn.to_hex(), fascn.to_hex().lower(), fascn.to_ascii(), fascn.digits()]
        # the person identifier alone names the holder; the 6-digit credential number is left
        # out: it could turn up by chance in a timestamp's microseconds
        forms += [fascn.person, f"{fascn.system},{fascn.credential}"]
    return forms


async def test_no_full_fascn_in_logs_rows_or_events(
    tmp_path: Path,
    gate: tuple[Session, SecurityConfig, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = gate[0]
    with caplog.at_level(logging.DEBUG):
        await _run_every_kind(tmp_path, *gate)
    assert "**0042" in caplog.text  # the masked form is what the log gets

    stored = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            stored.append(repr(tuple(row)))
    payloads = [event.payload for event in session.scalars(select(OutboxEvent))]
    assert len(payloads) == len(EXPECTED)
    assert any('"credential_last4":"0042"' in payload for payload in payloads)

    haystacks = {"log": caplog.text, "rows": "\n".join(stored), "events": "\n".join(payloads)}
    for where, text in haystacks.items():
        for form in _forbidden_forms():
            assert form not in text, f"a FASC-N part ({len(form)} chars) leaked into the {where}"


def test_driver_expiry_from_the_registry_counts_too(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    upgrade(engine)
    security = SecurityConfig(fascn_key_file=str(tmp_path / "k"))
    key = cred.load_fascn_key(security.fascn_key_file)
    fascn = scripted_fascn("valid")
    try:
        with session_factory(engine)() as session:
            cred.register_driver(
                session, fascn, key=key, company_code="ACME", card_expires_on=date(2020, 1, 1)
            )
            ccl = tmp_path / "ccl.txt"
            ccl.write_text(f"{scripted_fascn('canceled').to_hex()} 02DEC2026\n")
            cred.import_canceled_card_list(session, ccl, key=key, now=NOW)
            card = CardPresented("1", NOW, fascn, None, "match", 250, authenticated=True)
            check = cred.check_credential(
                session, card, key=key, security=security, company_code="ACME", now=NOW
            )
            assert [r.code for r in check.reasons] == [cred.EXPIRED]
            assert "2020-01-01" in check.reasons[0].text
    finally:
        engine.dispose()
