"""The site configuration: the example is valid, bad files are refused with their lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gated.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.yaml"


def test_example_is_valid() -> None:
    config = load_config(EXAMPLE)
    assert [lane.id for lane in config.lanes] == ["1", "2"]
    assert all(lane.rpm is not None for lane in config.lanes)


def _broken_example() -> str:
    text = EXAMPLE.read_text()
    text = text.replace("site_id: demo", "site_idd: demo", 1)
    text = text.replace("port: 15502", 'port: "fifteen"', 1)
    start = text.index('  - id: "2"')
    rpm = text.index("    rpm:", start)
    plc = text.index("    plc:", rpm)
    return text[:rpm] + text[plc:]


def _line_of(text: str, needle: str, after: int = 0) -> int:
    return text[: text.index(needle, after)].count("\n") + 1


def test_three_errors_each_with_its_line() -> None:
    text = _broken_example()
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    issues = caught.value.issues
    assert len(issues) == 3, issues
    by_path = {issue.path: issue for issue in issues}
    assert by_path["site_idd"].line == _line_of(text, "site_idd")
    assert "did you mean 'site_id'" in by_path["site_idd"].message
    assert by_path["lanes.0.rpm.port"].line == _line_of(text, 'port: "fifteen"')
    assert by_path["lanes.1.rpm"].line == _line_of(text, 'id: "2"')
    assert "required" in by_path["lanes.1.rpm"].message


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("site_id: [unclosed\n")
    assert caught.value.issues[0].line is not None
    with pytest.raises(ConfigError):
        parse_config("- just\n- a list\n")


def test_duplicate_lane_ids_refused() -> None:
    text = EXAMPLE.read_text().replace('id: "2"', 'id: "1"')
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert "unique" in str(caught.value)


def test_check_config_command(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "gated.cli", "check-config", str(EXAMPLE)],
        capture_output=True, text=True, check=False,
    )
    assert ok.returncode == 0 and ok.stdout.strip() == "ok"
    bad = tmp_path / "bad.yaml"
    bad.write_text(_broken_example())
    refused = subprocess.run(
        [sys.executable, "-m", "gated.cli", "check-config", str(bad)],
        capture_output=True, text=True, check=False,
    )
    assert refused.returncode != 0
    assert refused.stdout.count("line ") == 3


def test_run_refuses_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_broken_example())
    refused = subprocess.run(
        [sys.executable, "-m", "gated.cli", "run", "--config", str(bad)],
        capture_output=True, text=True, check=False, timeout=60,
    )
    assert refused.returncode != 0
    assert "refusing to start" in refused.stdout + refused.stderr


def test_every_field_is_described() -> None:
    from pydantic import BaseModel

    from gated import config as config_module

    missing = []
    for value in vars(config_module).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            for name, info in value.model_fields.items():
                if not info.description:
                    missing.append(f"{value.__name__}.{name}")
    assert not missing, missing


def test_reference_document_is_current() -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "config_reference.py"
    result = subprocess.run([sys.executable, str(script), "--check"], check=False)
    assert result.returncode == 0, "run scripts/config_reference.py to refresh the reference"


def test_overlapping_yard_blocks_refused() -> None:
    block = "{name: A1, origin_x_m: 0, origin_y_m: 0, bays: 10, rows: 6}"
    text = EXAMPLE.read_text() + f"yard:\n  blocks:\n    - {block}\n    - {block}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert "more than once" in str(caught.value)


def test_yaml_aliases_refused_before_they_expand() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20)
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(bomb)
    assert "aliases" in str(caught.value) and caught.value.issues[0].line == 2
