"""Benchmark: import a generated TSA canceled card list and look cards up in it.

    .venv/bin/python bench/ccl.py [--rows 1000000] [--url sqlite:///path]

Prints the import time, lookup latencies (cards on and off the list), peak memory and the
database size. The goal: 1,000,000 rows in under 60 s, each lookup under 1 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from drivers.card_reader import CardPresented
from drivers.fascn import from_digits
from gated.config import SecurityConfig
from gated.credentials import (
    canceled_on,
    check_credential,
    fascn_hash,
    import_canceled_card_list,
    register_driver,
)
from gated.db import make_engine, session_factory, upgrade
from gated.domain import utcnow

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def _digits(rng: random.Random) -> str:
    return f"{rng.randrange(10**32):032d}"


def write_list(path: Path, rows: int, rng: random.Random) -> list[str]:
    """A list in the TSA shape: 200-bit hex FASC-N, a space, a date like 20AUG2012."""
    kept = []
    start = date(2008, 1, 1)
    with path.open("w", encoding="ascii") as out:
        for index in range(rows):
            digits = _digits(rng)
            if index % (rows // 1000 or 1) == 0:
                kept.append(digits)
            day = start + timedelta(days=rng.randrange(6000))
            stamp = f"{day.day:02d}{MONTHS[day.month - 1]}{day.year}"
            out.write(f"{from_digits(digits).to_hex()} {stamp}\n")
    return kept


def _time_checks(session: Session, key: bytes, folder: Path, on_list: list[str]) -> list[float]:
    """Wall time of check_credential (list age, driver, canceled list, access) per card."""
    security = SecurityConfig(marsec_level=1, fascn_key_file=str(folder / "unused.key"))
    valid = from_digits("00700001310042011555000011112001")
    register_driver(session, valid, key=key, company_code="ACME")
    session.commit()
    now = utcnow()
    cards = [from_digits(on_list[0]), valid]
    timings = []
    for index in range(2000):
        card = CardPresented("1", now, cards[index % 2], date(2030, 1, 1), "match", 200,
                             authenticated=True)
        began = time.perf_counter()
        check_credential(session, card, key=key, security=security, company_code="ACME", now=now)
        timings.append((time.perf_counter() - began) * 1000)
        session.expunge_all()
    return sorted(timings)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--url", help="database URL (default: a SQLite file in a temp dir)")
    args = parser.parse_args()
    rng = random.Random(6)
    key = bytes(range(32))

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        listing = folder / "ccl.txt"
        started = time.perf_counter()
        on_list = write_list(listing, args.rows, rng)
        print(f"generated {args.rows} rows ({listing.stat().st_size / 1e6:.1f} MB) "
              f"in {time.perf_counter() - started:.1f} s; peak RSS {peak_rss_mb():.0f} MB")

        url = args.url or f"sqlite:///{folder / 'gate.db'}"
        engine = make_engine(url)
        upgrade(engine)
        with session_factory(engine)() as session:
            rss_before = peak_rss_mb()
            started, started_cpu = time.perf_counter(), time.process_time()
            report = import_canceled_card_list(session, listing, key=key)
            elapsed = time.perf_counter() - started
            print(f"import: {report.rows} rows, {report.bad_rows} bad, {elapsed:.1f} s wall, "
                  f"{time.process_time() - started_cpu:.1f} s CPU "
                  f"({report.rows / elapsed:,.0f} rows/s); peak RSS {rss_before:.0f} -> "
                  f"{peak_rss_mb():.0f} MB; load average {os.getloadavg()[0]:.1f}")
            started, started_cpu = time.perf_counter(), time.process_time()
            again = import_canceled_card_list(session, listing, key=key)
            print(f"re-import (idempotent): {again.added} added, "
                  f"{time.perf_counter() - started:.1f} s wall, "
                  f"{time.process_time() - started_cpu:.1f} s CPU")

        with session_factory(engine)() as session:
            hashes = [fascn_hash(key, from_digits(d)) for d in on_list]
            hashes += [fascn_hash(key, from_digits(_digits(rng))) for _ in range(len(on_list))]
            canceled_on(session, hashes[0])  # the first query opens the connection
            timings = []
            cpu_timings = []
            hits = 0
            for index in range(args.lookups):
                hashed = hashes[index % len(hashes)]
                began, began_cpu = time.perf_counter(), time.thread_time()
                hits += canceled_on(session, hashed) is not None
                cpu_timings.append((time.thread_time() - began_cpu) * 1000)
                timings.append((time.perf_counter() - began) * 1000)
                session.expunge_all()  # no identity-map shortcut: every lookup hits the table
            print(f"lookups: {len(timings)} ({hits} on the list)")
            for name, values in (("wall", timings), ("cpu", cpu_timings)):
                values.sort()
                print(f"  {name}: mean {statistics.fmean(values):.3f} ms, median "
                      f"{values[len(values) // 2]:.3f} ms, p99 "
                      f"{values[int(len(values) * 0.99)]:.3f} ms, max {values[-1]:.3f} ms, "
                      f"over 1 ms: {sum(v > 1 for v in values)}")
            checks = _time_checks(session, key, folder, on_list)
            print(f"full credential checks: {len(checks)}, mean {statistics.fmean(checks):.3f} ms,"
                  f" p99 {checks[int(len(checks) * 0.99)]:.3f} ms, max {checks[-1]:.3f} ms")
        if url.startswith("sqlite"):
            database = Path(url.split("///", 1)[1])
            files = [database, database.with_name(database.name + "-wal")]
            size = sum(f.stat().st_size for f in files if f.exists()) / 1e6
            print(f"database file with its WAL: {size:.0f} MB")
        engine.dispose()
    print(f"peak RSS of the whole run: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
