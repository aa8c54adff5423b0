"""Credential checks: every reason, the canceled card list, the key file, the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from drivers.card_reader import BIOMETRIC_MATCH, BIOMETRIC_NO_MATCH, CardPresented
from drivers.fascn import Fascn, from_digits
from gated import credentials as cred
from gated.cli import main
from gated.config import SecurityConfig
from gated.db import make_engine, session_factory, upgrade
from gated.models import CanceledCard, CanceledCardImport, Driver
from tests.servers import Postgres

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
KEY = bytes(range(32))
GOOD = from_digits("0070" "0001" "310042" "0" "1" "5550001111" "1" "2001" "1")
OTHER = from_digits("0070" "0001" "777777" "0" "1" "5550009999" "1" "2001" "1")


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    upgrade(engine)
    with session_factory(engine)() as db:
        yield db
    engine.dispose()


@pytest.fixture
def security(tmp_path: Path) -> SecurityConfig:
    return SecurityConfig(marsec_level=1, fascn_key_file=str(tmp_path / "fascn.key"))


def _card(
    fascn: Fascn | None = GOOD,
    *,
    expires_on: date | None = date(2029, 1, 1),
    biometric: str | None = BIOMETRIC_MATCH,
    unreadable: str | None = None,
    authenticated: bool | None = True,
) -> CardPresented:
    return CardPresented("2", NOW, fascn, expires_on, biometric, 200, unreadable, authenticated)


def _fresh_list(session: Session, tmp_path: Path, *entries: str) -> None:
    ccl = tmp_path / "ccl.txt"
    ccl.write_text("\n".join([*entries, f"{OTHER.to_hex()} 01JAN2020"]) + "\n")
    cred.import_canceled_card_list(session, ccl, key=KEY, now=NOW - timedelta(hours=2))


def _check(
    session: Session, security: SecurityConfig, card: CardPresented, company: str | None = "ACME"
) -> tuple[bool, list[str]]:
    check = cred.check_credential(
        session, card, key=KEY, security=security, company_code=company, now=NOW
    )
    return check.valid, [reason.code for reason in check.reasons]


def test_valid_card_of_a_registered_driver(session: Session, security: SecurityConfig,
                                           tmp_path: Path) -> None:
    _fresh_list(session, tmp_path)
    cred.register_driver(session, GOOD, key=KEY, company_code="ACME")
    check = cred.check_credential(
        session, _card(), key=KEY, security=security, company_code="ACME", now=NOW
    )
    assert check.valid and check.reasons == ()
    assert check.credential_last4 == "0042"
    assert check.fascn_hash == cred.fascn_hash(KEY, GOOD) and len(check.fascn_hash) == 64


def test_every_reason_at_once(session: Session, security: SecurityConfig, tmp_path: Path) -> None:
    cred.register_driver(session, GOOD, key=KEY, company_code="OTHERCO")
    _fresh_list(session, tmp_path, f"{GOOD.to_ascii()}, 03DEC2026")
    card = _card(expires_on=date(2026, 12, 1), biometric=BIOMETRIC_NO_MATCH, authenticated=False)
    assert _check(session, security, card) == (
        False,
        [
            cred.NOT_AUTHENTIC,
            cred.EXPIRED,
            cred.CANCELED,
            cred.BIOMETRIC_FAILED,
            cred.NOT_AUTHORISED,
        ],
    )


@pytest.mark.parametrize(
    ("card", "company", "code"),
    [
        (_card(expires_on=date(2026, 12, 3)), "ACME", cred.EXPIRED),
        (_card(expires_on=None), "ACME", cred.EXPIRED),
        (_card(biometric=BIOMETRIC_NO_MATCH), "ACME", cred.BIOMETRIC_FAILED),
        (_card(biometric="not_performed"), "ACME", cred.BIOMETRIC_FAILED),
        (_card(), "ELSEWHERE", cred.NOT_AUTHORISED),
        (_card(), None, cred.NOT_AUTHORISED),
        (_card(OTHER), "ACME", cred.CANCELED),
        (_card(authenticated=False), "ACME", cred.NOT_AUTHENTIC),
        (_card(authenticated=None), "ACME", cred.NOT_AUTHENTIC),
        (_card(None, unreadable="frame failed its block check"), "ACME", cred.UNREADABLE),
    ],
)
def test_single_reasons(session: Session, security: SecurityConfig, tmp_path: Path,
                        card: CardPresented, company: str | None, code: str) -> None:
    _fresh_list(session, tmp_path)
    cred.register_driver(session, GOOD, key=KEY, company_code="ACME")
    cred.register_driver(session, OTHER, key=KEY, company_code="ACME")
    valid, codes = _check(session, security, card, company)
    assert not valid and codes == [code]


def test_unregistered_driver_is_not_authorised(session: Session, security: SecurityConfig,
                                               tmp_path: Path) -> None:
    _fresh_list(session, tmp_path)
    assert _check(session, security, _card()) == (False, [cred.NOT_AUTHORISED])


def test_stale_or_missing_list_refuses_automatic_pass(session: Session, tmp_path: Path) -> None:
    cred.register_driver(session, GOOD, key=KEY, company_code="ACME")
    level1 = SecurityConfig(marsec_level=1, fascn_key_file=str(tmp_path / "k"))
    level2 = SecurityConfig(marsec_level=2, fascn_key_file=str(tmp_path / "k"))
    assert _check(session, level1, _card()) == (False, [cred.CCL_STALE])

    ccl = tmp_path / "ccl.txt"
    ccl.write_text(f"{OTHER.to_hex()} 01JAN2020\n")
    cred.import_canceled_card_list(session, ccl, key=KEY, now=NOW - timedelta(days=3))
    assert _check(session, level1, _card()) == (True, [])
    valid, codes = _check(session, level2, _card())
    assert (valid, codes) == (False, [cred.CCL_STALE])
    status = cred.ccl_status(session, level2, NOW)
    assert "72 h old" in status.text and "allows 24 h" in status.text


def test_import_is_idempotent_and_reports_bad_rows(session: Session, tmp_path: Path) -> None:
    ccl = tmp_path / "ccl.txt"
    bad_lrc = GOOD.to_hex()[:-1] + ("0" if GOOD.to_hex()[-1] != "0" else "1")
    ccl.write_text(
        "# TSA canceled card list\n"
        f"{GOOD.to_hex()} 20AUG2012\n"
        f"{OTHER.to_ascii()},05MAR2024\n"
        f"{bad_lrc} 20AUG2012\n"
        f"{GOOD.to_hex()} 31XYZ2012\n"
        "nonsense\n"
        "\n"
    )
    first = cred.import_canceled_card_list(session, ccl, key=KEY, now=NOW)
    assert (first.rows, first.added, first.bad_rows) == (2, 2, 3)
    assert any(p.startswith("line 4: FASC-N: ") for p in first.problems)
    assert not any(GOOD.to_hex()[:20] in p for p in first.problems)
    second = cred.import_canceled_card_list(session, ccl, key=KEY, now=NOW)
    assert (second.rows, second.added, second.bad_rows) == (2, 0, 3)
    assert session.scalar(select(func.count()).select_from(CanceledCard)) == 2
    assert session.scalar(select(func.count()).select_from(CanceledCardImport)) == 2
    assert cred.canceled_on(session, cred.fascn_hash(KEY, GOOD)) == date(2012, 8, 20)


def test_list_without_a_good_row_is_refused(session: Session, tmp_path: Path) -> None:
    ccl = tmp_path / "ccl.txt"
    ccl.write_text("garbage\nmore garbage 01JAN2020\n")
    with pytest.raises(cred.CclImportError, match="no valid entry"):
        cred.import_canceled_card_list(session, ccl, key=KEY, now=NOW)
    assert session.scalar(select(func.count()).select_from(CanceledCardImport)) == 0


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "fascn.key"
    key = cred.load_fascn_key(path)
    assert len(key) == 32
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert cred.load_fascn_key(path) == key
    assert cred.fascn_hash(key, GOOD) != cred.fascn_hash(KEY, GOOD)


def test_cli_ccl_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(
        f"""
