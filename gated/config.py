"""Site configuration: one YAML file, validated by pydantic, refused whole when invalid.

The gate is a safety system: an invalid file never falls back to defaults. Every field carries
a description, which `docs/configuration.md` is generated from.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

# strict: YAML's `true` is not port 1
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
Address = Annotated[int, Field(ge=0, le=65535, strict=True)]
Baud = Annotated[int, Field(gt=0, le=4_000_000, strict=True)]


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- devices -----------------------------------------------------------------------------------


class CameraConfig(Strict):
    name: str = Field(description="Camera name as it appears on images and in the kiosk, e.g. AH.")
    snapshot_url: str = Field(description="HTTP URL that returns one JPEG per GET request.")
    stream_url: str | None = Field(
        default=None, description="Optional video stream URL (MJPEG/RTSP) read through OpenCV."
    )
    timeout_s: float = Field(default=2.0, gt=0, description="Snapshot request timeout, seconds.")


class LlrpReaderConfig(Strict):
    host: str = Field(description="LLRP reader host name or IP address.")
    port: Port = Field(default=5084, description="LLRP TCP port (5084 plain, 5085 TLS).")
    antennas: list[Annotated[int, Field(ge=1, le=64)]] = Field(
        default=[1], min_length=1, description="Antenna ports to inventory on."
    )
    tx_power_dbm: float | None = Field(
        default=None, description="Transmit power in dBm; null uses the reader's maximum."
    )
    backoff_cap_s: float = Field(
        default=30.0, gt=0, description="Upper bound of the reconnect back-off, seconds."
    )
    watchdog_s: float = Field(
        default=10.0,
        gt=0,
        description="Reconnect when no message (report or keepalive) arrived for this long.",
    )
    keepalive_s: float = Field(
        default=2.0, gt=0, description="Keepalive period requested from the reader, seconds."
    )
    dedupe_window_s: float = Field(
        default=2.0, ge=0, description="Reads of one EPC on one antenna within this are one read."
    )


class RpmRegisterMap(Strict):
    """Where a Modbus RPM keeps its values (protocol addresses, zero-based)."""

    status: Address = Field(
        default=0,
        description="Input register of status bits: 0 occupied, 1 gamma alarm, 2 neutron alarm, "
        "3 fault, 4 tamper.",
    )
    heartbeat: Address = Field(
        default=1,
        description="Input register the monitor increments with every sample (at least once a "
        "second); a new value means new counts.",
    )
    occupancy_id: Address = Field(default=2, description="Input register: occupancy counter.")
    gamma_counts: Address = Field(
        default=10,
        description="First of the gamma channels, each a 32-bit count (low word first): counts "
        "over the last 1 s.",
    )
    neutron_counts: Address = Field(
        default=20,
        description="First of the neutron channels, each a 32-bit count (low word first): "
        "counts over the last 1 s.",
    )
    gamma_background: Address = Field(
        default=30,
        description="First of 4 gamma backgrounds, each a 32-bit float (low word first).",
    )
    neutron_background: Address = Field(
        default=40, description="First of 2 neutron backgrounds, each a 32-bit float."
    )
    gamma_channels: int = Field(default=4, ge=1, le=8, description="Number of gamma panels.")
    neutron_channels: int = Field(default=2, ge=0, le=4, description="Number of neutron panels.")


class RpmConfig(Strict):
    transport: Literal["modbus", "ascii_tcp", "ascii_serial"] = Field(
        description="How the monitor is reached: Modbus TCP, ASCII lines over TCP or serial."
    )
    host: str | None = Field(default=None, description="Host for modbus and ascii_tcp.")
    port: Port | None = Field(default=None, description="TCP port for modbus and ascii_tcp.")
    serial_port: str | None = Field(default=None, description="Serial device for ascii_serial.")
    baudrate: Baud = Field(default=9600, description="Serial speed for ascii_serial.")
    device_id: int = Field(default=1, ge=0, le=247, description="Modbus device (unit) id.")
    registers: RpmRegisterMap = Field(
        default_factory=RpmRegisterMap, description="Modbus register map of the monitor."
    )
    poll_interval_s: float = Field(
        default=0.2, gt=0, le=5, description="Modbus poll period (gamma samples every 200 ms)."
    )
    heartbeat_timeout_s: float = Field(
        default=3.0,
        gt=0,
        description="Modbus: a heartbeat register that does not change for this long fails the "
        "lane closed.",
    )
    line_timeout_s: float = Field(
        default=12.0,
        gt=0,
        description="ASCII: no line for this long fails the lane closed (an idle monitor sends "
        "a background about every 5 s).",
    )
    timeout_s: float = Field(
        default=1.0, gt=0, le=10, description="Answer timeout of one Modbus request, seconds."
    )
    backoff_cap_s: float = Field(
        default=30.0, gt=0, description="Upper bound of the reconnect back-off, seconds."
    )
    sigma: float | None = Field(
        default=None,
        gt=0,
        description="Alarm threshold n in FG > BG + n*sqrt(BG); null uses site.rpm_sigma.",
    )

    @model_validator(mode="after")
    def _transport_fields(self) -> RpmConfig:
        if self.transport in ("modbus", "ascii_tcp") and (self.host is None or self.port is None):
            raise ValueError(f"transport {self.transport} needs host and port")
        if self.transport == "ascii_serial" and self.serial_port is None:
            raise ValueError("transport ascii_serial needs serial_port")
        return self


class PlcRegisterMap(Strict):
    """The gate PLC's map (protocol addresses, zero-based; register 40101 is address 100)."""

    entry_loop: Address = Field(default=0, description="Discrete input: entry loop occupied.")
    exit_loop: Address = Field(default=1, description="Discrete input: exit loop occupied.")
    photo_eye: Address = Field(default=2, description="Discrete input: photo-eye beam blocked.")
    container_present: Address | None = Field(
        default=3,
        description="Discrete input: light curtain at container height sees a container on the "
        "chassis (tells an unreadable container from an empty chassis); null if none fitted.",
    )
    barrier_status: Address = Field(
        default=100,
        description="Holding register: 16 open, 17 closed, 32 opening, 33 closing, other fault.",
    )
    container_count: Address | None = Field(
        default=103,
        description="Holding register: containers the profile scanner counts on the chassis "
        "(0, 1 or 2; two 20-foot containers show a gap); null if no scanner is fitted.",
    )
    barrier_position: Address = Field(
        default=101, description="Holding register: barrier position 0-100 %."
    )
    heartbeat: Address = Field(
        default=102, description="Holding register the PLC increments every scan cycle."
    )
    open_coil: Address = Field(default=0, description="Coil: pulse to open the barrier.")
    close_coil: Address = Field(default=1, description="Coil: pulse to close the barrier.")
    stop_coil: Address = Field(default=2, description="Coil: pulse to stop the barrier.")
    red_light_coil: Address = Field(default=3, description="Coil: traffic light red.")
    green_light_coil: Address = Field(default=4, description="Coil: traffic light green.")


