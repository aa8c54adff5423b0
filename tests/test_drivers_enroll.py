"""`gated drivers enroll`: drivers are stored as keyed hashes, bad rows skipped and reported."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from drivers.fascn import from_digits
from gated import models
from gated.cli import main
from gated.db import make_engine, session_factory
from tests.lane_kit import EXAMPLE


def test_enroll_stores_hashes_only(tmp_path: Path, capsys: object) -> None:
    config = tmp_path / "site.yaml"
    config.write_text(
        EXAMPLE.read_text()
        .replace("sqlite:///var/gated.db", f"sqlite:///{tmp_path}/g.db")
        .replace("var/fascn.key", str(tmp_path / "fascn.key"))
    )
    fascn = from_digits("0070" "0001" "310042" "0" "1" "5550001111" "1" "2001" "1")
    enrolment = tmp_path / "drivers.csv"
    enrolment.write_text(
        "fascn,company,name,card_expires_on\n"
        f"{fascn.to_hex()},ACME,Sam Driver,2030-01-31\n"
        "not-a-fascn,ACME,Bad Row,\n"
    )
    assert main(["drivers", "enroll", str(enrolment), "--config", str(config)]) == 0
    engine = make_engine(f"sqlite:///{tmp_path}/g.db")
    try:
        with session_factory(engine)() as session:
            driver = session.scalars(select(models.Driver)).one()
            assert driver.credential_last4 == "0042"
            assert driver.company is not None and driver.company.code == "ACME"
            assert fascn.to_hex() not in driver.fascn_hash
    finally:
        engine.dispose()
    assert fascn.to_hex().encode() not in (tmp_path / "g.db").read_bytes()
