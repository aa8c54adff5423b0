"""Serial devices that misbehave, through real ptys: line noise, binary floods, frames cut or
split, a cable pulled mid-frame, a device on the port that is not what it claims to be."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.card_reader import CardPresented, CardReader, FrameParser, encode_frame
from drivers.printer import PrinterError, TicketPrinter
from drivers.scale import SmaParser, StabilityFilter, ToledoParser, decode_sma
from gated.config import CardReaderConfig, PrinterConfig
from gated.domain import DeviceHealth
from hwsim.card_reader import SimulatedCardReader, scripted_fascn
from hwsim.pty_device import PtyDevice

NOISE = random.Random(11).randbytes(65536)


class CardLane:
    def __init__(self, sim: SimulatedCardReader, reader: CardReader) -> None:
        self.sim = sim
        self.reader = reader
        self.cards: asyncio.Queue[CardPresented] = asyncio.Queue()
        self.health: list[DeviceHealth] = []

    async def until_good_card(self) -> tuple[CardPresented, list[CardPresented]]:
        """Wait for the next readable card; return it and the unreadable ones before it."""
        bad: list[CardPresented] = []
        while True:
            card = await asyncio.wait_for(self.cards.get(), 10)
            if card.readable:
                return card, bad
            bad.append(card)


@pytest.fixture
async def card_lane(tmp_path: Path) -> AsyncIterator[CardLane]:
    sim = SimulatedCardReader(tmp_path / "ttyCARD", chunk_delay_s=0.0)
    config = CardReaderConfig(port=str(sim.link_path), verify_timeout_s=1.0, backoff_cap_s=0.2)
    lane = CardLane(sim, None)  # type: ignore[arg-type]
    lane.reader = CardReader("3", config, lane.cards.put_nowait, lane.health.append)
    task = asyncio.create_task(lane.reader.run(), name="bad-input card reader")
    try:
        for _ in range(300):
            if lane.health and lane.health[-1].up:
                break
            await asyncio.sleep(0.01)
        yield lane
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sim.close()


async def _send_slowly(device: PtyDevice, data: bytes, chunk: int = 1024) -> None:
    """A pty holds a few KB; hand a flood over in pieces as a line would."""
    for start in range(0, len(data), chunk):
        device.write(data[start : start + chunk])
        await asyncio.sleep(0.002)


async def test_binary_flood_then_a_good_card(card_lane: CardLane) -> None:
    await _send_slowly(card_lane.sim.device, NOISE)
    # whatever state the flood left: finish a dangling check, then one empty frame
    card_lane.sim.send_raw(b"ZZ" + encode_frame("")[:-2] + b"ZZ")
    await card_lane.sim.present("valid")
    card, bad = await card_lane.until_good_card()
    assert card.fascn == scripted_fascn("valid")
    assert bad, "the flood's STX bytes gave no unreadable presentation"
    assert all(c.fascn is None and c.unreadable for c in bad)
    assert card_lane.reader.noise_bytes > 0
    assert card_lane.sim.device.dropped_bytes == 0
    assert [h.up for h in card_lane.health] == [True]


async def test_frame_split_byte_by_byte_with_noise_between_frames(card_lane: CardLane) -> None:
    frame = card_lane.sim.frame_for("valid")
    for byte in b"\xff\x00\r\n" + frame + b"\x7f\x80":
        card_lane.sim.send_raw(bytes([byte]))
        await asyncio.sleep(0.001)
    card, bad = await card_lane.until_good_card()
    assert card.fascn == scripted_fascn("valid") and bad == []


async def test_cable_pulled_mid_frame(card_lane: CardLane) -> None:
    frame = card_lane.sim.frame_for("valid")
    card_lane.sim.send_raw(frame[:25])
    await asyncio.sleep(0.05)
    card_lane.sim.device.unplug()
    for _ in range(300):
        if not card_lane.health[-1].up:
            break
        await asyncio.sleep(0.01)
    card_lane.sim.device.plug()
    for _ in range(300):
        if card_lane.health[-1].up:
            break
        await asyncio.sleep(0.02)
    assert [h.up for h in card_lane.health] == [True, False, True]
    await card_lane.sim.present("valid")
    card, bad = await card_lane.until_good_card()
    assert card.fascn == scripted_fascn("valid")
    assert all(not c.readable for c in bad)  # the half frame is never a card


def test_random_streams_never_make_a_readable_card() -> None:
    rng = random.Random(5)
    parser = FrameParser()
    for _ in range(200):
        chunk = rng.randbytes(rng.randint(1, 600))
        for payload, problem in parser.feed(chunk):
            assert payload is None or problem is None
            if payload is not None:  # a frame whose block check happened to match
                from drivers.card_reader import parse_payload

                card = parse_payload("1", payload, datetime.now(UTC))
                assert not card.readable


def test_frame_without_block_check_does_not_swallow_the_next_frame() -> None:
    parser = FrameParser()
    good = encode_frame("F=x;B=M")
    results = parser.feed(good[:-2] + good)
    assert (b"F=x;B=M", None) in results


# --- scale ------------------------------------------------------------------------------------


def test_scale_parsers_survive_random_streams() -> None:
    rng = random.Random(9)
    toledo, sma = ToledoParser(), SmaParser()
    for _ in range(300):
        chunk = rng.randbytes(rng.randint(1, 300))
        toledo.feed(chunk)
        sma.feed(chunk)
    assert toledo.bad_frames + sma.bad_frames > 0


@pytest.mark.parametrize("weight", ["       nan", "       inf", "      -inf", "  infinity"])
def test_sma_weight_that_is_not_a_number_is_never_a_stable_weight(weight: str) -> None:
    line = f"  G  {weight}kg ".encode()
    assert len(line) == 18
    frame = decode_sma(line)
    stability = StabilityFilter(stable_frames=3, tolerance_kg=20)
    at = datetime.now(UTC)
    readings = [stability.consider(frame, at) for _ in range(10)] if frame is not None else []
    assert not any(r is not None and r.stable for r in readings)


# --- printer -------------------------------------------------------------------------------------


async def _fake_printer(tmp_path: Path, answer: bytes | None) -> PtyDevice:
    """A device on the printer's port that answers every request with `answer` (or echoes)."""
    device = PtyDevice(tmp_path / "ttyPRN", "not-a-printer")

    def reply(data: bytes) -> None:
        device.write(data if answer is None else answer * len(data))

    device.listen(reply)
    return device