class PlcConfig(Strict):
    host: str = Field(description="PLC host name or IP address.")
    port: Port = Field(default=502, description="Modbus TCP port.")
    device_id: int = Field(default=1, ge=0, le=247, description="Modbus device (unit) id.")
    registers: PlcRegisterMap = Field(
        default_factory=PlcRegisterMap, description="Register map of this site's PLC."
    )
    poll_interval_s: float = Field(default=0.1, gt=0, le=5, description="Poll period, seconds.")
    timeout_s: float = Field(
        default=1.0, gt=0, le=10, description="Answer timeout of one Modbus request, seconds."
    )
    heartbeat_timeout_s: float = Field(
        default=2.0,
        gt=0,
        description="A heartbeat register that does not change for this long means the PLC "
        "has stopped: the lane fails closed.",
    )
    backoff_cap_s: float = Field(
        default=30.0, gt=0, description="Upper bound of the reconnect back-off, seconds."
    )
    barrier_travel_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="A barrier still not open or closed this long after a command is a fault.",
    )


class SerialDeviceConfig(Strict):
    port: str = Field(description="Serial device path (or a pyserial URL such as socket://).")
    baudrate: Baud = Field(default=9600, description="Line speed.")
    backoff_cap_s: float = Field(
        default=30.0, gt=0, description="Upper bound of the reopen back-off when the port fails."
    )


