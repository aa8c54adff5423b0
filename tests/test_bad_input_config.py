"""Hostile and broken configuration files: each is refused with its line, never defaulted.

`gated check-config` must list the problem and exit non-zero; `gated run` must refuse to start
with a clear message (no traceback) on the same file.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from gated.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"


def _example() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def _refused(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.issues, "a refused file names at least one problem"
    return caught.value


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gated.cli", *args],
        capture_output=True, text=True, check=False, timeout=timeout,
    )


# --- refused today: each must stay refused, with the right line --------------------------------

REFUSED: list[tuple[str, Callable[[str], str], str, str]] = [
    ("port 0", lambda t: t.replace("  port: 8080", "  port: 0"), "  port: 0", "kiosk.port"),
    (
        "negative timeout",
        lambda t: t.replace("      scan_s: 30", "      scan_s: -1", 1),
        "      scan_s: -1",
        "lanes.0.timeouts.scan_s",
    ),
    (
        "NaN timeout",
        lambda t: t.replace("      identify_s: 20", "      identify_s: .nan", 1),
        "identify_s: .nan",
        "lanes.0.timeouts.identify_s",
    ),
    (
        "string for a port",
        lambda t: t.replace("      port: 15503", '      port: "PLC"', 1),
        'port: "PLC"',
        "lanes.0.plc.port",
    ),
    (
        "list where a mapping belongs",
        lambda t: t.replace("database:\n  url: sqlite:///var/gated.db", "database: [1, 2]"),
        "database: [1, 2]",
        "database",
    ),
    (
        "unknown key in a device",
        lambda t: t.replace("      watchdog_s: 6", "      watchdog_s: 6\n      turbo: true", 1),
        "turbo: true",
        "lanes.0.rfid.turbo",
    ),
    (
        "antenna 0",
        lambda t: t.replace("      antennas: [1, 2]", "      antennas: [0, 2]", 1),
        "antennas: [0, 2]",
        "lanes.0.rfid.antennas.0",
    ),
    (
        "unknown RPM transport",
        lambda t: t.replace("      transport: modbus", "      transport: carrier-pigeon", 1),
        "transport: carrier-pigeon",
        "lanes.0.rpm.transport",
    ),
    (
        "Modbus device id out of range",
        lambda t: t.replace("      device_id: 1", "      device_id: 999", 1),
        "device_id: 999",
        "lanes.0.rpm.device_id",
    ),
    (
        "OCR confidence above 1",
        lambda t: t.replace("  min_confidence: 0.6", "  min_confidence: 7"),
        "min_confidence: 7",
        "ocr.min_confidence",
    ),
]


@pytest.mark.parametrize(
    ("change", "needle", "path"),
    [(c, n, p) for _name, c, n, p in REFUSED],
    ids=[name for name, *_ in REFUSED],
)
def test_bad_value_refused_at_its_line(
    change: Callable[[str], str], needle: str, path: str
) -> None:
    text = change(_example())
    assert text != _example(), "the mutation must apply to the example"
    error = _refused(text)
    by_path = {issue.path: issue for issue in error.issues}
    assert path in by_path, error.issues
    assert by_path[path].line == _line_of(text, needle)


@pytest.mark.parametrize(
    "section", ["database", "mqtt", "kiosk", "images", "security", "lanes"]
)
def test_missing_section_is_an_error_not_a_default(section: str) -> None:
    document = yaml.safe_load(_example())
    del document[section]
    error = _refused(yaml.safe_dump(document))
    assert any(i.path == section and "required" in i.message for i in error.issues)


@pytest.mark.parametrize(
    "text",
    ["", "   \n", "# only a comment\n", "42\n", "- a\n- b\n", "site_id: [\n", "\t- tab\n",
     "a: b: c\n", "!!python/object:os.system 'true'\n"],
    ids=["empty", "blank", "comment", "scalar", "list", "unclosed", "tab", "nested-colon",
         "python-tag"],
)
def test_not_a_configuration_document(text: str) -> None:
    _refused(text)


def test_check_config_and_run_agree_on_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_example().replace("      identify_s: 20", "      identify_s: -5", 1))
    checked = _cli("check-config", str(bad))
    assert checked.returncode != 0
    assert f"line {_line_of(bad.read_text(), 'identify_s: -5')}" in checked.stdout
    started = _cli("run", "--config", str(bad))
    assert started.returncode != 0
    assert "refusing to start" in started.stdout + started.stderr
    assert "Traceback" not in started.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read" in str(caught.value)
    with pytest.raises(ConfigError):
        load_config(tmp_path)  # a directory


# --- accepted today but must be refused: bugs for the owner of gated/config.py -----------------


def test_file_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(_example().replace("main-gate", "grande-entr\u00e9e").encode("latin-1"))
    with pytest.raises(ConfigError):
        load_config(path)


def test_duplicate_yaml_key_refused() -> None:
    text = _example().replace("      port: 15502", "      port: 15502\n      port: 15602", 1)
    error = _refused(text)
    assert any(i.line == _line_of(text, "      port: 15602") for i in error.issues)


ABSURD: list[tuple[str, Callable[[str], str]]] = [
    ("negative baudrate", lambda t: t.replace("      baudrate: 9600", "      baudrate: -5", 1)),
    ("infinite timeout", lambda t: t.replace("      scan_s: 30", "      scan_s: .inf", 1)),
    ("boolean port", lambda t: t.replace("      port: 15503", "      port: true", 1)),
    ("MQTT wildcard in a lane id", lambda t: t.replace('  - id: "1"', '  - id: "1/#"', 1)),
    ("empty lane id", lambda t: t.replace('  - id: "1"', '  - id: ""', 1)),
    (
        "two lanes on one radiation monitor",
        lambda t: t.replace("      port: 15602", "      port: 15502", 1),
    ),
    (
        "two cameras of one lane with one name",
        lambda t: t.replace("      - name: AS", "      - name: AH", 1),
    ),
]


@pytest.mark.parametrize(
    "change", [c for _n, c in ABSURD], ids=[n for n, _c in ABSURD]
)
def test_absurd_value_refused(change: Callable[[str], str]) -> None:
    text = change(_example())
    assert text != _example()
    _refused(text)
