"""Normalising and deduplicating tag reports, with the clock moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rfid import Deduplicator, TagReportNormaliser

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC).timestamp()


def tag(epc: object = b"3005fb63ac1f3841ec880467", **fields: object) -> dict[str, object]:
    return {"EPC": epc, "AntennaID": 1, "PeakRSSI": -60, **fields}


def test_dedupe_window_per_epc_and_antenna() -> None:
    dedupe = Deduplicator(window_s=2.0)
    assert dedupe.admit((b"a", 1), 100.0)
    assert not dedupe.admit((b"a", 1), 101.9)
    assert dedupe.admit((b"a", 2), 101.9)  # another antenna is another read
    assert dedupe.admit((b"b", 1), 101.9)
    assert dedupe.admit((b"a", 1), 102.0)  # the window has passed
    assert not dedupe.admit((b"a", 1), 103.0)


def test_dedupe_forgets_old_keys() -> None:
    dedupe = Deduplicator(window_s=1.0)
    for i in range(100):
        dedupe.admit((bytes([i]), 1), 0.0)
    dedupe.admit((b"new", 1), 50.0)
    assert len(dedupe) == 1


def test_zero_window_passes_every_read() -> None:
    dedupe = Deduplicator(window_s=0.0)
    assert all(dedupe.admit((b"a", 1), 5.0) for _ in range(3))


def test_normalised_read() -> None:
    normaliser = TagReportNormaliser("portal-1", dedupe_window_s=1.0)
    stamp = int(NOW * 1_000_000) - 250_000
    read = normaliser.normalise(
        tag(FirstSeenTimestampUTC=stamp, TagSeenCount=3), NOW, monotonic=10.0
    )
    assert read is not None
    assert read.epc == "3005FB63AC1F3841EC880467"
    assert (read.reader, read.antenna, read.rssi, read.seen_count) == ("portal-1", 1, -60.0, 3)
    assert read.seen_at == datetime.fromtimestamp(NOW, UTC)
    assert read.reader_time == datetime.fromtimestamp(stamp / 1_000_000, UTC)
    assert normaliser.normalise(tag(), NOW, monotonic=10.5) is None
    assert normaliser.stats.duplicates == 1 and normaliser.stats.emitted == 1


@pytest.mark.parametrize(
    "fields, counter",
    [
        ({"FirstSeenTimestampUTC": 946684800_000_000}, "clock_rejected"),  # year 2000
        ({"FirstSeenTimestampUptime": 5_000_000}, "uptime_timestamps"),
    ],
)
def test_reader_clock_not_trusted_blindly(fields: dict[str, object], counter: str) -> None:
    normaliser = TagReportNormaliser("portal-1", dedupe_window_s=0.0)
    read = normaliser.normalise(tag(**fields), NOW, monotonic=1.0)
    assert read is not None
    assert read.reader_time is None
    assert read.seen_at == datetime.fromtimestamp(NOW, UTC)
    assert getattr(normaliser.stats, counter) == 1


def test_long_epc_and_missing_antenna() -> None:
    normaliser = TagReportNormaliser("crane", dedupe_window_s=0.0, default_antenna=3)
    read = normaliser.normalise(
        {"EPC": b"1fb41f712ac9c37ab79d618173188324001a"}, NOW, monotonic=1.0
    )
    assert read is not None
    assert read.epc == "1FB41F712AC9C37AB79D618173188324001A"
    assert read.antenna == 3 and read.rssi is None


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"EPC": None},
        {"EPC": b""},
        {"EPC": b"zz11"},
        {"EPC": 12},
        {"EPC": b"ab", "AntennaID": "x"},
        ["not", "a", "dict"],
    ],
)
def test_bad_reports_are_counted_not_raised(bad: Any) -> None:
    normaliser = TagReportNormaliser("portal-1", dedupe_window_s=0.0)
    assert normaliser.normalise(bad, NOW, monotonic=1.0) is None
    assert normaliser.stats.bad_reports == 1
