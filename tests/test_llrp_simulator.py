"""The simulated reader's parts on their own: tag field (clock moved by hand), wire format, CLI."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest
from sllurp.llrp import LLRPMessage
from sllurp.llrp_proto import LLRPROSpec

from hwsim.llrp import Faults, TagField
from hwsim.llrp import protocol as llrp
from rfid import ReaderSupervisor
from tests.llrp_helpers import EPC_LONG, EPC_TRUCK, Recorder, reader_config, supervised


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tag_field_reads_follow_rate_and_time() -> None:
    clock = Clock()
    field = TagField(clock=clock, seed=1)
    field.show(EPC_TRUCK, antenna=1, duration_s=2.0, rate=10, rssi=-50, rssi_jitter=0)
    field.show(EPC_LONG, antenna=2, duration_s=None, rate=4, delay_s=1.0)
    assert field.reads() == []
    clock.now += 0.5
    reads = field.reads()
    assert len(reads) == 5 and {r.antenna for r in reads} == {1}
    assert {r.rssi for r in reads} == {-50}
    clock.now += 1.0  # EPC_LONG arrived half a second ago
    reads = field.reads()
    assert [r.antenna for r in reads].count(1) == 10 and [r.antenna for r in reads].count(2) == 2
    assert field.reads(antennas=[3]) == []
    clock.now += 1.0  # the truck's tag left at 102.0
    reads = field.reads()
    assert [r.antenna for r in reads].count(1) == 5
    assert [r.antenna for r in reads].count(2) == 4
    assert field.remove(EPC_LONG) == 1
    clock.now += 1.0
    assert field.reads() == []


def test_misspelled_fault_is_an_error() -> None:
    faults = Faults()
    faults.set("refuse")
    assert faults.refuse
    with pytest.raises(AttributeError):
        faults.refuse_connections = True  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        faults.set("refuse_connections")


def test_drive_through_crosses_antennas_in_turn() -> None:
    clock = Clock()
    field = TagField(clock=clock)
    presences = field.drive_through(EPC_TRUCK, antennas=(1, 2), duration_s=3.0, rate=10)
    spans = [(p.antenna, p.start, p.end) for p in presences]
    assert spans == [(1, 100.0, 102.0), (2, 101.0, 103.0)]
    with pytest.raises(ValueError):
        field.show("ABC", antenna=1)  # not whole 16-bit words


def test_rospec_of_sllurp_is_understood() -> None:
    selector = {"EnableAntennaID": True, "EnablePeakRSSI": False, "EnableROSpecID": False,
                "EnableFirstSeenTimestamp": True, "EnableLastSeenTimestamp": False,
                "EnableTagSeenCount": True}
    rospec = LLRPROSpec(None, 7, antennas=(1, 3), report_every_n_tags=5, report_timeout_ms=250,
                        tag_content_selector=selector)
    message = LLRPMessage(msgdict={"ADD_ROSPEC": {"ROSpecID": 7, "ROSpec": rospec}})
    summary = llrp.parse_add_rospec(message.msgbytes[llrp.HEADER.size :])
    assert (summary.rospec_id, summary.antennas) == (7, (1, 3))
    assert (summary.batch_size, summary.flush_ms) == (5, 250)
    assert summary.selector.antenna_id and summary.selector.first_seen
    assert not summary.selector.peak_rssi and not summary.selector.rospec_id
    stalled = LLRPROSpec(None, 1, antennas=(1,))  # no report trigger at all
    message = LLRPMessage(msgdict={"ADD_ROSPEC": {"ROSpecID": 1, "ROSpec": stalled}})
    assert llrp.parse_add_rospec(message.msgbytes[llrp.HEADER.size :]).batch_size is None


def test_reader_messages_decode_with_sllurp() -> None:
    model = llrp.ReaderModel(antennas=2)
    caps = LLRPMessage(msgbytes=llrp.capabilities_response(model, 5)).msgdict
    body = caps["GET_READER_CAPABILITIES_RESPONSE"]
    assert body["ID"] == 5 and body["LLRPStatus"]["StatusCode"] == "Success"
    assert body["GeneralDeviceCapabilities"]["MaxNumberOfAntennaSupported"] == 2
    band = body["RegulatoryCapabilities"]["UHFBandCapabilities"]
    assert len(band["TransmitPowerLevelTableEntry"]) == len(model.power_table_cdbm)
    assert len(band["UHFC1G2RFModeTable"]["UHFC1G2RFModeTableEntry"]) == 3
    tag = llrp.TagObservation(bytes.fromhex(EPC_LONG), 2, -61, 5, 6, 3)
    report = llrp.ro_access_report(
        [llrp.tag_report_data(tag, llrp.ContentSelector(first_seen=True), 1, uptime=True)], 9
    )
    data = LLRPMessage(msgbytes=report).msgdict["RO_ACCESS_REPORT"]["TagReportData"][0]
    assert data["EPC"] == EPC_LONG.lower().encode()
    assert (data["AntennaID"], data["PeakRSSI"], data["TagSeenCount"]) == (2, -61, 3)
    assert data["FirstSeenTimestampUptime"] == 5 and "FirstSeenTimestampUTC" not in data
    refusal = LLRPMessage(msgbytes=llrp.reader_event_notification(
        1, llrp.ConnectionStatus.CLIENT_CONNECTION_EXISTS))
    assert not refusal.isSuccess()


async def test_hwsim_llrp_command_from_outside() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hwsim.cli", "--log-level", "WARNING", "llrp", "--port", "0",
        "--tag", f"{EPC_TRUCK}@2", "--rate", "40", "--tick", "0.005",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert line.startswith("listening on 127.0.0.1:")
        recorder = Recorder()
        supervisor = ReaderSupervisor(
            "outside", reader_config(int(line.rsplit(":", 1)[1])), recorder.on_read,
            recorder.on_health,
        )
        async with supervised(supervisor):
            await recorder.reads_after(2, EPC_TRUCK)
        assert {r.antenna for r in recorder.reads} == {2}
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
