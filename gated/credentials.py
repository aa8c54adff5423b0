"""Checking a driver's TWIC credential: expiry, canceled card list, biometric, facility access.

Privacy: the FASC-N lives only in memory. The database keeps its keyed hash (HMAC-SHA256 with
the site key from `security.fascn_key_file`) and the last four digits of the credential number;
logs, events and the kiosk get no more than that.

Known shortcoming: card authentication is the reader's verdict (`CardPresented.authenticated`);
the daemon does not verify the CHUID signature itself, which needs the card's CHUID and the TSA
signing certificates.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from drivers.card_reader import BIOMETRIC_MATCH, BIOMETRIC_NO_MATCH, CardPresented
from drivers.fascn import HEX_LENGTH, Fascn, FascnError, decode, hex_to_digits
from gated.config import SecurityConfig
from gated.domain import CredentialCheck, Reason, utcnow
from gated.models import (
    CanceledCard,
    CanceledCardImport,
    CredentialCheckRow,
    Driver,
    TruckingCompany,
)
from gated.outbox import add_event

_LOGGER = logging.getLogger(__name__)

UNREADABLE = "unreadable_card"
NOT_AUTHENTIC = "card_not_authentic"
EXPIRED = "credential_expired"
CANCELED = "credential_canceled"
BIOMETRIC_FAILED = "biometric_failed"
NOT_AUTHORISED = "not_authorised_here"
CCL_STALE = "ccl_stale"

# how old the canceled card list may be: weekly at MARSEC 1, daily at higher levels
CCL_MAX_AGE = {1: timedelta(days=7), 2: timedelta(days=1), 3: timedelta(days=1)}
KEY_BYTES = 32
IMPORT_BATCH = 20000


# --- the keyed hash ----------------------------------------------------------------------------


def load_fascn_key(path: str | Path) -> bytes:
    """The site's FASC-N hash key; a new random key is written (mode 0600) if the file is absent.

    Losing the key makes every stored hash unmatchable (drivers must be registered again and the
    canceled card list imported again), so the file belongs in the site backup.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(KEY_BYTES)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key.hex() + "\n")
        _LOGGER.warning("FASC-N hash key %s did not exist: created a new one", path)
        return key
    if path.stat().st_mode & 0o077:
        _LOGGER.warning("FASC-N hash key %s is readable by others: chmod 600 it", path)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"FASC-N hash key {path} does not hold hex digits") from None
    if len(key) < 16:
        raise ValueError(f"FASC-N hash key {path} is shorter than 16 bytes")
    return key


def fascn_hash(key: bytes, fascn: Fascn) -> str:
    """The keyed hash the database knows a credential by (64 hex digits)."""
    return digits_hash(key, fascn.digits())


def digits_hash(key: bytes, digits: str) -> str:
    """`fascn_hash` of a FASC-N given by its 32 digits."""
    return hmac.digest(key, digits.encode("ascii"), "sha256").hex()


# --- the canceled card list --------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_CCL_LINE = re.compile(r"^\s*(?P<fascn>\S.*?)[\s,;|]+(?P<date>\d{1,2}[A-Za-z]{3}\d{4})\s*$")


class CclImportError(Exception):
    """The list as a whole was refused; nothing was imported."""


@dataclass
class CclImportReport:
    rows: int = 0
    added: int = 0
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=8192)
def parse_ccl_date(text: str) -> date:
    """A TSA list date such as 20AUG2012."""
    if not re.fullmatch(r"\d{1,2}[A-Za-z]{3}\d{4}", text):
        raise ValueError("not a date like 20AUG2012")
    month = _MONTHS.get(text[-7:-4].upper())
    if month is None:
        raise ValueError(f"unknown month {text[-7:-4]!r}")
    return date(int(text[-4:]), month, int(text[:-7]))


def parse_ccl(lines: Iterable[str]) -> Iterator[tuple[int, str | None, date | None, str]]:
    """Yield (line number, FASC-N digits, cancellation date, problem) per non-blank line.

    A problem names what is wrong, never the line's content (it may hold a FASC-N).
    """
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if len(parts) == 2 and len(parts[0]) == HEX_LENGTH:
            fascn_text, date_text = parts  # the common shape, without the regular expression
            convert: Callable[[str], str] = hex_to_digits
        else:
            convert = _any_form_digits
            if not parts or parts[0].startswith("#"):
                continue
            match = _CCL_LINE.match(line)
            if match is None:
                yield number, None, None, f"line {number}: not a FASC-N followed by a date"
                continue
            fascn_text, date_text = match["fascn"], match["date"]
        try:
            digits = convert(fascn_text)
        except FascnError as exc:
            yield number, None, None, f"line {number}: FASC-N: {exc}"
            continue
        try:
            canceled_on = parse_ccl_date(date_text)
        except ValueError as exc:
            yield number, None, None, f"line {number}: date: {exc}"
            continue
        yield number, digits, canceled_on, ""


