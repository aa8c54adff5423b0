"""Real RPM recordings: the ASCII daily files and the N42.42 examples, and `gated rpm analyze`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from drivers import n42
from drivers.rpm_lines import OccupancyTracker, parse_line
from gated.cli import main
from gated.commands.rpm import analyze_lines

TIMESTAMP = re.compile(r",\d{4}-\d{2}-\d{2} [\d:.]+ [+-]\d{2}\r?$")


@pytest.fixture
def rpm_dir(shared_data: Path) -> Path:
    return shared_data / "field" / "rpm"


def test_clean_hour_has_25_occupancies_and_no_alarm(rpm_dir: Path) -> None:
    found, tracker = analyze_lines(rpm_dir / "S2-C0-NONE.csv", sigma=6.0)

    assert [o.occupancy_id for o in found] == list(range(17, 42))
    assert tracker.bad_lines == 0
    for occupancy in found:
        assert occupancy.complete and not occupancy.faults
        assert not occupancy.alarm, occupancy.to_json()
        assert occupancy.gamma_samples >= 50
        assert max(occupancy.peak_gamma_sigma) < 6.0
        assert occupancy.to_scan("1").clean


def test_alarmed_hour_has_25_occupancies_all_flagged_by_monitor_and_daemon(
    rpm_dir: Path,
) -> None:
    found, _ = analyze_lines(rpm_dir / "S2-C3-NORM2.csv", sigma=6.0)

    assert [o.occupancy_id for o in found] == list(range(109, 134))
    for occupancy in found:
        assert occupancy.monitor_gamma_alarm and occupancy.gamma_alarm
        assert not occupancy.monitor_neutron_alarm and not occupancy.neutron_alarm
        assert not occupancy.to_scan("1").clean


def test_stream_without_timestamps_and_with_lf_gives_the_same_occupancies(
    rpm_dir: Path, tmp_path: Path
) -> None:
    source = (rpm_dir / "S2-C3-NORM2.csv").read_text(encoding="ascii")
    stripped = tmp_path / "stripped.txt"
    stripped.write_text(
        "\n".join(TIMESTAMP.sub("", line) for line in source.splitlines()) + "\n"
    )

    with_time, _ = analyze_lines(rpm_dir / "S2-C3-NORM2.csv", sigma=6.0)
    without_time, tracker = analyze_lines(stripped, sigma=6.0)

    assert tracker.bad_lines == 0
    assert [o.occupancy_id for o in without_time] == [o.occupancy_id for o in with_time]
    assert [o.peak_gamma_sigma for o in without_time] == [o.peak_gamma_sigma for o in with_time]
    assert all(o.started_at is None for o in without_time)


def test_corrupt_and_truncated_stream_is_counted_and_fails_closed(rpm_dir: Path) -> None:
    lines = (rpm_dir / "S2-C0-NONE.csv").read_text(encoding="ascii").splitlines()
    first_gx = next(i for i, line in enumerate(lines) if line.startswith("GX"))
    first_gs = next(i for i, line in enumerate(lines) if line.startswith("GS"))
    damaged = lines[: first_gs + 10] + ["GS,00@#77,000077", "\x00\x00garbage"]
    damaged += lines[first_gs + 10 : first_gx] + lines[first_gx:]
    second_gs = next(i for i, line in enumerate(damaged) if i > first_gx + 5 and "GS," in line)
    damaged = damaged[: second_gs + 20]  # the file ends in the middle of the next occupancy

    tracker = OccupancyTracker(6.0)
    found = [o for i, text in enumerate(damaged) if (o := tracker.feed_text(text, i))]
    cut = tracker.cut("stream_ended")

    assert tracker.bad_lines == 2
    assert found[0].occupancy_id == 17 and "corrupt_data" in found[0].faults
    assert not found[0].to_scan("1").clean
    assert cut is not None and not cut.complete and "stream_ended" in cut.faults


def test_fault_and_tamper_records_mark_the_occupancy() -> None:
    tracker = OccupancyTracker(6.0)
    for text in ["GB,000380,000380,000400,000370", "NB,000003,000000,000002,000000",
                 "GH,000900,000380,000400,000370", "TT,000000,000000,000000,000000"]:
        tracker.feed_text(text)
    assert tracker.faults == {"gamma_high_background"} and tracker.tamper
    for _ in range(6):
        tracker.feed_text("GS,000076,000076,000080,000074")
    occupancy = tracker.feed_text("GX,000001,006683,000000,000000")
    assert occupancy is not None
    assert occupancy.faults == ["gamma_high_background", "tamper"]
    tracker.feed_text("GB,000380,000380,000400,000370")
    tracker.feed_text("TC,000000,000000,000000,000000")
    assert not tracker.faults and not tracker.tamper


def test_parse_line_timestamp_and_errors() -> None:
    line = parse_line("GB,000188,000206,000262,000243,2016-05-31 09:30:00.974 -07\r\n", 3)
    assert line is not None and line.kind == "GB" and line.counts() == (188, 206, 262, 243)
    assert line.at is not None and str(line.at.utcoffset()) == "-1 day, 17:00:00"
    assert parse_line("  \r\n") is None
    with pytest.raises(ValueError):
        parse_line("<garbage>")


def test_n42_annex_d_gross_count_portal(rpm_dir: Path) -> None:
    (occupancy,) = n42.occupancies(n42.load(rpm_dir / "Annex_D_alarmed_n42.xml"), 6.0)
    assert occupancy.gamma_samples == 3 and occupancy.neutron_samples == 3
    assert occupancy.monitor_gamma_alarm and occupancy.monitor_neutron_alarm
    assert occupancy.faults == ["monitor: Overspeed (Warning)"]
    assert len(occupancy.gamma_background or ()) == 4
    assert len(occupancy.neutron_background or ()) == 2


def test_n42_annex_e_spectroscopic_portal(rpm_dir: Path) -> None:
    (occupancy,) = n42.occupancies(n42.load(rpm_dir / "Annex_E.n42"), 6.0)
    assert occupancy.monitor_gamma_alarm and not occupancy.monitor_neutron_alarm
    assert occupancy.nuclides == ["Co-57", "Cs-137"]
    assert occupancy.gamma_samples == 2
    assert occupancy.gamma_background is not None


def test_n42_2006_passthrough(rpm_dir: Path) -> None:
    (occupancy,) = n42.occupancies(n42.load(rpm_dir / "passthrough.n42"), 6.0)
    assert occupancy.gamma_samples == 133
    assert not occupancy.monitor_gamma_alarm and not occupancy.monitor_neutron_alarm
    # no idle sample in the file: the daemon cannot judge, so the scan is not clean
    assert "no_gamma_background" in occupancy.faults


def test_n42_rejects_other_xml(tmp_path: Path) -> None:
    other = tmp_path / "other.xml"
    other.write_text("<html><body/></html>")
    with pytest.raises(n42.N42Error):
        n42.load(other)
    other.write_text("<RadInstrumentData><unclosed>")
    with pytest.raises(n42.N42Error):
        n42.load(other)


def test_cli_analyze_json(rpm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rpm", "analyze", str(rpm_dir / "S2-C3-NORM2.csv"), "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 25 and all(r["alarm"] and r["gamma_alarm"] for r in records)
    assert records[0]["id"] == 109 and len(records[0]["peak_gamma_sigma"]) == 4

    # a threshold above every peak leaves only the monitor's own alarm
    assert main(["rpm", "analyze", str(rpm_dir / "S2-C3-NORM2.csv"), "--json",
                 "--sigma", "500"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert not any(r["gamma_alarm"] for r in records)
    assert all(r["monitor_gamma_alarm"] for r in records)

    assert main(["rpm", "analyze", str(rpm_dir / "Annex_E.n42"), "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["monitor_gamma_alarm"] and record["nuclides"] == ["Co-57", "Cs-137"]


def test_cli_analyze_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rpm", "analyze", str(tmp_path / "none.csv")]) == 2
    assert "cannot analyze" in capsys.readouterr().err


def test_other_timestamp_formats_and_a_byte_order_mark(rpm_dir: Path, tmp_path: Path) -> None:
    lines = (rpm_dir / "S2-C0-NONE.csv").read_text(encoding="ascii").splitlines()[:600]
    us = [TIMESTAMP.sub(",05/31/2016 09:32:20.158 AM", line) for line in lines]
    odd = [TIMESTAMP.sub(",day 151 09:32:20", line) for line in lines]
    (tmp_path / "us.csv").write_text("\ufeff" + "\r\n".join(us) + "\r\n", encoding="utf-8")
    (tmp_path / "odd.csv").write_text("\n".join(odd) + "\n")

    expected, _ = analyze_lines(rpm_dir / "S2-C0-NONE.csv", sigma=6.0)
    for name in ("us.csv", "odd.csv"):
        found, tracker = analyze_lines(tmp_path / name, sigma=6.0)
        assert tracker.bad_lines == 0, tracker.last_error
        assert found[0].occupancy_id == 17 and found[0].complete and not found[0].alarm
        assert found[0].peak_gamma_sigma == expected[0].peak_gamma_sigma
    us_found, _ = analyze_lines(tmp_path / "us.csv", sigma=6.0)
    assert us_found[0].started_at is not None and us_found[0].started_at.hour == 9
