"""Captured reader streams decode to the expected EPCs: a real reader's and the simulator's."""

from __future__ import annotations

import io
import random
from collections import Counter

from hwsim.llrp import SimulatedReader
from rfid import ReaderSupervisor, TagReportNormaliser
from rfid.capture import decode_capture
from tests.llrp_helpers import EPC_LONG, EPC_TRUCK, Recorder, reader_config, supervised

REAL_EPCS = {
    "3005FB63AC1F3841EC880467": 22,
    "300833B2DDD906C000000000": 22,
    "1FB41F712AC9C37AB79D618173188324001A": 1,
}


def epc_counts(tags: list[dict[str, object]]) -> Counter[str]:
    normaliser = TagReportNormaliser("capture", dedupe_window_s=0.0)
    reads = [normaliser.normalise(tag, 0.0, 0.0) for tag in tags]
    return Counter(read.epc for read in reads if read is not None)


def test_real_reader_capture_decodes(shared_data):
    data = (shared_data / "llrp" / "ro_access_reports.bin").read_bytes()
    whole = decode_capture(data)
    assert whole.failure is None
    assert whole.messages == {"RO_ACCESS_REPORT": 45}
    assert epc_counts(whole.tags) == REAL_EPCS
    assert {tag["AntennaID"] for tag in whole.tags} == {1}
    first_seen = sorted(int(tag["FirstSeenTimestampUTC"]) for tag in whole.tags)  # type: ignore[call-overload]
    assert (first_seen[0], first_seen[-1]) == (1385585041558537, 1385585042041168)


def test_real_capture_in_random_pieces_decodes_the_same(shared_data):
    data = (shared_data / "llrp" / "ro_access_reports.bin").read_bytes()
    rnd = random.Random(7)
    for _ in range(20):
        pieces = decode_capture(data, (rnd.randint(1, 60) for _ in range(len(data))))
        assert pieces.failure is None
        assert epc_counts(pieces.tags) == REAL_EPCS


def test_real_capabilities_response_decodes(shared_data):
    data = (shared_data / "llrp" / "reader_capabilities_response.bin").read_bytes()
    decoded = decode_capture(data)
    assert decoded.messages == {"GET_READER_CAPABILITIES_RESPONSE": 1}


async def test_real_capture_replayed_to_a_live_client(shared_data):
    """The real reader's bytes, sent by the simulator after the handshake, reach the daemon."""
    data = (shared_data / "llrp" / "ro_access_reports.bin").read_bytes()
    recorder = Recorder()
    async with SimulatedReader(tick_s=0.005) as reader:
        supervisor = ReaderSupervisor(
            "replay", reader_config(reader.port, dedupe_window_s=0.0), recorder.on_read,
            recorder.on_health,
        )
        async with supervised(supervisor):
            await recorder.until(lambda: recorder.states == [True])
            reader.replay(data)
            await recorder.until(lambda: len(recorder.reads) >= 45)
    assert Counter(r.epc for r in recorder.reads) == REAL_EPCS
    # the 2013 reader clock is far from the host's: host time is used
    assert supervisor.stats.clock_rejected == 45
    assert all(r.reader_time is None for r in recorder.reads)


async def test_simulator_capture_decodes():
    capture = io.BytesIO()
    recorder = Recorder()
    async with SimulatedReader(tick_s=0.005, capture=capture, seed=3) as reader:
        reader.field.show(EPC_TRUCK, antenna=1, rate=40)
        reader.field.show(EPC_LONG, antenna=2, rate=40)
        supervisor = ReaderSupervisor(
            "capture", reader_config(reader.port, dedupe_window_s=0.0), recorder.on_read,
            recorder.on_health,
        )
        async with supervised(supervisor):
            await recorder.reads_after(10, EPC_TRUCK)
            await recorder.reads_after(10, EPC_LONG)
    decoded = decode_capture(capture.getvalue(), iter(random.Random(5).randint(1, 200)
                                                      for _ in range(100_000)))
    assert decoded.failure is None
    for name in ("READER_EVENT_NOTIFICATION", "GET_READER_CAPABILITIES_RESPONSE",
                 "GET_READER_CONFIG_RESPONSE", "SET_READER_CONFIG_RESPONSE",
                 "ADD_ROSPEC_RESPONSE", "ENABLE_ROSPEC_RESPONSE", "RO_ACCESS_REPORT"):
        assert decoded.messages[name] >= 1, name
    counts = epc_counts(decoded.tags)
    assert set(counts) == {EPC_TRUCK, EPC_LONG}
    live = Counter(r.epc for r in recorder.reads)
    assert all(counts[epc] >= live[epc] for epc in live)
