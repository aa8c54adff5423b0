"""LLRP 1.0.1 / 1.1 wire format for the simulated reader: messages encoded by hand with struct.

Only what a reader sends and the few fields of client messages a reader must understand are
here. Layouts follow the LLRP standard (EPCglobal LLRP 1.0.1, sections 16 and 17).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

HEADER = struct.Struct("!HII")  # 3 reserved + 3 version + 10 type bits, length, message id
TLV = struct.Struct("!HH")  # 6 reserved + 10 type bits, length
VERSION = 1


class MessageType(enum.IntEnum):
    GET_READER_CAPABILITIES = 1
    GET_READER_CONFIG = 2
    SET_READER_CONFIG = 3
    CLOSE_CONNECTION_RESPONSE = 4
    GET_READER_CAPABILITIES_RESPONSE = 11
    GET_READER_CONFIG_RESPONSE = 12
    SET_READER_CONFIG_RESPONSE = 13
    CLOSE_CONNECTION = 14
    ADD_ROSPEC = 20
    DELETE_ROSPEC = 21
    START_ROSPEC = 22
    STOP_ROSPEC = 23
    ENABLE_ROSPEC = 24
    DISABLE_ROSPEC = 25
    ADD_ROSPEC_RESPONSE = 30
    DELETE_ROSPEC_RESPONSE = 31
    START_ROSPEC_RESPONSE = 32
    STOP_ROSPEC_RESPONSE = 33
    ENABLE_ROSPEC_RESPONSE = 34
    DISABLE_ROSPEC_RESPONSE = 35
    ADD_ACCESSSPEC = 40
    DELETE_ACCESSSPEC = 41
    ENABLE_ACCESSSPEC = 42
    DISABLE_ACCESSSPEC = 43
    ADD_ACCESSSPEC_RESPONSE = 50
    DELETE_ACCESSSPEC_RESPONSE = 51
    ENABLE_ACCESSSPEC_RESPONSE = 52
    DISABLE_ACCESSSPEC_RESPONSE = 53
    RO_ACCESS_REPORT = 61
    KEEPALIVE = 62
    READER_EVENT_NOTIFICATION = 63
    ENABLE_EVENTS_AND_REPORTS = 64
    KEEPALIVE_ACK = 72
    ERROR_MESSAGE = 100
    CUSTOM_MESSAGE = 1023


# the response a reader sends to each request that has one
RESPONSE_TO: dict[int, MessageType] = {
    MessageType.GET_READER_CAPABILITIES: MessageType.GET_READER_CAPABILITIES_RESPONSE,
    MessageType.GET_READER_CONFIG: MessageType.GET_READER_CONFIG_RESPONSE,
    MessageType.SET_READER_CONFIG: MessageType.SET_READER_CONFIG_RESPONSE,
    MessageType.CLOSE_CONNECTION: MessageType.CLOSE_CONNECTION_RESPONSE,
    MessageType.ADD_ROSPEC: MessageType.ADD_ROSPEC_RESPONSE,
    MessageType.DELETE_ROSPEC: MessageType.DELETE_ROSPEC_RESPONSE,
    MessageType.START_ROSPEC: MessageType.START_ROSPEC_RESPONSE,
    MessageType.STOP_ROSPEC: MessageType.STOP_ROSPEC_RESPONSE,
    MessageType.ENABLE_ROSPEC: MessageType.ENABLE_ROSPEC_RESPONSE,
    MessageType.DISABLE_ROSPEC: MessageType.DISABLE_ROSPEC_RESPONSE,
    MessageType.ADD_ACCESSSPEC: MessageType.ADD_ACCESSSPEC_RESPONSE,
    MessageType.DELETE_ACCESSSPEC: MessageType.DELETE_ACCESSSPEC_RESPONSE,
    MessageType.ENABLE_ACCESSSPEC: MessageType.ENABLE_ACCESSSPEC_RESPONSE,
    MessageType.DISABLE_ACCESSSPEC: MessageType.DISABLE_ACCESSSPEC_RESPONSE,
}


class Param(enum.IntEnum):
    """TLV parameter types used here."""

    UTC_TIMESTAMP = 128
    UPTIME = 129
    GENERAL_DEVICE_CAPABILITIES = 137
    RECEIVE_SENSITIVITY_TABLE_ENTRY = 139
    PER_ANTENNA_AIR_PROTOCOL = 140
    GPIO_CAPABILITIES = 141
    LLRP_CAPABILITIES = 142
    REGULATORY_CAPABILITIES = 143
    UHF_BAND_CAPABILITIES = 144
    TRANSMIT_POWER_LEVEL_TABLE_ENTRY = 145
    FREQUENCY_INFORMATION = 146
    FREQUENCY_HOP_TABLE = 147
    ROSPEC = 177
    ROBOUNDARY_SPEC = 178
    AISPEC = 183
    AISPEC_STOP_TRIGGER = 184
    TAG_OBSERVATION_TRIGGER = 185
    IDENTIFICATION = 218
    KEEPALIVE_SPEC = 220
    ANTENNA_PROPERTIES = 221
    EVENTS_AND_REPORTS = 226
    RO_REPORT_SPEC = 237
    TAG_REPORT_CONTENT_SELECTOR = 238
    TAG_REPORT_DATA = 240
    EPC_DATA = 241
    READER_EVENT_NOTIFICATION_DATA = 246
    CONNECTION_ATTEMPT_EVENT = 256
    LLRP_STATUS = 287
    C1G2_LLRP_CAPABILITIES = 327
    UHF_C1G2_RF_MODE_TABLE = 328
    UHF_C1G2_RF_MODE_TABLE_ENTRY = 329


class TV(enum.IntEnum):
    """TV (fixed length) parameter types of a TagReportData."""

    ANTENNA_ID = 1
    FIRST_SEEN_UTC = 2
    FIRST_SEEN_UPTIME = 3
    LAST_SEEN_UTC = 4
    LAST_SEEN_UPTIME = 5
    PEAK_RSSI = 6
    CHANNEL_INDEX = 7
    TAG_SEEN_COUNT = 8
    ROSPEC_ID = 9
    INVENTORY_PARAMETER_SPEC_ID = 10
    EPC_96 = 13
    SPEC_INDEX = 14
    ACCESS_SPEC_ID = 16


class ConnectionStatus(enum.IntEnum):
    SUCCESS = 0
    READER_CONNECTION_EXISTS = 1
    CLIENT_CONNECTION_EXISTS = 2
    OTHER_REASON = 3
    ANOTHER_CONNECTION_ATTEMPTED = 4


class Status(enum.IntEnum):
    SUCCESS = 0
    PARAMETER_ERROR = 100
    UNSUPPORTED_MESSAGE = 109
    DEVICE_ERROR = 401


# --- encoding -----------------------------------------------------------------------------------


def _with_body(msg_type: int, body: bytes, message_id: int) -> bytes:
    """One LLRP message: header and body."""
    word = (VERSION << 10) | (msg_type & 0x3FF)
    return HEADER.pack(word, HEADER.size + len(body), message_id) + body


def tlv(param_type: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return TLV.pack(param_type & 0x3FF, TLV.size + len(body)) + body


def llrp_status(code: int = Status.SUCCESS, description: str = "") -> bytes:
    text = description.encode("utf-8")
    return tlv(Param.LLRP_STATUS, struct.pack("!HH", code, len(text)), text)


def timestamp(microseconds: int, uptime: bool = False) -> bytes:
    kind = Param.UPTIME if uptime else Param.UTC_TIMESTAMP
    return tlv(kind, struct.pack("!Q", microseconds))


def reader_event_notification(
    microseconds: int, status: int = ConnectionStatus.SUCCESS, uptime: bool = False
) -> bytes:
    event = tlv(Param.CONNECTION_ATTEMPT_EVENT, struct.pack("!H", status))
    data = tlv(Param.READER_EVENT_NOTIFICATION_DATA, timestamp(microseconds, uptime), event)
    return _with_body(MessageType.READER_EVENT_NOTIFICATION, data, 0)


def response(msg_type: int, message_id: int, *params: bytes) -> bytes:
    """A response to a client request: LLRPStatus first, then any parameters."""
    body = b"".join(params) if params else llrp_status()
    return _with_body(msg_type, body, message_id)


def keepalive(message_id: int) -> bytes:
    return _with_body(MessageType.KEEPALIVE, b"", message_id)


def error_message(message_id: int, code: int, description: str) -> bytes:
    return _with_body(MessageType.ERROR_MESSAGE, llrp_status(code, description), message_id)


def raw_message(msg_type: int, body: bytes, message_id: int) -> bytes:
    """Any message type, known or not (fault injection)."""
    return _with_body(msg_type, body, message_id)


@dataclass(frozen=True)
class ReaderModel:
    """What the simulated reader says about itself in its capabilities."""

    antennas: int = 4
    manufacturer: int = 25882  # IANA private enterprise number (Impinj's, as real readers send)
    model: int = 2001002
    firmware: str = "hwsim-llrp 1.0"
    power_table_cdbm: tuple[int, ...] = tuple(range(1000, 3025, 25))  # 10.00 .. 30.00 dBm
    hop_table_khz: tuple[int, ...] = (902750, 903250, 903750, 904250, 904750, 927250)
    country_code: int = 840
    gpis: int = 4
    gpos: int = 4


def capabilities_response(
    model: ReaderModel, message_id: int, regulatory_part: bool = True
) -> bytes:
    firmware = model.firmware.encode("ascii")
    sensitivity = tlv(Param.RECEIVE_SENSITIVITY_TABLE_ENTRY, struct.pack("!Hh", 1, 0))
    air_protocols = b"".join(
        tlv(Param.PER_ANTENNA_AIR_PROTOCOL, struct.pack("!HHB", antenna, 1, 1))
        for antenna in range(1, model.antennas + 1)
    )
    general = tlv(
        Param.GENERAL_DEVICE_CAPABILITIES,
        struct.pack(
            "!HHIIH", model.antennas, 0x4000, model.manufacturer, model.model, len(firmware)
        ),
        firmware,
        sensitivity,
        tlv(Param.GPIO_CAPABILITIES, struct.pack("!HH", model.gpis, model.gpos)),
        air_protocols,
    )
    llrp = tlv(Param.LLRP_CAPABILITIES, struct.pack("!BBHIIIII", 0x40, 1, 0, 1, 16, 1, 1508, 16))
    power_table = b"".join(
        tlv(Param.TRANSMIT_POWER_LEVEL_TABLE_ENTRY, struct.pack("!Hh", index, value))
        for index, value in enumerate(model.power_table_cdbm, start=1)
    )
    hops = model.hop_table_khz
    frequency = tlv(
        Param.FREQUENCY_INFORMATION,
        struct.pack("!B", 0x80),
        tlv(
            Param.FREQUENCY_HOP_TABLE,
            struct.pack("!BBH", 1, 0, len(hops)),
            struct.pack(f"!{len(hops)}I", *hops),
        ),
    )
    modes = tlv(
        Param.UHF_C1G2_RF_MODE_TABLE,
        _rf_mode(1, 0x80, 0, 0, 640000, 1500, 6250, 6250),
        _rf_mode(2, 0x80, 1, 0, 640000, 1500, 6250, 6250),
        _rf_mode(1000, 0x40, 0, 0, 40000, 1500, 25000, 25000),
    )
    band = tlv(Param.UHF_BAND_CAPABILITIES, power_table, frequency, modes)
    regulatory = tlv(
        Param.REGULATORY_CAPABILITIES, struct.pack("!HH", model.country_code, 1), band
    )
    c1g2 = tlv(Param.C1G2_LLRP_CAPABILITIES, struct.pack("!BH", 0x40, 2))
    return response(
        MessageType.GET_READER_CAPABILITIES_RESPONSE,
        message_id,
        llrp_status(),
        general,
        llrp,
        regulatory if regulatory_part else b"",
        c1g2,
    )


def _rf_mode(
    mode_id: int, dr_flags: int, modulation: int, flm: int, bdr: int, pie: int, tari: int,
    max_tari: int,
) -> bytes:
    return tlv(
        Param.UHF_C1G2_RF_MODE_TABLE_ENTRY,
        struct.pack(
            "!IBBBBIIIII", mode_id, dr_flags, modulation, flm, 0, bdr, pie, tari, max_tari, 0
        ),
    )


def reader_config_response(
    model: ReaderModel, message_id: int, keepalive_ms: int, reader_id: bytes
) -> bytes:
    identification = tlv(Param.IDENTIFICATION, struct.pack("!BH", 0, len(reader_id)), reader_id)
    antennas = b"".join(
        tlv(Param.ANTENNA_PROPERTIES, struct.pack("!BHh", 0x80, antenna, 600))
        for antenna in range(1, model.antennas + 1)
    )
    keepalive_spec = tlv(
        Param.KEEPALIVE_SPEC, struct.pack("!BI", 1 if keepalive_ms else 0, keepalive_ms)
    )
    events = tlv(Param.EVENTS_AND_REPORTS, struct.pack("!B", 0))
    return response(
        MessageType.GET_READER_CONFIG_RESPONSE,
        message_id,
        llrp_status(),
        identification,
        antennas,
        keepalive_spec,
        events,
    )


# --- tag reports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentSelector:
    """Which optional fields a TagReportData carries (the client's TagReportContentSelector)."""

    rospec_id: bool = True
    spec_index: bool = False
    inventory_parameter_spec_id: bool = False
    antenna_id: bool = True
    channel_index: bool = False
    peak_rssi: bool = True
    first_seen: bool = False
    last_seen: bool = True
    tag_seen_count: bool = True
    access_spec_id: bool = False

    @classmethod
    def from_flags(cls, flags: int) -> ContentSelector:
        names = [f for f in cls.__dataclass_fields__]
        return cls(**{name: bool(flags & (1 << (15 - i))) for i, name in enumerate(names)})


_U16 = struct.Struct("!BH")
_U32 = struct.Struct("!BI")
_U64 = struct.Struct("!BQ")
_S8 = struct.Struct("!Bb")


@dataclass(frozen=True)
class TagObservation:
    """One TagReportData: an EPC seen on an antenna, possibly several times."""

    epc: bytes
    antenna: int
    rssi: int
    first_seen_us: int
    last_seen_us: int
    seen_count: int = 1
    channel: int = 1


def tag_report_data(
    tag: TagObservation, selector: ContentSelector, rospec_id: int, uptime: bool = False
) -> bytes:
    """Encode one TagReportData; a 96-bit EPC goes in the compact EPC-96 TV parameter."""
    if len(tag.epc) == 12:
        parts = [bytes((0x80 | TV.EPC_96,)) + tag.epc]
    else:
        parts = [tlv(Param.EPC_DATA, struct.pack("!H", len(tag.epc) * 8), tag.epc)]
    if selector.rospec_id:
        parts.append(_U32.pack(0x80 | TV.ROSPEC_ID, rospec_id))
    if selector.spec_index:
        parts.append(_U16.pack(0x80 | TV.SPEC_INDEX, 1))
    if selector.inventory_parameter_spec_id:
        parts.append(_U16.pack(0x80 | TV.INVENTORY_PARAMETER_SPEC_ID, 1))
    if selector.antenna_id:
        parts.append(_U16.pack(0x80 | TV.ANTENNA_ID, tag.antenna))
    if selector.peak_rssi:
        parts.append(_S8.pack(0x80 | TV.PEAK_RSSI, max(-128, min(127, tag.rssi))))
    if selector.channel_index:
        parts.append(_U16.pack(0x80 | TV.CHANNEL_INDEX, tag.channel))
    if selector.first_seen:
        kind = TV.FIRST_SEEN_UPTIME if uptime else TV.FIRST_SEEN_UTC
        parts.append(_U64.pack(0x80 | kind, tag.first_seen_us))
    if selector.last_seen:
        kind = TV.LAST_SEEN_UPTIME if uptime else TV.LAST_SEEN_UTC
        parts.append(_U64.pack(0x80 | kind, tag.last_seen_us))
    if selector.tag_seen_count:
        parts.append(_U16.pack(0x80 | TV.TAG_SEEN_COUNT, min(tag.seen_count, 0xFFFF)))
    if selector.access_spec_id:
        parts.append(_U32.pack(0x80 | TV.ACCESS_SPEC_ID, 0))
    return tlv(Param.TAG_REPORT_DATA, *parts)


def ro_access_report(tag_reports: list[bytes], message_id: int) -> bytes:
    return _with_body(MessageType.RO_ACCESS_REPORT, b"".join(tag_reports), message_id)


def truncate_parameter(tag_report: bytes, missing: int = 1) -> bytes:
    """A TagReportData cut short: its declared length stays, its last bytes are gone.

    The message around it keeps a correct length, so framing survives but decoding does not
    (the last TV field is incomplete), as with a reader firmware fault.
    """
    if len(tag_report) <= TLV.size + missing:
        raise ValueError("tag report too short to truncate")
    return tag_report[:-missing]


# --- decoding client messages -------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    msg_type: int
    version: int
    length: int
    message_id: int


def parse_header(data: bytes) -> Header:
    word, length, message_id = HEADER.unpack_from(data)
    return Header(word & 0x3FF, (word >> 10) & 0x7, length, message_id)


def iter_params(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Yield (type, body) of each TLV parameter; stop at a TV parameter or malformed bytes."""
    offset = 0
    while offset + TLV.size <= len(data):
        if data[offset] & 0x80:
            return
        param_type, length = TLV.unpack_from(data, offset)
        if length < TLV.size or offset + length > len(data):
            raise ValueError(f"parameter {param_type & 0x3FF} at {offset} runs past its message")
        yield param_type & 0x3FF, data[offset + TLV.size : offset + length]
        offset += length


def find_param(data: bytes, param_type: int) -> bytes | None:
    for found, body in iter_params(data):
        if found == param_type:
            return body
    return None


@dataclass
class ROSpecSummary:
    """What the simulated reader honours of an ADD_ROSPEC."""

    rospec_id: int
    antennas: tuple[int, ...] = ()
    report_n: int = 0  # ROReportSpec N
    report_trigger: int = 0
    observe_n_tags: int = 0  # AISpec stop trigger: tag observation, N tags
    observe_timeout_ms: int = 0
    aispec_duration_ms: int = 0
    selector: ContentSelector = field(default_factory=ContentSelector)

    @property
    def batch_size(self) -> int | None:
        """Tags per RO_ACCESS_REPORT, or None when the spec never triggers a report."""
        if self.report_trigger in (1, 2) and self.report_n > 0:
            return self.report_n
        if self.observe_n_tags > 0:
            return self.observe_n_tags
        if self.aispec_duration_ms > 0:
            return 1_000_000
        return None

    @property
    def flush_ms(self) -> int | None:
        """Longest time tags may wait before a report goes out (None: only by count)."""
        if self.observe_timeout_ms > 0:
            return self.observe_timeout_ms
        if self.aispec_duration_ms > 0:
            return self.aispec_duration_ms
        return None


def parse_add_rospec(body: bytes) -> ROSpecSummary:
    rospec = find_param(body, Param.ROSPEC)
    if rospec is None or len(rospec) < 6:
        raise ValueError("ADD_ROSPEC without a ROSpec")
    (rospec_id,) = struct.unpack_from("!I", rospec)
    summary = ROSpecSummary(rospec_id=rospec_id)
    for param_type, param in iter_params(rospec[6:]):
        if param_type == Param.AISPEC:
            (count,) = struct.unpack_from("!H", param)
            summary.antennas = struct.unpack_from(f"!{count}H", param, 2)
            stop = find_param(param[2 + 2 * count :], Param.AISPEC_STOP_TRIGGER)
            if stop is not None:
                trigger, duration = struct.unpack_from("!BI", stop)
                if trigger == 1:
                    summary.aispec_duration_ms = duration
                observation = find_param(stop[5:], Param.TAG_OBSERVATION_TRIGGER)
                if trigger == 3 and observation is not None:
                    kind, _, n_tags, _, _, timeout = struct.unpack_from("!BBHHHI", observation)
                    if kind == 0:
                        summary.observe_n_tags = n_tags
                        summary.observe_timeout_ms = timeout
        elif param_type == Param.RO_REPORT_SPEC:
            summary.report_trigger, summary.report_n = struct.unpack_from("!BH", param)
            selector = find_param(param[3:], Param.TAG_REPORT_CONTENT_SELECTOR)
            if selector is not None:
                (flags,) = struct.unpack_from("!H", selector)
                summary.selector = ContentSelector.from_flags(flags)
    return summary


def parse_keepalive_ms(set_reader_config_body: bytes) -> int | None:
    """The keepalive period a SET_READER_CONFIG asks for, if it holds a KeepaliveSpec."""
    spec = find_param(set_reader_config_body[1:], Param.KEEPALIVE_SPEC)
    if spec is None:
        return None
    trigger, interval = struct.unpack_from("!BI", spec)
    return interval if trigger == 1 else 0