class CardReaderConfig(SerialDeviceConfig):
    verify_timeout_s: float = Field(
        default=3.0, gt=0, description="A credential verification must finish within this."
    )
    biometric_result: Literal["explicit", "implicit"] = Field(
        default="explicit",
        description="explicit: the reader reports the fingerprint match (B=, S=); implicit: it "
        "sends card data only after a match, so card data without B= counts as a match.",
    )


class ScaleConfig(SerialDeviceConfig):
    protocol: Literal["toledo", "sma"] = Field(description="Indicator output format.")
    max_gross_kg: float = Field(
        default=67000.0, gt=0, description="Heavier than this goes to a clerk (lane limit)."
    )
    min_gross_kg: float = Field(
        default=2000.0, ge=0, description="Lighter than this is not a truck on the scale."
    )
    checksum: bool | None = Field(
        default=None,
        description="Toledo checksum byte after CR: true required, false absent, null either.",
    )
    stable_frames: int = Field(
        default=5, ge=1, description="Consecutive no-motion frames needed for a stable weight."
    )
    stable_tolerance_kg: float = Field(
        default=20.0, ge=0, description="Those frames may differ by at most this much."
    )
    silence_s: float = Field(
        default=3.0, gt=0, description="No frame for this long reports the scale lost."
    )


class PrinterConfig(SerialDeviceConfig):
    width_chars: int = Field(default=42, ge=20, le=80, description="Characters per ticket line.")
    status_timeout_s: float = Field(
        default=1.0, gt=0, description="The printer must answer a status request within this."
    )


class LaneTimeouts(Strict):
    identify_s: float = Field(
        default=20.0, gt=0, description="Time to gather reads after arrival before deciding."
    )
    credential_s: float = Field(
        default=60.0, gt=0, description="Time the driver has to present a credential."
    )
    leave_s: float = Field(
        default=120.0, gt=0, description="Time for the truck to leave after PROCEED."
    )
    scan_s: float = Field(
        default=30.0, gt=0, description="Time for the radiation scan to complete after arrival."
    )


def _device_addresses(lane: LaneConfig) -> list[tuple[str, str]]:
    """Where a lane's own devices are, as comparable strings."""
    found = [("PLC", f"modbus {lane.plc.host}:{lane.plc.port}/{lane.plc.device_id}")]
    rpm = lane.rpm
    if rpm.serial_port is not None:
        found.append(("radiation monitor", f"serial {rpm.serial_port}"))
    else:
        found.append(("radiation monitor", f"{rpm.transport} {rpm.host}:{rpm.port}"
                      f"/{rpm.device_id}"))
    for kind, device in (("card reader", lane.card_reader), ("scale", lane.scale),
                         ("printer", lane.printer)):
        if device is not None:
            found.append((kind, f"serial {device.port}"))
    return found


class LaneConfig(Strict):
    id: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="Lane identifier, unique in the gate, e.g. '1' or 'IN-1' (letters, digits, "
        "'-', '_', '.'; it is part of MQTT topics).",
    )
    direction: Literal["in", "out"] = Field(description="In-gate or out-gate lane.")
    cameras: list[CameraConfig] = Field(
        default=[], description="Gate cameras looking at this lane's trucks."
    )
    rfid: LlrpReaderConfig | None = Field(default=None, description="The lane's LLRP reader.")
    rpm: RpmConfig = Field(description="Radiation portal monitor. Required: no scan, no pass.")
    plc: PlcConfig = Field(description="Gate PLC with loops, photo-eye, barrier and lights.")
    card_reader: CardReaderConfig | None = Field(
        default=None, description="TWIC card reader at the pedestal."
    )
    scale: ScaleConfig | None = Field(default=None, description="Lane scale, if any.")
    printer: PrinterConfig | None = Field(default=None, description="Ticket printer (ESC/POS).")
    timeouts: LaneTimeouts = Field(
        default_factory=LaneTimeouts, description="Timeouts of the lane's steps."
    )

    @model_validator(mode="after")
    def _unique_cameras(self) -> LaneConfig:
        names = [camera.name for camera in self.cameras]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"camera names must be unique in a lane, repeated: {repeated}")
        return self


