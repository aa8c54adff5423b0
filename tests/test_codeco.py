"""CODECO gate reports: written with pydifact, parsed back, shaped like the SMDG example."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gated import models
from gated.cli import main
from gated.config import SiteConfig
from tests.test_tos_helpers import EXAMPLE, database, write_config
from tos_bridge.codeco import MESSAGE_ID, moves_in, parse

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def _config(tmp_path: Path) -> SiteConfig:
    from gated.config import load_config

    config = load_config(EXAMPLE)
    return config.model_copy(
        update={
            "database": config.database.model_copy(
                update={"url": f"sqlite:///{tmp_path}/gated.db"}
            )
        }
    )


def _seed(config: SiteConfig) -> None:
    engine, sessions = database(config)
    with sessions.begin() as session:
        company = models.TruckingCompany(code="ACME", name="Acme Haulage")
        session.add(models.Truck(epc="E200ABCD", plate="993NGR", company=company))
        tx = models.GateTransaction(
            lane="1", direction="in", state="closed", gate_pass_number="main-gate-000042",
            reasons=[], details={},
        )
        session.add(tx)
        session.flush()
        rows = [
            ("gate_in", "CSQU3054383", "22G1", "E200ABCD", T0 + timedelta(minutes=5), tx.id),
            ("gate_in", "TESI1120274", "4EG1", "E200FFFF", T0 + timedelta(minutes=7), None),
            ("gate_out", "MSCU1234565", "45G1", None, T0 + timedelta(minutes=9), None),
            ("yard", "CSQU3054383", "22G1", None, T0 + timedelta(minutes=20), None),
            ("gate_in", "CSQU3054383", "22G1", None, T0 + timedelta(hours=3), None),
        ]
        for kind, number, size_type, truck, at, tx_id in rows:
            session.add(
                models.Move(
                    kind=kind, container_number=number, size_type=size_type, truck=truck,
                    occurred_at=at, transaction_id=tx_id, lane="1", details={},
                )
            )
    engine.dispose()


def test_reads_the_real_smdg_gate_in_interchange(shared_data: Path) -> None:
    example = json.loads((shared_data / "field" / "codeco" / "example.json").read_text())
    interchange = parse(example["messageRaw"])
    [message] = list(interchange.get_messages())
    assert message.identifier == MESSAGE_ID
    assert moves_in(interchange) == [
        {
            "message": "92218",
            "document_code": "34",
            "container_number": example["containerIdentification"],
            "size_type": "4EG1",
            "time": "202308111447",
            "truck": example["truckLicenseCode"],
        }
    ]


def test_gated_codeco_writes_gate_in_and_gate_out_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    config_file = write_config(config, tmp_path / "site.yaml")
    _seed(config)
    out = tmp_path / "edi"
    code = main(
        [
            "codeco", "--config", str(config_file), "--since", "2026-12-04T08:00:00",
            "--until", "2026-12-04T09:00:00+00:00", "--out", str(out), "--recipient", "PA",
        ]
    )
    assert code == 0
    files = sorted(out.iterdir())
    assert [f.name.split("-")[2] for f in files] == ["gate_in", "gate_out"]
    assert "2 moves" in capsys.readouterr().out

    text = files[0].read_text()
    gate_in = parse(text)
    assert (gate_in.sender, gate_in.recipient) == ("DEMO", "PA")
    messages = list(gate_in.get_messages())
    assert [m.identifier for m in messages] == [MESSAGE_ID, MESSAGE_ID]
    assert moves_in(gate_in) == [
        {
            "message": messages[0].reference_number,
            "document_code": "34",
            "container_number": "CSQU3054383",
            "size_type": "22G1",
            "time": "202612040805",
            "truck": "993NGR",  # the registry's plate for the tag
        },
        {
            "message": messages[1].reference_number,
            "document_code": "34",
            "container_number": "TESI1120274",
            "size_type": "4EG1",
            "time": "202612040807",
            "truck": "E200FFFF",  # unknown tag: the EPC itself
        },
    ]
    first = [segment.tag for segment in messages[0].segments]
    assert first == ["BGM", "NAD", "EQD", "RFF", "DTM", "LOC", "TDT", "CNT"]
    assert messages[0].segments[0].elements == ["34", "MAIN-GATE-000042", "9"]
    # UNT counts the message's segments including UNH and UNT; UNZ counts the messages
    trailers = gate_in.get_segments("UNT")
    assert [t.elements[0] for t in trailers] == ["10", "10"]
    lines = text.split("\n")
    assert lines[0].startswith("UNB+UNOA:1+DEMO+PA+")
    assert [line for line in lines if line][-1].startswith("UNZ+2+")

    gate_out = parse(files[1].read_text())
    [move] = moves_in(gate_out)
    assert (move["document_code"], move["container_number"]) == ("36", "MSCU1234565")
    assert "truck" not in move


def test_gated_codeco_with_an_empty_window_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    config_file = write_config(config, tmp_path / "site.yaml")
    _seed(config)
    out = tmp_path / "edi"
    code = main(
        ["codeco", "--config", str(config_file), "--since", "2026-12-05T00:00:00Z",
         "--until", "2026-12-06T00:00:00Z", "--out", str(out)]
    )
    assert code == 0
    assert not out.exists()
    assert "no gate moves" in capsys.readouterr().out


def test_gated_codeco_refuses_a_bad_time(tmp_path: Path) -> None:
    config_file = write_config(_config(tmp_path), tmp_path / "site.yaml")
    with pytest.raises(SystemExit) as exited:
        main(["codeco", "--config", str(config_file), "--since", "yesterday", "--out", "x"])
    assert exited.value.code == 2
