"""The decision rules, one outcome at a time: each is a pure function of the evidence."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gated.decision import AppointmentFact, Evidence, HoldFact, TruckFact, decide
from gated.domain import (
    CredentialCheck,
    Decision,
    FusedContainer,
    RadiationScan,
    Reason,
    WeightReading,
)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def scan(**changes: object) -> RadiationScan:
    base = RadiationScan(
        lane="1", occupancy_id=1, started_at=NOW, ended_at=NOW, complete=True,
        monitor_gamma_alarm=False, monitor_neutron_alarm=False,
        gamma_alarm=False, neutron_alarm=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


VALID = CredentialCheck(True, (), "h" * 64, "2446")
TRUCK = TruckFact("E1", True, "ACME", "AB-123")


def appointment(number: str | None, direction: str = "in", **changes: object) -> AppointmentFact:
    base = AppointmentFact(f"APT-{number}", direction, number, "ACME", None,
                           NOW - timedelta(hours=1), NOW + timedelta(hours=1), "A1-01-01")
    return replace(base, **changes)  # type: ignore[arg-type]


def container(number: str, confidence: float = 0.95) -> FusedContainer:
    return FusedContainer(number, "22G1", confidence, ("AH.jpg", "LF.jpg"))


def clean(**changes: object) -> Evidence:
    base = Evidence(
        lane_direction="in", at=NOW, containers=(container("TGHU7870036"),),
        images_captured=5, truck=TRUCK, scan=scan(), credential=VALID,
        appointments=(appointment("TGHU7870036"),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def codes(evidence: Evidence) -> set[str]:
    return {r.code for r in decide(evidence).reasons if r.blocking}


def test_clean_truck_proceeds_with_reasons() -> None:
    result = decide(clean())
    assert result.decision is Decision.PROCEED
    assert {r.code for r in result.reasons} >= {"radiation_clean", "credential_valid",
                                                "appointment_matched", "truck_known"}


def test_radiation_alarm_goes_to_inspection_even_with_other_problems() -> None:
    for alarm in ({"gamma_alarm": True}, {"monitor_neutron_alarm": True}):
        result = decide(clean(scan=scan(**alarm), credential=None))
        assert result.decision is Decision.INSPECTION
        assert "radiation_alarm" in {r.code for r in result.reasons}


def test_customs_hold_is_inspection_line_hold_is_trouble() -> None:
    customs = clean(holds=(HoldFact("TGHU7870036", "customs", "x-ray"),))
    assert decide(customs).decision is Decision.INSPECTION
    line = clean(holds=(HoldFact("TGHU7870036", "line", None),))
    assert decide(line).decision is Decision.TROUBLE and "hold" in codes(line)


def test_fail_closed_without_a_trusted_clean_scan() -> None:
    assert "no_radiation_scan" in codes(clean(scan=None))
    assert "radiation_scan_incomplete" in codes(clean(scan=scan(complete=False)))
    assert "radiation_fault" in codes(clean(scan=scan(faults=("gamma high background",))))
    assert "rpm_unavailable" in codes(clean(rpm_problem="heartbeat missing"))
    for evidence in (clean(scan=None), clean(rpm_problem="tamper")):
        assert decide(evidence).decision is Decision.TROUBLE


def test_credential_problems_go_to_trouble_with_their_reasons() -> None:
    expired = CredentialCheck(False, (Reason("expired", "card expired on 2026-01-01"),), "h", "1")
    assert codes(clean(credential=expired)) == {"expired"}
    assert codes(clean(credential=None)) == {"no_credential"}
    assert codes(clean(credential_reader=False)) == {"no_credential_reader"}


def test_container_problems() -> None:
    assert "container_unreadable" in codes(clean(containers=(container("TGHU7870036", 0.3),)))
    assert "container_unreadable" in codes(clean(containers=(), unreadable_container_seen=True))
    assert "no_appointment" in codes(clean(appointments=()))
    late = appointment("TGHU7870036", window_end=NOW - timedelta(minutes=1))
    assert "outside_window" in codes(clean(appointments=(late,)))
    assert "no_images" in codes(clean(images_captured=0))


def test_two_twenties_need_two_appointments() -> None:
    two = (container("TGHU7870036"), container("CSQU3054383"))
    both = clean(containers=two, appointments=(appointment("TGHU7870036"),
                                               appointment("CSQU3054383")))
    assert decide(both).decision is Decision.PROCEED
    one = clean(containers=two, appointments=(appointment("TGHU7870036"),))
    assert codes(one) == {"no_appointment"}


def test_bobtail_needs_a_pickup() -> None:
    pickup = appointment("MSCU1234565", direction="out")
    empty = clean(containers=(), appointments=(pickup,), container_sensed=False)
    assert decide(empty).decision is Decision.PROCEED
    nothing = clean(containers=(), appointments=(), container_sensed=False)
    assert "no_container_no_pickup" in codes(nothing)
    other_truck = appointment(None, direction="out", truck_epc="E-OTHER")
    assert "no_container_no_pickup" in codes(replace(nothing, appointments=(other_truck,)))


def test_profile_scanner_counts_the_containers() -> None:
    one_of_two = clean(container_count=2)
    assert codes(one_of_two) == {"container_unreadable"}
    assert "container_count_mismatch" in codes(
        clean(container_count=1, containers=(container("TGHU7870036"),
                                             container("CSQU3054383")),
              appointments=(appointment("TGHU7870036"), appointment("CSQU3054383"))))
    assert decide(clean(container_count=1)).decision is Decision.PROCEED


def test_presence_sensor_tells_unreadable_from_empty() -> None:
    pickup = appointment("MSCU1234565", direction="out")
    painted_over = clean(containers=(), appointments=(pickup,), container_sensed=True)
    assert codes(painted_over) == {"container_unreadable"}
    no_sensor = clean(containers=(), appointments=(pickup,), container_sensed=None)
    assert codes(no_sensor) == {"container_unknown"}
    ghost = clean(container_sensed=False)
    assert codes(ghost) == {"container_not_sensed"}


def test_truck_tag_rules() -> None:
    assert "no_truck_tag" in codes(clean(truck=None))
    assert "unknown_truck" in codes(clean(truck=TruckFact("E9", False, None)))
    other = TruckFact("E1", True, "OTHER")
    assert "company_mismatch" in codes(clean(truck=other))


def test_weight_rules_only_with_a_scale() -> None:
    assert decide(clean()).decision is Decision.PROCEED
    with_scale = clean(scale_configured=True, max_gross_kg=40000, min_gross_kg=2000)
    assert "no_weight" in codes(with_scale)
    heavy = replace(with_scale, weight=WeightReading(45000, True, NOW))
    assert "overweight" in codes(heavy)
    moving = replace(with_scale, weight=WeightReading(30000, False, NOW))
    assert "no_weight" in codes(moving)
    fine = replace(with_scale, weight=WeightReading(30000, True, NOW))
    assert decide(fine).decision is Decision.PROCEED


def test_plc_problem_blocks_proceed() -> None:
    assert "plc_unavailable" in codes(clean(plc_problem="connection lost"))


def test_images_not_read_in_time_is_its_own_reason() -> None:
    late = clean(containers=(), images_pending=True)
    assert codes(late) == {"ocr_late"}