def _any_form_digits(text: str) -> str:
    return decode(text).digits()


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    # Core, not the ORM's bulk path: a million rows must go in quickly
    table = cast(Table, CanceledCard.__table__)
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        statement: Any = pg.on_conflict_do_update(
            index_elements=["fascn_hash"], set_={"canceled_on": pg.excluded.canceled_on}
        )
    else:
        lite = sqlite.insert(table)
        statement = lite.on_conflict_do_update(
            index_elements=["fascn_hash"], set_={"canceled_on": lite.excluded.canceled_on}
        )
    session.execute(statement, rows)


def import_canceled_card_list(
    session: Session, path: str | Path, *, key: bytes, now: datetime | None = None
) -> CclImportReport:
    """Import a TSA canceled card list; importing the same list again changes nothing.

    Bad rows are reported and skipped; a list without one good row is refused whole (it would
    otherwise count as a fresh list). Entries are never removed: a card once canceled stays so.
    Known shortcoming: `canceled_card` is a rowid table on SQLite; WITHOUT ROWID (a migration)
    would make the file half the size and the import about a quarter faster on its insert side.
    """
    path = Path(path)
    report = CclImportReport()
    before = session.scalar(select(func.count()).select_from(CanceledCard)) or 0
    digest = hashlib.sha256()
    batch: dict[str, dict[str, Any]] = {}
    if session.get_bind().dialect.name == "sqlite":
        # random keys touch the whole index: a bigger page cache for this connection (64 MB)
        session.execute(text("PRAGMA cache_size=-65536"))
    try:
        with path.open("rb") as raw:
            for block in iter(lambda: raw.read(1 << 20), b""):
                digest.update(block)
        with path.open(encoding="ascii", errors="replace") as lines:
            for _number, digits, canceled_on, problem in parse_ccl(lines):
                if digits is None:
                    report.bad_rows += 1
                    report.problems.append(problem)
                    continue
                report.rows += 1
                hashed = digits_hash(key, digits)
                batch[hashed] = {"fascn_hash": hashed, "canceled_on": canceled_on}
                if len(batch) >= IMPORT_BATCH:
                    _upsert(session, [batch[h] for h in sorted(batch)])
                    batch.clear()
    except OSError as exc:
        session.rollback()
        raise CclImportError(f"cannot read: {exc}") from exc
    if report.rows == 0:
        session.rollback()
        raise CclImportError(f"no valid entry in {report.bad_rows} bad row(s)")
    if batch:
        _upsert(session, [batch[h] for h in sorted(batch)])

    after = session.scalar(select(func.count()).select_from(CanceledCard)) or 0
    report.added = after - before
    session.add(
        CanceledCardImport(
            imported_at=now or utcnow(),
            source=f"{path.name} sha256:{digest.hexdigest()}",
            rows=report.rows,
            bad_rows=report.bad_rows,
        )
    )
    session.commit()
    _LOGGER.info(
        "canceled card list %s: %d rows (%d new), %d bad rows",
        path.name, report.rows, report.added, report.bad_rows,
    )
    return report


@dataclass(frozen=True)
class CclStatus:
    imported_at: datetime | None
    max_age: timedelta
    stale: bool
    text: str


def ccl_status(session: Session, security: SecurityConfig, now: datetime) -> CclStatus:
    """Is the canceled card list fresh enough for the current security level?"""
    max_age = CCL_MAX_AGE[security.marsec_level]
    imported_at = session.scalar(select(func.max(CanceledCardImport.imported_at)))
    if imported_at is None:
        return CclStatus(None, max_age, True, "no canceled card list has been imported")
    if imported_at.tzinfo is None:  # SQLite hands back naive UTC
        imported_at = imported_at.replace(tzinfo=now.tzinfo)
    age = now - imported_at
    if age > max_age:
        hours = age.total_seconds() / 3600
        return CclStatus(
            imported_at,
            max_age,
            True,
            f"canceled card list is {hours:.0f} h old, MARSEC {security.marsec_level} "
            f"allows {max_age.total_seconds() / 3600:.0f} h",
        )
    return CclStatus(imported_at, max_age, False, "canceled card list is current")


def canceled_on(session: Session, hashed: str) -> date | None:
    entry = session.get(CanceledCard, hashed)
    return entry.canceled_on if entry is not None else None


# --- drivers -----------------------------------------------------------------------------------


def register_driver(
    session: Session,
    fascn: Fascn,
    *,
    key: bytes,
    company_code: str,
    name: str | None = None,
    card_expires_on: date | None = None,
) -> Driver:
    """Register (or move) a driver to a trucking company; the caller commits."""
    company = session.scalar(select(TruckingCompany).where(TruckingCompany.code == company_code))
    if company is None:
        company = TruckingCompany(code=company_code, name=company_code)
        session.add(company)
    hashed = fascn_hash(key, fascn)
    driver = session.scalar(select(Driver).where(Driver.fascn_hash == hashed))
    if driver is None:
        driver = Driver(fascn_hash=hashed, credential_last4=fascn.credential_last4)
        session.add(driver)
    driver.company = company
    driver.name = name
    driver.card_expires_on = card_expires_on
    session.flush()
    return driver


