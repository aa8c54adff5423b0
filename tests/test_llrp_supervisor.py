"""sllurp against the simulated reader on loopback: reads arrive, every fault is survived."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hwsim.llrp import SimulatedReader
from rfid import ReaderSupervisor
from tests.llrp_helpers import EPC_LONG, EPC_TRUCK, Recorder, reader_config, supervised
from tests.servers import free_port


@pytest.fixture
async def reader():
    simulated = SimulatedReader(tick_s=0.005, seed=1)
    await simulated.start()
    yield simulated
    await simulated.stop()


def make_supervisor(reader: SimulatedReader, recorder: Recorder, **overrides: object):
    return ReaderSupervisor(
        "portal-1", reader_config(reader.port, **overrides), recorder.on_read,
        recorder.on_health, lane="1",
    )


def sllurp_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sllurp-reader")]


async def test_reads_reach_the_daemon(reader):
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50, rssi=-52)
    reader.field.show(EPC_LONG, antenna=2, rate=50, rssi=-61)
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await recorder.reads_after(2, EPC_TRUCK)
        await recorder.reads_after(2, EPC_LONG)
        assert sllurp_threads()
    assert sllurp_threads() == []
    # a clean stop deletes the ROSpec, as the connect did (reset), and the reader stops
    assert reader.requests["DELETE_ROSPEC"] == 2 and not reader.inventorying
    truck = next(r for r in recorder.reads if r.epc == EPC_TRUCK)
    assert (truck.reader, truck.antenna) == ("portal-1", 1)
    assert truck.rssi is not None and -55 <= truck.rssi <= -49
    assert truck.reader_time is not None
    assert abs((truck.seen_at - truck.reader_time).total_seconds()) < 2
    assert {r.antenna for r in recorder.reads if r.epc == EPC_LONG} == {2}
    assert recorder.states == [True]
    assert recorder.health[0].lane == "1" and recorder.health[0].device == "portal-1"
    # deduplication: 50 reads/s per tag, one read per 0.2 s window passes
    assert supervisor.stats.duplicates > supervisor.stats.emitted


async def until_up_with_reads(recorder: Recorder, ups: int) -> None:
    await recorder.until(lambda: recorder.states.count(True) >= ups)
    await recorder.reads_after(2, EPC_TRUCK)


async def test_dropped_connection(reader):
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50)
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await until_up_with_reads(recorder, 1)
        reader.drop_connection()
        await until_up_with_reads(recorder, 2)
    assert recorder.states == [True, False, True]
    assert reader.sessions_accepted == 2
    assert "closed" in recorder.health[1].detail


async def test_keepalives_stop(reader):
    recorder = Recorder()
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await recorder.until(lambda: recorder.states == [True])
        # no tags: only keepalives show the reader is alive, for longer than the watchdog
        await recorder.reads_after(0)
        connections = supervisor.connections
        await asyncio.sleep(2 * supervisor.config.watchdog_s)
        assert recorder.states == [True] and supervisor.connections == connections
        reader.faults.stop_keepalives = True
        await recorder.until(lambda: recorder.states == [True, False])
        assert "no message" in recorder.health[1].detail
        reader.faults.stop_keepalives = False
        reader.field.show(EPC_TRUCK, antenna=1, rate=50)
        await until_up_with_reads(recorder, 2)
    assert recorder.states == [True, False, True]


async def test_hung_reader(reader):
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50)
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await until_up_with_reads(recorder, 1)
        reader.faults.silent = True
        await recorder.until(lambda: recorder.states == [True, False])
        reader.faults.silent = False
        await until_up_with_reads(recorder, 2)
    assert recorder.states == [True, False, True]


async def test_truncated_parameter(reader):
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50)
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await until_up_with_reads(recorder, 1)
        reader.inject_truncated_parameter()
        await recorder.until(lambda: len(recorder.states) >= 2)
        await until_up_with_reads(recorder, 2)
    assert recorder.states == [True, False, True]
    assert "undecodable" in recorder.health[1].detail


async def test_unknown_message_type_is_skipped(reader):
    """A message type sllurp does not know is skipped by its length: no outage at all."""
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50)
    reader.faults.coalesce = True  # the unknown message shares segments with reports
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await until_up_with_reads(recorder, 1)
        for msg_type in (999, 555, 999):
            reader.inject_unknown_message(msg_type)
        await recorder.until(lambda: supervisor.unknown_messages == 3)
        await recorder.reads_after(3, EPC_TRUCK)
    assert recorder.states == [True]
    assert supervisor.connections == 1
    assert supervisor.stats.bad_reports == 0


@pytest.mark.parametrize("fault", ["split_segments", "coalesce"])
async def test_split_and_coalesced_segments(reader, fault):
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=100)
    reader.field.show(EPC_LONG, antenna=2, rate=100)
    setattr(reader.faults, fault, True)
    supervisor = make_supervisor(reader, recorder, dedupe_window_s=0.0)
    async with supervised(supervisor):
        await recorder.reads_after(20, EPC_TRUCK)
        await recorder.reads_after(20, EPC_LONG)
    assert recorder.states == [True]
    assert supervisor.connections == 1
    assert supervisor.stats.bad_reports == 0
    assert {r.epc for r in recorder.reads} == {EPC_TRUCK, EPC_LONG}


async def test_refused_client(reader):
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50)
    reader.faults.refuse = True
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await recorder.until(lambda: reader.sessions_refused >= 3)
        assert recorder.states == [False]
        assert "refused" in recorder.health[0].detail
        reader.faults.refuse = False
        await until_up_with_reads(recorder, 1)
    assert recorder.states == [False, True]


async def test_second_client_is_refused_first_keeps_reading(reader):
    first, second = Recorder(), Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50)
    async with supervised(make_supervisor(reader, first)):
        await until_up_with_reads(first, 1)
        other = ReaderSupervisor(
            "intruder", reader_config(reader.port), second.on_read, second.on_health
        )
        async with supervised(other):
            await second.until(lambda: second.states == [False])
            await first.reads_after(3, EPC_TRUCK)
        assert "refused" in second.health[0].detail
    assert first.states == [True] and second.reads == []


@pytest.mark.parametrize("fault", ["uptime_timestamps", "unset_clock"])
async def test_untrusted_reader_clock(reader, fault):
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50)
    setattr(reader.faults, fault, True)
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await until_up_with_reads(recorder, 1)
        reader.drop_connection()  # and the client recovers with the clock still wrong
        await until_up_with_reads(recorder, 2)
    assert recorder.states == [True, False, True]
    assert all(r.reader_time is None for r in recorder.reads)
    stats = supervisor.stats
    counted = stats.uptime_timestamps if fault == "uptime_timestamps" else stats.clock_rejected
    assert counted == len(recorder.reads)
    first = recorder.reads[0].seen_at
    assert all(abs((r.seen_at - first).total_seconds()) < 30 for r in recorder.reads)


async def test_incomplete_capabilities(reader):
    """sllurp's handshake fails on capabilities without a power table: down, then recovered."""
    recorder = Recorder()
    reader.field.show(EPC_TRUCK, antenna=1, rate=50)
    reader.faults.incomplete_capabilities = True
    supervisor = make_supervisor(reader, recorder)
    async with supervised(supervisor):
        await recorder.until(lambda: reader.sessions_accepted >= 2)
        assert recorder.states == [False]
        assert "GET_READER_CAPABILITIES_RESPONSE" in recorder.health[0].detail
        reader.faults.incomplete_capabilities = False
        await until_up_with_reads(recorder, 1)
    assert recorder.states == [False, True]


async def test_reader_not_listening_yet():
    """Nothing listens at start: down once with the reason, up once the reader is there."""
    recorder = Recorder()
    port = free_port()
    supervisor = ReaderSupervisor(
        "late", reader_config(port), recorder.on_read, recorder.on_health, lane="2"
    )
    reader = SimulatedReader(port=port, tick_s=0.005)
    try:
        async with supervised(supervisor):
            await recorder.until(lambda: recorder.states == [False])
            assert "cannot connect" in recorder.health[0].detail
            await asyncio.sleep(0.5)  # several attempts, still one report
            assert recorder.states == [False]
            await reader.start()
            reader.field.show(EPC_TRUCK, antenna=1, rate=50)
            await until_up_with_reads(recorder, 1)
    finally:
        await reader.stop()
    assert recorder.states == [False, True]