@pytest.mark.parametrize("answer", [b"\x00", None], ids=["zeros", "echo"])
async def test_device_that_is_not_a_printer_is_an_error(
    tmp_path: Path, answer: bytes | None
) -> None:
    device = await _fake_printer(tmp_path, answer)
    try:
        printer = TicketPrinter("2", PrinterConfig(port=str(device.link_path)))
        printer.status_timeout_s = 0.3
        with pytest.raises(PrinterError):
            await printer.print_ticket(["x"], "GATE PASS")
    finally:
        device.stop_listening()
        device.close()


async def test_printer_unplugged_is_an_error_then_prints(tmp_path: Path) -> None:
    from hwsim.printer import SimulatedPrinter

    health: list[DeviceHealth] = []
    async with SimulatedPrinter(tmp_path / "ttyPRN") as sim:
        printer = TicketPrinter(
            "2", PrinterConfig(port=str(sim.link_path), status_timeout_s=0.3),
            on_health=health.append,
        )
        sim.device.unplug()
        with pytest.raises(PrinterError):
            await printer.print_ticket(["x"], "GATE PASS")
        sim.device.plug()
        await printer.print_ticket(["y"], "GATE PASS")
        await sim.wait_for_tickets(1)
    assert [h.up for h in health] == [False, True]
    assert [t.lines[-1] for t in sim.tickets] == ["y"]