# --- yard --------------------------------------------------------------------------------------


class YardBlock(Strict):
    name: str = Field(description="Block name printed on tickets, e.g. 'A1'.")
    origin_x_m: float = Field(description="X of the block's bay 1 / row 1 corner, metres.")
    origin_y_m: float = Field(description="Y of the block's bay 1 / row 1 corner, metres.")
    bays: int = Field(gt=0, description="Number of 20-foot bays along X.")
    rows: int = Field(gt=0, description="Number of rows along Y.")
    tiers: int = Field(default=5, gt=0, description="Maximum stacking height.")
    bay_length_m: float = Field(default=6.5, gt=0, description="Bay pitch, metres.")
    row_width_m: float = Field(default=2.8, gt=0, description="Row pitch, metres.")
    tier_height_m: float = Field(default=2.9, gt=0, description="Tier height, metres.")


class MachineConfig(Strict):
    id: str = Field(description="Machine identifier, e.g. 'TP-07'.")
    kind: Literal["top_pick", "reach_stacker", "straddle_carrier", "rtg"] = Field(
        description="Kind of container handling equipment."
    )
    reader: LlrpReaderConfig = Field(description="The machine's LLRP reader.")
    position_url: str = Field(
        description="Position unit: tcp://host:port streaming JSON lines {x, y, z, spreader}."
    )


class YardConfig(Strict):
    blocks: list[YardBlock] = Field(default=[], description="Yard geometry, one entry per block.")
    machines: list[MachineConfig] = Field(default=[], description="Yard machines with RFID.")

    @model_validator(mode="after")
    def _consistent(self) -> YardConfig:
        from gated.yard import yard_problems  # the geometry lives with the yard logic

        problems = yard_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --- site services -----------------------------------------------------------------------------


class DatabaseConfig(Strict):
    url: str = Field(
        description="SQLAlchemy URL: sqlite:///var/gated.db (embedded, WAL) or "
        "postgresql+psycopg://user@host/gated."
    )


class TlsConfig(Strict):
    ca_file: str = Field(description="CA certificate file that signed the broker's certificate.")
    cert_file: str | None = Field(default=None, description="Client certificate, if required.")
    key_file: str | None = Field(default=None, description="Client key, if required.")


class MqttConfig(Strict):
    host: str = Field(description="MQTT broker host.")
    port: Port = Field(default=1883, description="MQTT broker port.")
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version.")
    client_id: str | None = Field(default=None, description="Client id; default gated-<site>.")
    username: str | None = Field(default=None, description="Broker user name.")
    password_file: str | None = Field(
        default=None, description="File holding the broker password (kept out of this file)."
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings; null for plain TCP.")
    keepalive_s: int = Field(default=30, ge=5, description="MQTT keepalive, seconds.")
    topic_prefix: str = Field(default="gated", description="Topics live under <prefix>/<site>/.")
    tos_ack_timeout_s: float = Field(
        default=30.0, gt=0, description="A move not acknowledged by the TOS is resent after this."
    )
    max_inflight: int = Field(default=100, ge=1, description="QoS 1 messages in flight at once.")
    session_expiry_s: int = Field(
        default=86400,
        ge=0,
        description="How long the broker keeps the gate's session (and the TOS commands queued "
        "for it) while the gate is disconnected, seconds.",
    )
    reconnect_max_s: int = Field(
        default=30, ge=1, description="Upper bound of the reconnect back-off, seconds."
    )
    max_command_bytes: int = Field(
        default=65536, ge=256, description="TOS commands larger than this are refused."
    )
    outbox_keep_hours: float = Field(
        default=24.0,
        ge=0,
        description="Published events are kept this long for inspection, then deleted "
        "(events of moves the TOS has not acknowledged are always kept).",
    )


class KioskUser(Strict):
    username: str = Field(
        pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="Login name (letters, digits, _.@-)."
    )
    role: Literal["clerk", "supervisor", "viewer"] = Field(description="What the user may do.")
    password_hash: str = Field(description="Argon2 hash made with `gated kiosk hash-password`.")


class KioskConfig(Strict):
    host: str = Field(default="127.0.0.1", description="Address the kiosk web server binds to.")
    port: Port = Field(default=8080, description="Kiosk HTTP port.")
    session_minutes: int = Field(default=480, gt=0, description="Login session lifetime.")
    secret_file: str = Field(
        description="File with the secret that signs sessions (created if missing)."
    )
    users: list[KioskUser] = Field(default=[], description="Kiosk accounts.")
    monitoring_from: list[str] = Field(
        default=["127.0.0.1", "::1"],
        description="Client addresses allowed to read /metrics and /healthz without a login "
        "(a Prometheus scraper or a systemd health check); others get 403.",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins allowed per user name and per client address in the window.",
    )
    login_lockout_minutes: float = Field(
        default=5.0, gt=0, description="Window of the failed-login limit, minutes."
    )
    cookie_secure: bool = Field(
        default=False,
        description="Send the session cookie over HTTPS only (set when served behind TLS).",
    )

    @model_validator(mode="after")
    def _unique_users(self) -> KioskConfig:
        names = [user.username for user in self.users]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"kiosk user names must be unique, repeated: {', '.join(repeated)}")
        return self


