"""The ticket printer driver against the simulated ESC/POS printer, through a pty."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.printer import PrinterError, TicketPrinter, render_ticket
from gated.config import PrinterConfig
from gated.domain import DeviceHealth
from hwsim.printer import SimulatedPrinter


async def test_ticket_is_printed_and_read_back(tmp_path: Path) -> None:
    async with SimulatedPrinter(tmp_path / "ttyPRN") as sim:
        printer = TicketPrinter("2", PrinterConfig(port=str(sim.link_path), width_chars=32))
        lines = [
            "Container MSKU 123456-5 22G1",
            "Yard position A1-12-03-2, take lane 2 to the north gate of block A",
            "Gewicht: 24 560 kg über 20 t",
        ]
        await printer.print_ticket(lines, "GATE PASS")
        await printer.print_ticket(["second"], "INSTRUCTION")
        await sim.wait_for_tickets(2)
    assert len(sim.tickets) == 2
    first = sim.tickets[0].lines
    assert first[0] == "GATE PASS"
    assert first[1] == "Container MSKU 123456-5 22G1"
    assert all(len(line) <= 32 for line in first)
    assert "A1-12-03-2" in sim.tickets[0].text and "block A" in sim.tickets[0].text
    assert "über" in sim.tickets[0].text  # code page 437 holds the umlaut
    assert sim.tickets[1].lines == ["INSTRUCTION", "second"]
    assert printer.printed == 2 and sim.unknown_commands == 0


@pytest.mark.parametrize("fault", ["paper_out", "offline"])
async def test_faulty_printer_raises_and_prints_nothing(tmp_path: Path, fault: str) -> None:
    health: list[DeviceHealth] = []
    async with SimulatedPrinter(tmp_path / "ttyPRN") as sim:
        setattr(sim, fault, True)
        printer = TicketPrinter(
            "2", PrinterConfig(port=str(sim.link_path)), on_health=health.append
        )
        with pytest.raises(PrinterError, match="paper" if fault == "paper_out" else "offline"):
            await printer.print_ticket(["x"], "GATE PASS")
        setattr(sim, fault, False)
        await printer.print_ticket(["x"], "GATE PASS")
        await sim.wait_for_tickets(1)
    assert len(sim.tickets) == 1
    assert [h.up for h in health] == [False, True]
    assert printer.failed == 1


async def test_missing_or_silent_printer(tmp_path: Path) -> None:
    printer = TicketPrinter("2", PrinterConfig(port=str(tmp_path / "nothing")))
    with pytest.raises(PrinterError, match="cannot open"):
        await printer.print_ticket(["x"], "T")
    async with SimulatedPrinter(tmp_path / "ttyPRN") as sim:
        sim.device.stop_listening()  # a printer that never answers
        silent = TicketPrinter("2", PrinterConfig(port=str(sim.link_path), status_timeout_s=0.2))
        with pytest.raises(PrinterError, match="no answer"):
            await silent.print_ticket(["x"], "T")


def test_render_ends_with_a_cut() -> None:
    data = render_ticket("T", ["a"], 42)
    assert data.startswith(b"\x1b@") and data.endswith(b"\x1dVB\x00")
