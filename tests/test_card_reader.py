"""The card reader driver against the simulated reader, through a real pty."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.card_reader import (
    BIOMETRIC_MATCH,
    BIOMETRIC_NO_MATCH,
    CardPresented,
    CardReader,
    FrameParser,
    encode_frame,
    parse_payload,
)
from gated.config import CardReaderConfig
from gated.domain import DeviceHealth, utcnow
from hwsim.card_reader import SimulatedCardReader, scripted_fascn


@dataclass
class Lane:
    sim: SimulatedCardReader
    reader: CardReader
    cards: asyncio.Queue[CardPresented] = field(default_factory=asyncio.Queue)
    health: list[DeviceHealth] = field(default_factory=list)

    async def next_card(self) -> CardPresented:
        return await asyncio.wait_for(self.cards.get(), 10)


@pytest.fixture
async def lane(tmp_path: Path) -> AsyncIterator[Lane]:
    sim = SimulatedCardReader(tmp_path / "ttyCARD", chunk_delay_s=0.02)
    config = CardReaderConfig(port=str(sim.link_path), verify_timeout_s=3.0, backoff_cap_s=0.2)
    cards: asyncio.Queue[CardPresented] = asyncio.Queue()
    health: list[DeviceHealth] = []
    reader = CardReader("7", config, cards.put_nowait, health.append)
    task = asyncio.create_task(reader.run(), name="test card reader")
    try:
        for _ in range(200):
            if health and health[-1].up:
                break
            await asyncio.sleep(0.01)
        yield Lane(sim, reader, cards, health)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sim.close()


async def test_valid_card(lane: Lane) -> None:
    await lane.sim.present("valid")
    card = await lane.next_card()
    assert card.readable and card.lane == "7"
    assert card.fascn == scripted_fascn("valid")
    assert card.biometric_status == BIOMETRIC_MATCH
    assert card.expires_on is not None
    assert card.authenticated is True


async def test_counterfeit_and_unauthenticated_cards(lane: Lane) -> None:
    await lane.sim.present("counterfeit")
    fascn = scripted_fascn("valid").to_hex()
    lane.sim.send_raw(encode_frame(f"F={fascn};B=M;S=200"))
    lane.sim.send_raw(encode_frame(f"F={fascn};A=?;B=M;S=200"))
    counterfeit, silent, odd = [await lane.next_card() for _ in range(3)]
    assert counterfeit.readable and counterfeit.authenticated is False
    assert silent.readable and silent.authenticated is None
    assert odd.authenticated is False  # an unknown answer is not a yes


async def test_each_kind_arrives_with_its_data(lane: Lane) -> None:
    await lane.sim.present("expired")
    await lane.sim.present("canceled")
    await lane.sim.present("biometric_fail")
    expired, canceled, impostor = [await lane.next_card() for _ in range(3)]
    assert expired.fascn == scripted_fascn("expired")
    assert expired.expires_on is not None and canceled.expires_on is not None
    assert expired.expires_on < canceled.expires_on
    assert canceled.fascn == scripted_fascn("canceled")
    assert impostor.biometric_status == BIOMETRIC_NO_MATCH
    assert impostor.biometric_score is not None and impostor.biometric_score < 100


async def test_corrupted_frame_is_unreadable_and_reader_carries_on(lane: Lane) -> None:
    lane.sim.send_raw(b"\x00\xffgarbage\r\n")
    await lane.sim.present("corrupted")
    card = await lane.next_card()
    assert not card.readable and card.fascn is None
    assert "block check" in (card.unreadable or "")
    await lane.sim.present("valid")
    assert (await lane.next_card()).fascn == scripted_fascn("valid")
    assert lane.reader.noise_bytes >= 9


async def test_slow_reader_frame_is_reassembled(lane: Lane) -> None:
    await lane.sim.present("slow", ascii_form=True)
    card = await lane.next_card()
    assert card.fascn == scripted_fascn("valid")


async def test_bad_fascn_inside_a_good_frame_is_unreadable(lane: Lane) -> None:
    bad = scripted_fascn("valid").to_hex()
    bad = bad[:10] + ("0" if bad[10] != "0" else "1") + bad[11:]
    lane.sim.send_raw(encode_frame(f"F={bad};B=M;S=200"))
    card = await lane.next_card()
    assert card.unreadable is not None and card.unreadable.startswith("card data:")
    assert bad not in card.unreadable


async def test_joined_and_cut_frames(lane: Lane) -> None:
    good = lane.sim.frame_for("valid")
    lane.sim.send_raw(good[:20] + good + good)
    cut, first, second = [await lane.next_card() for _ in range(3)]
    assert "cut short" in (cut.unreadable or "")
    assert first.readable and second.readable


async def test_stalled_frame_becomes_unreadable(tmp_path: Path) -> None:
    with SimulatedCardReader(tmp_path / "ttyCARD") as sim:
        config = CardReaderConfig(port=str(sim.link_path), verify_timeout_s=0.2)
        cards: asyncio.Queue[CardPresented] = asyncio.Queue()
        reader = CardReader("1", config, cards.put_nowait, lambda health: None)
        task = asyncio.create_task(reader.run(), name="test card reader")
        await asyncio.sleep(0.1)
        sim.send_raw(sim.frame_for("valid")[:30])
        card = await asyncio.wait_for(cards.get(), 5)
        assert "not finished within" in (card.unreadable or "")
        sim.send_raw(sim.frame_for("valid"))
        assert (await asyncio.wait_for(cards.get(), 5)).readable
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_unplugged_reader_is_lost_once_and_recovers(lane: Lane) -> None:
    lane.sim.device.unplug()
    for _ in range(300):
        if not lane.health[-1].up:
            break
        await asyncio.sleep(0.01)
    assert not lane.health[-1].up
    lane.sim.device.plug()
    for _ in range(300):
        if lane.health[-1].up:
            break
        await asyncio.sleep(0.02)
    assert [h.up for h in lane.health] == [True, False, True]
    await lane.sim.present("valid")
    assert (await lane.next_card()).readable


def test_parser_counts_noise_and_checks_frames() -> None:
    parser = FrameParser()
    frame = encode_frame("F=x;B=M")
    results = parser.feed(b"noise" + frame[:-1] + b"0")
    assert results == [(None, "frame failed its block check")]
    assert parser.noise_bytes == 5
    assert parser.feed(frame) == [(b"F=x;B=M", None)]


async def test_company_cards_differ_and_garbage_is_unreadable(lane: Lane) -> None:
    acme, other = scripted_fascn("valid", "ACME"), scripted_fascn("valid", "OTHER")
    assert acme != other and acme.credential_last4 == other.credential_last4
    await lane.sim.present("valid", "ACME")
    assert (await lane.next_card()).fascn == acme
    await lane.sim.send_garbage(seed=3)
    cut, damaged = [await lane.next_card() for _ in range(2)]
    assert not cut.readable and not damaged.readable
    await lane.sim.present("expired", "OTHER")
    assert (await lane.next_card()).fascn == scripted_fascn("expired", "OTHER")


async def test_reader_behind_a_serial_to_ethernet_converter() -> None:
    """pyserial's socket:// URL, as for a reader on a serial device server; a dropped
    connection is lost once and the next connection recovers."""
    frame = SimulatedCardReader.frame_for("valid")
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        writer.write(frame[:10])
        await writer.drain()
        writer.write(frame[10:])
        await writer.drain()
        if len(connections) == 1:
            writer.close()  # the converter drops the first connection

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cards: asyncio.Queue[CardPresented] = asyncio.Queue()
    health: list[DeviceHealth] = []
    config = CardReaderConfig(port=f"socket://127.0.0.1:{port}", backoff_cap_s=0.2)
    reader = CardReader("5", config, cards.put_nowait, health.append)
    task = asyncio.create_task(reader.run(), name="test card reader over tcp")
    try:
        first = await asyncio.wait_for(cards.get(), 10)
        second = await asyncio.wait_for(cards.get(), 10)
        assert first.readable and second.readable
        assert [h.up for h in health] == [True, False, True]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


def test_implicit_biometric_readers() -> None:
    frame = f"F={scripted_fascn('valid').to_hex()};A=Y".encode()
    now = utcnow()
    assert parse_payload("1", frame, now).biometric_status == "not_performed"
    assert parse_payload("1", frame, now, implicit_biometric=True).biometric_status == "match"
    refused = parse_payload("1", frame + b";B=N", now, implicit_biometric=True)
    assert refused.biometric_status == BIOMETRIC_NO_MATCH


@given(
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30),
    noise=st.binary(max_size=20).map(lambda b: b.replace(b"\x02", b"")),
)
def test_any_split_of_the_stream_gives_the_same_frames(cuts: list[int], noise: bytes) -> None:
    frames = [SimulatedCardReader.frame_for(kind) for kind in ("valid", "expired", "canceled")]
    stream = noise + frames[0] + noise + frames[1] + frames[2] + noise
    parser = FrameParser()
    results = []
    start = 0
    for cut in sorted({min(c, len(stream)) for c in cuts}) + [len(stream)]:
        results += parser.feed(stream[start:cut])
        start = cut
    assert [payload for payload, _ in results] == [frame[1:-3] for frame in frames]