class ImageStoreConfig(Strict):
    directory: str = Field(description="Where camera images are stored.")
    max_age_days: float = Field(default=30.0, gt=0, description="Images older than this go.")
    max_total_mb: float = Field(
        default=20000.0, gt=0, description="Oldest images go first above this total size."
    )


class OcrConfig(Strict):
    engine: Literal["tesseract", "ppocr"] = Field(
        default="tesseract", description="Recognition engine that reads every image."
    )
    fallback_engine: Literal["ppocr", "tesseract", "none"] = Field(
        default="ppocr",
        description="Engine that reads again what the first leaves unreadable; skipped with a "
        "warning where it is not installed, 'none' for the first engine alone.",
    )
    min_confidence: float = Field(
        default=0.6, ge=0, le=1, description="Below this a read is 'unreadable' (clerk decides)."
    )


class SecurityConfig(Strict):
    marsec_level: Literal[1, 2, 3] = Field(
        default=1, description="Maritime security level; sets the canceled card list max age."
    )
    fascn_key_file: str = Field(
        description="File with the key of the FASC-N keyed hash (created if missing, mode 0600)."
    )
    biometric_required: bool = Field(
        default=True,
        description="A credential without a biometric match is invalid (TWIC risk group A).",
    )


class SiteConfig(Strict):
    site_id: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="Terminal id, used in topics.")
    gate_id: str = Field(description="Gate complex id within the terminal.")
    database: DatabaseConfig = Field(description="Where transactions are kept.")
    mqtt: MqttConfig = Field(description="Broker the TOS subscribes to.")
    kiosk: KioskConfig = Field(description="Clerk kiosk web server.")
    images: ImageStoreConfig = Field(description="Camera image storage and retention.")
    ocr: OcrConfig = Field(default_factory=OcrConfig, description="Container number reading.")
    security: SecurityConfig = Field(description="Credential checks.")
    rpm_sigma: float = Field(
        default=6.0, gt=0, description="Default alarm threshold n for every lane's RPM."
    )
    lanes: list[LaneConfig] = Field(min_length=1, description="The gate's lanes.")
    yard: YardConfig = Field(default_factory=YardConfig, description="Yard machines and geometry.")

    @model_validator(mode="after")
    def _unique_lanes(self) -> SiteConfig:
        ids = [lane.id for lane in self.lanes]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"lane ids must be unique, repeated: {', '.join(duplicates)}")
        # one device wired to two lanes would let one lane's reading clear another lane's truck
        owners: dict[str, str] = {}
        for lane in self.lanes:
            for kind, where in _device_addresses(lane):
                if where in owners and owners[where] != lane.id:
                    raise ValueError(
                        f"lanes {owners[where]} and {lane.id} share the {kind} at {where}"
                    )
                owners[where] = lane.id
        return self

    def lane(self, lane_id: str) -> LaneConfig:
        for lane in self.lanes:
            if lane.id == lane_id:
                return lane
        raise KeyError(lane_id)


