"""Where a simulated gate's devices listen: one port plan for `hwsim run` and the daemon.

Lane n (1-based) gets LLRP on 15084 + 100(n-1), the RPM on 15502 + 100(n-1) and the PLC on
15503 + 100(n-1); all cameras share one HTTP server (default 18080); serial devices are ptys
linked at `<state_dir>/lane<n>/{card-reader,scale,printer}`. `config/example.yaml` follows this
plan for two lanes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gated.config import SiteConfig

CAMERAS = ("AH", "AS", "LF", "RF", "LB")
LLRP_BASE = 15084
RPM_BASE = 15502
PLC_BASE = 15503
CAMERA_PORT = 18080
LANE_STRIDE = 100


PortChooser = Callable[[int, str], int]


def planned_port(lane: int, device: str) -> int:
    base = {"llrp": LLRP_BASE, "rpm": RPM_BASE, "plc": PLC_BASE}[device]
    return base + LANE_STRIDE * (lane - 1)


def lane_plan(
    n: int, state_dir: str, camera_port: int = CAMERA_PORT, port_of: PortChooser = planned_port
) -> dict[str, Any]:
    folder = f"{state_dir}/lane{n}"
    return {
        "id": str(n),
        "direction": "in",
        "cameras": [
            {
                "name": camera,
                "snapshot_url": f"http://127.0.0.1:{camera_port}/lane/{n}/{camera}/snapshot.jpg",
            }
            for camera in CAMERAS
        ],
        "rfid": {"host": "127.0.0.1", "port": port_of(n, "llrp"), "antennas": [1, 2],
                 "backoff_cap_s": 10, "watchdog_s": 6},
        "rpm": {"transport": "modbus", "host": "127.0.0.1", "port": port_of(n, "rpm"),
                "device_id": 1, "poll_interval_s": 0.2, "heartbeat_timeout_s": 3},
        "plc": {"host": "127.0.0.1", "port": port_of(n, "plc"), "device_id": 1},
        "card_reader": {"port": f"{folder}/card-reader", "baudrate": 9600},
        "scale": {"port": f"{folder}/scale", "baudrate": 9600, "protocol": "toledo",
                  "max_gross_kg": 67000},
        "printer": {"port": f"{folder}/printer", "baudrate": 19200},
    }


def site_plan(
    lanes: int,
    state_dir: str | Path,
    *,
    mqtt_port: int = 18830,
    camera_port: int = CAMERA_PORT,
    database_url: str | None = None,
    kiosk_port: int = 8080,
    timeouts: dict[str, float] | None = None,
    port_of: PortChooser = planned_port,
) -> dict[str, Any]:
    """A complete daemon configuration for a simulated gate of `lanes` lanes."""
    state = str(state_dir)
    plan_lanes = [lane_plan(n, state, camera_port, port_of) for n in range(1, lanes + 1)]
    if timeouts:
        for lane in plan_lanes:
            lane["timeouts"] = dict(timeouts)
    return {
        "site_id": "demo",
        "gate_id": "main-gate",
        "database": {"url": database_url or f"sqlite:///{state}/gated.db"},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "protocol": "5"},
        "kiosk": {"host": "127.0.0.1", "port": kiosk_port, "secret_file": f"{state}/kiosk-secret",
                  "users": []},
        "images": {"directory": f"{state}/images", "max_age_days": 30, "max_total_mb": 2000},
        "security": {"marsec_level": 1, "fascn_key_file": f"{state}/fascn.key"},
        "lanes": plan_lanes,
    }


def plan_config(lanes: int, state_dir: str | Path, **kwargs: Any) -> SiteConfig:
    return SiteConfig.model_validate(site_plan(lanes, state_dir, **kwargs))