site_id: T1
gate_id: G
database: {{url: "sqlite:///{tmp_path / 'gate.db'}"}}
mqtt: {{host: 127.0.0.1}}
kiosk: {{secret_file: {tmp_path / 'kiosk.secret'}}}
images: {{directory: {tmp_path / 'images'}}}
security: {{fascn_key_file: {tmp_path / 'fascn.key'}}}
lanes:
  - id: "1"
    direction: in
    rpm: {{transport: modbus, host: 127.0.0.1, port: 5020}}
    plc: {{host: 127.0.0.1}}
"""
    )
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert main(["ccl", "status", "--config", str(config)]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["stale"] is True
    ccl = tmp_path / "ccl.txt"
    ccl.write_text(f"{GOOD.to_hex()} 20AUG2012\nbad row\n")
    capsys.readouterr()
    assert main(["ccl", "import", str(ccl), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "1 rows imported (1 new), 1 bad rows" in out
    assert "line 2: not a FASC-N followed by a date" in out
    assert (tmp_path / "fascn.key").exists()

    assert main(["ccl", "status", "--config", str(config)]) == 0
    fresh = json.loads(capsys.readouterr().out)
    assert fresh["stale"] is False and fresh["max_age_hours"] == 168

    args = ["credential", "register", GOOD.to_hex(), "--company", "ACME", "--config", str(config)]
    assert main([*args, "--expires", "2029-02-01", "--name", "J. Doe"]) == 0
    assert "0070-0001-**0042 registered with ACME" in capsys.readouterr().out
    assert main([*args, "--expires", "next year"]) == 1
    assert main(["credential", "register", "0032,bad", *args[3:]]) == 1
    engine = make_engine(f"sqlite:///{tmp_path / 'gate.db'}")
    try:
        with session_factory(engine)() as db:
            driver = db.scalar(select(Driver))
            assert driver is not None and driver.company is not None
            assert (driver.company.code, driver.credential_last4) == ("ACME", "0042")
            assert driver.card_expires_on == date(2029, 2, 1)
            site_key = cred.load_fascn_key(tmp_path / "fascn.key")
            assert driver.fascn_hash == cred.fascn_hash(site_key, GOOD)
    finally:
        engine.dispose()


def test_biometric_can_be_optional_but_a_mismatch_never_passes(
    session: Session, tmp_path: Path
) -> None:
    _fresh_list(session, tmp_path)
    cred.register_driver(session, GOOD, key=KEY, company_code="ACME")
    relaxed = SecurityConfig(fascn_key_file=str(tmp_path / "k"), biometric_required=False)
    assert _check(session, relaxed, _card(biometric="not_performed")) == (True, [])
    assert _check(session, relaxed, _card(biometric=BIOMETRIC_NO_MATCH)) == (
        False,
        [cred.BIOMETRIC_FAILED],
    )


def test_import_and_check_on_postgresql(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.create_database(f"ccl_{tmp_path.name.lower().replace('-', '_')}"[:60])
    engine = make_engine(url)
    upgrade(engine)
    security = SecurityConfig(fascn_key_file=str(tmp_path / "k"))
    ccl = tmp_path / "ccl.txt"
    ccl.write_text(f"{GOOD.to_hex()} 20AUG2012\n{OTHER.to_ascii()} 01JAN2020\n{GOOD.to_hex()} x\n")
    try:
        with session_factory(engine)() as db:
            first = cred.import_canceled_card_list(db, ccl, key=KEY, now=NOW)
            again = cred.import_canceled_card_list(db, ccl, key=KEY, now=NOW)
            assert (first.rows, first.added, first.bad_rows) == (2, 2, 1)
            assert (again.rows, again.added) == (2, 0)
            cred.register_driver(db, GOOD, key=KEY, company_code="ACME")
            assert _check(db, security, _card()) == (False, [cred.CANCELED])
            assert cred.ccl_status(db, security, NOW + timedelta(days=8)).stale
    finally:
        engine.dispose()