# --- loading with line numbers -----------------------------------------------------------------


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file, located by line and field path."""

    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "file"
        return f"{where}: {self.path or '<root>'}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `issues` lists every problem found."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{source}: {len(issues)} error(s)\n{lines}")


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Walk a composed YAML tree along a pydantic error location; return the deepest node."""
    node = root
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [pair for pair in node.value if pair[0].value == str(key)]
            if not match:
                return node
            key_node, value_node = match[0]
            # a scalar's error is shown at its key's line, which is the value's line too
            node = value_node if not isinstance(value_node, yaml.ScalarNode) else key_node
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return node
            node = node.value[key]
        else:
            return node
    return node


def _issue_from_error(root: yaml.Node | None, error: ErrorDetails) -> ConfigIssue:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
    node = _node_at(root, loc)
    line = node.start_mark.line + 1 if node is not None else None
    path = ".".join(str(part) for part in loc)
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (misspelled?)"
    elif error["type"] == "missing":
        message = "required field missing"
    return ConfigIssue(line=line, path=path, message=message)


def _merge_misspellings(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """Report a misspelled key once, with its likely intent, not also as a missing field."""
    missing = {i.path: i for i in issues if i.message == "required field missing"}
    merged: list[ConfigIssue] = []
    explained: set[str] = set()
    for issue in issues:
        if issue.message != "unknown key (misspelled?)":
            continue
        parent, _, key = issue.path.rpartition(".")
        siblings = {
            path.rpartition(".")[2]: path
            for path in missing
            if path.rpartition(".")[0] == parent
        }
        guess = difflib.get_close_matches(key, list(siblings), n=1, cutoff=0.6)
        if guess:
            explained.add(siblings[guess[0]])
            issue = ConfigIssue(issue.line, issue.path, f"unknown key, did you mean '{guess[0]}'?")
        merged.append(issue)
    for issue in issues:
        if issue.message == "unknown key (misspelled?)" or issue.path in explained:
            continue
        merged.append(issue)
    return sorted(merged, key=lambda i: (i.line or 0, i.path))


def _repeated_keys(node: yaml.Node | None, path: str = "") -> list[ConfigIssue]:
    """Keys given twice in one mapping (YAML would silently keep the last one)."""
    issues: list[ConfigIssue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            where = f"{path}.{key}" if path else key
            if key in seen:
                issues.append(ConfigIssue(key_node.start_mark.line + 1, where,
                                          "key given twice in the same section"))
            seen.add(key)
            issues.extend(_repeated_keys(value_node, where))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            issues.extend(_repeated_keys(item, f"{path}.{index}"))
    return issues


def parse_config(text: str, source: str = "<config>") -> SiteConfig:
    """Validate a configuration document; raise ConfigError listing every problem."""
    try:
        # aliases could expand exponentially (a few lines, gigabytes): a site file needs none
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else None
                raise ConfigError(source, [ConfigIssue(
                    line, "", "YAML aliases (*name) are not allowed in a site configuration"
                )])
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        repeated = _repeated_keys(root)
        if repeated:
            raise ConfigError(source, repeated)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, [ConfigIssue(line, "", f"not valid YAML: {exc}")]) from exc
    if not isinstance(document, dict):
        raise ConfigError(source, [ConfigIssue(1, "", "the file must hold a mapping")])
    try:
        return SiteConfig.model_validate(document)
    except ValidationError as exc:
        issues = _merge_misspellings([_issue_from_error(root, error) for error in exc.errors()])
        raise ConfigError(source, issues) from exc


def load_config(path: str | Path) -> SiteConfig:
    """Read and validate a configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [ConfigIssue(None, "", f"cannot read: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            str(path), [ConfigIssue(line, "", "not UTF-8 text (save the file as UTF-8)")]
        ) from exc
    return parse_config(text, source=str(path))