# --- the check ---------------------------------------------------------------------------------


def check_credential(
    session: Session,
    card: CardPresented,
    *,
    key: bytes,
    security: SecurityConfig,
    company_code: str | None,
    now: datetime,
) -> CredentialCheck:
    """Check a presented card; the answer lists every reason it is not valid."""
    reasons: list[Reason] = []
    ccl = ccl_status(session, security, now)
    if ccl.stale:
        reasons.append(Reason(CCL_STALE, f"{ccl.text}: no automatic pass"))

    if card.fascn is None or card.unreadable is not None:
        reasons.insert(0, Reason(UNREADABLE, f"card unreadable: {card.unreadable or 'no data'}"))
        return CredentialCheck(False, tuple(reasons), None, None, checked_at=now)

    hashed = fascn_hash(key, card.fascn)
    driver = session.scalar(select(Driver).where(Driver.fascn_hash == hashed))
    if card.authenticated is False:
        reasons.append(Reason(NOT_AUTHENTIC, "card failed the reader's authentication"))
    elif card.authenticated is None:
        reasons.append(Reason(NOT_AUTHENTIC, "the reader did not authenticate the card"))
    reasons.extend(_expiry_reasons(card, driver, now.date()))

    canceled = canceled_on(session, hashed)
    if canceled is not None:
        reasons.append(Reason(CANCELED, f"card is on the canceled card list since {canceled}"))

    if card.biometric_status == BIOMETRIC_NO_MATCH:
        score = f" (score {card.biometric_score})" if card.biometric_score is not None else ""
        reasons.append(Reason(BIOMETRIC_FAILED, f"fingerprint did not match the card{score}"))
    elif card.biometric_status != BIOMETRIC_MATCH and security.biometric_required:
        reasons.append(Reason(BIOMETRIC_FAILED, "no biometric verification was made"))

    reasons.extend(_access_reasons(driver, company_code))

    # the card's own reasons first, in the order a clerk checks them; the list's state last
    reasons.sort(key=lambda reason: reason.code == CCL_STALE)
    check = CredentialCheck(
        valid=not any(reason.blocking for reason in reasons),
        reasons=tuple(reasons),
        fascn_hash=hashed,
        credential_last4=card.fascn.credential_last4,
        biometric_status=card.biometric_status,
        biometric_score=card.biometric_score,
        checked_at=now,
    )
    _LOGGER.info(
        "lane %s: credential **%s %s%s",
        card.lane,
        check.credential_last4,
        "valid" if check.valid else "invalid: ",
        ", ".join(reason.code for reason in check.reasons),
    )
    return check


def _expiry_reasons(card: CardPresented, driver: Driver | None, today: date) -> list[Reason]:
    known = [day for day in (card.expires_on, driver and driver.card_expires_on) if day]
    if not known:
        return [Reason(EXPIRED, "card expiry date unknown (reader and registry have none)")]
    expired_on = min(known)
    if expired_on < today:
        return [Reason(EXPIRED, f"card expired on {expired_on}")]
    return []


def _access_reasons(driver: Driver | None, company_code: str | None) -> list[Reason]:
    if driver is None:
        return [Reason(NOT_AUTHORISED, "driver is not registered at this terminal")]
    if driver.company is None:
        return [Reason(NOT_AUTHORISED, "driver is registered with no trucking company")]
    if company_code is None:
        return [Reason(NOT_AUTHORISED, "the visit has no trucking company to check against")]
    if driver.company.code != company_code:
        return [
            Reason(
                NOT_AUTHORISED,
                f"driver drives for {driver.company.code}, the visit is {company_code}'s",
            )
        ]
    return []


# --- recording ---------------------------------------------------------------------------------


def credential_event(check: CredentialCheck) -> dict[str, Any]:
    """What a credential check may tell the TOS and the kiosk: no FASC-N, no hash."""
    return {
        "valid": check.valid,
        "credential_last4": check.credential_last4,
        "biometric_status": check.biometric_status,
        "reasons": [{"code": r.code, "text": r.text} for r in check.reasons],
        "checked_at": check.checked_at.isoformat(),
    }


def record_check(
    session: Session,
    check: CredentialCheck,
    *,
    site: str,
    lane: str,
    transaction_id: int | None = None,
) -> CredentialCheckRow:
    """Store a check and queue its event in the caller's transaction (the caller commits)."""
    row = CredentialCheckRow(
        transaction_id=transaction_id,
        lane=lane,
        fascn_hash=check.fascn_hash,
        credential_last4=check.credential_last4,
        valid=check.valid,
        reasons=[{"code": r.code, "text": r.text} for r in check.reasons],
        biometric_status=check.biometric_status,
        biometric_score=check.biometric_score,
        checked_at=check.checked_at,
    )
    session.add(row)
    add_event(
        session,
        site=site,
        topic=f"lanes/{lane}/credential",
        lane=lane,
        body={"kind": "credential_checked", **credential_event(check)},
    )
    return row
