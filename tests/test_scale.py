"""The scale driver: real Toledo output, the parity bit, a misaligned fragment, a truck driving
on, and SMA, through real ptys."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.scale import (
    Scale,
    SmaParser,
    StabilityFilter,
    ToledoParser,
    decode_toledo,
)
from gated.config import ScaleConfig
from gated.domain import DeviceHealth, WeightReading, utcnow
from hwsim.scale import SimulatedScale, sma_frame, toledo_frame

SPEC_FRAME = bytes.fromhex("022A2020303336353230303030303030 0D37".replace(" ", ""))


def test_spec_example_is_36520_lb_gross_stable() -> None:
    frames = ToledoParser(checksum=True).feed(SPEC_FRAME)
    assert len(frames) == 1
    frame = frames[0]
    assert not frame.motion and not frame.net and not frame.over_range
    assert frame.gross_kg == pytest.approx(36520 * 0.45359237)


def test_field_recording_with_parity_bit_and_fragment(shared_data: Path) -> None:
    raw = (shared_data / "field/scale/test.dat").read_bytes()
    assert raw[0] == 0x82  # the parity bit really is set in the recording
    parser = ToledoParser()
    frames = []
    for start in range(0, len(raw), 7):  # arriving in odd-sized pieces
        frames += parser.feed(raw[start : start + 7])
    assert [round(f.weight_kg, 2) for f in frames] == [
        0.0, 5.0, 5.67, 7.1, 38.45, 70.94, 5.1, -0.89, 3.67,
    ]
    assert [f.motion for f in frames].count(True) == 1 and frames[4].motion
    assert frames[5].over_range
    assert frames[7].net and frames[7].gross_kg == pytest.approx(5.11)
    assert frames[8].gross_kg == pytest.approx(9.67)
    assert parser.bad_frames >= 1  # the frame cut short by the next STX


def test_fragment_without_stx_never_becomes_a_reading(shared_data: Path) -> None:
    erro = (shared_data / "field/scale/marcodpt_Toledo_frames/erro.txt").read_bytes()
    assert ToledoParser().feed(erro) == []  # "00000<CR>" then half a frame


@pytest.mark.parametrize(
    ("name", "weight", "motion", "net"),
    [
        ("zero.txt", -0.02, False, False),
        ("mov.txt", 38.45, True, False),
        ("pesagem.txt", 5.10, False, False),
        ("tara_neg.txt", -0.89, False, True),
        ("tara_pos.txt", 3.67, False, True),
    ],
)
def test_single_field_frames(
    shared_data: Path, name: str, weight: float, motion: bool, net: bool
) -> None:
    raw = (shared_data / "field/scale/marcodpt_Toledo_frames" / name).read_bytes()
    frame = decode_toledo(bytes(b & 0x7F for b in raw[:17]))
    assert frame is not None
    assert (round(frame.weight_kg, 2), frame.motion, frame.net) == (weight, motion, net)


def test_bad_checksum_is_dropped() -> None:
    frame = toledo_frame(30000, motion=False)
    damaged = frame[:-1] + bytes([(frame[-1] + 1) & 0x7F])
    parser = ToledoParser(checksum=True)
    assert parser.feed(damaged + frame) == [decode_toledo(frame[:17])]
    assert parser.bad_frames == 1


def test_sma_frames() -> None:
    parser = SmaParser()
    frames = parser.feed(sma_frame(41250, motion=False) + b"\nxx\r" + sma_frame(100, motion=True))
    assert [(f.gross_kg, f.motion) for f in frames] == [(41250, False), (100, True)]
    assert parser.bad_frames == 1


def test_stability_needs_settled_frames() -> None:
    stability = StabilityFilter(stable_frames=3, tolerance_kg=20)
    now = utcnow()
    readings = []
    for weight, motion in [(10000, True), (30000, True), (30010, False), (30000, False),
                           (30005, False), (30000, False), (0, True)]:
        frame = ToledoParser().feed(toledo_frame(weight, motion=motion))[0]
        readings.append(stability.consider(frame, now))
    emitted = [(r.gross_kg, r.stable) for r in readings if r is not None]
    assert emitted[0] == (10000, False)
    assert [stable for _, stable in emitted] == [False, False, True, False]
    assert emitted[2][0] == pytest.approx(30005)


async def _run(
    tmp_path: Path, protocol: str, body: Callable[[SimulatedScale], None], until: float,
    **sim_options: object,
) -> list[WeightReading]:
    readings: list[WeightReading] = []
    health: list[DeviceHealth] = []
    async with SimulatedScale(
        tmp_path / "ttySCALE", protocol=protocol, interval_s=0.01, **sim_options  # type: ignore[arg-type]
    ) as sim:
        config = ScaleConfig(port=str(sim.link_path), protocol=protocol)  # type: ignore[arg-type]
        scale = Scale("4", config, readings.append, health.append)
        task = asyncio.create_task(scale.run(), name="test scale")
        try:
            await asyncio.sleep(0.05)
            body(sim)
            for _ in range(1000):
                stable = [r for r in readings if r.stable]
                if sim.settled and stable and abs(stable[-1].gross_kg - until) < 200:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # a few more settled frames
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert health and health[0].up
    return readings


@pytest.mark.parametrize("protocol", ["toledo", "sma"])
async def test_truck_drives_on_through_a_pty(tmp_path: Path, protocol: str) -> None:
    readings = await _run(
        tmp_path, protocol, lambda sim: sim.drive_on(38400), 38400, parity_bit=True
    )
    stable = [r for r in readings if r.stable]
    assert stable and all(abs(r.gross_kg - 38400) < 1 for r in stable if r.gross_kg > 1000)
    assert any(not r.stable and 1000 < r.gross_kg < 38000 for r in readings)


async def test_field_recording_of_a_truck_is_stable_only_when_settled(
    tmp_path: Path, shared_data: Path
) -> None:
    tonnes = [float(line) for line in (shared_data / "field/scale/example").read_text().split()]
    on_the_bridge = tonnes[: tonnes.index(48.78)]  # before the truck leaves
    readings = await _run(
        tmp_path, "toledo", lambda sim: sim.replay(t * 1000 for t in on_the_bridge), 48700
    )
    stable = [r.gross_kg for r in readings if r.stable]
    loaded = [weight for weight in stable if weight > 1000]  # the empty bridge is stable at 0
    assert loaded, "the settled truck was never reported stable"
    assert all(48600 <= weight <= 48800 for weight in loaded), loaded
    assert all(weight < 1 for weight in stable if weight <= 1000)


async def test_silent_indicator_is_lost_once_and_recovers(tmp_path: Path) -> None:
    health: list[DeviceHealth] = []
    async with SimulatedScale(tmp_path / "ttySCALE", interval_s=0.01) as sim:
        config = ScaleConfig(port=str(sim.link_path), protocol="toledo", silence_s=0.2)
        scale = Scale("4", config, lambda reading: None, health.append)
        task = asyncio.create_task(scale.run(), name="test scale")
        try:
            for sending, wanted in ((True, True), (False, False), (True, True)):
                sim.sending = sending
                for _ in range(300):
                    if health and health[-1].up is wanted:
                        break
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert [h.up for h in health] == [True, False, True]
    assert "no data for 0.2 s" in health[1].detail


@given(cuts=st.lists(st.integers(min_value=0, max_value=180), max_size=40))
def test_any_split_of_the_field_recording_gives_the_same_frames(
    shared_data: Path, cuts: list[int]
) -> None:
    raw = (shared_data / "field/scale/test.dat").read_bytes()
    whole = ToledoParser().feed(raw)
    parser = ToledoParser()
    pieces = []
    start = 0
    for cut in sorted(set(cuts)) + [len(raw)]:
        pieces += parser.feed(raw[start:cut])
        start = max(start, cut)
    assert pieces == whole and len(whole) == 9
