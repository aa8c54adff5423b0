"""What a clerk's decision does in the lane: the physical side of resolving a transaction.

The kiosk resolves transactions in the database (`gated.resolution`) and asks the lane, through
this interface, for the effects that need devices. The lane runner implements it.
"""

from __future__ import annotations

from typing import Protocol


class LaneEffects(Protocol):
    def check_release(self, lane: str, transaction_id: int) -> None:
        """Raise if the lane may not let this truck through (no clean scan, no valid
        credential): called before a clerk's approval is recorded."""
    async def open_barrier(self, lane: str, transaction_id: int) -> None:
        """Let the truck of this transaction through (the lane checks its interlocks)."""

    async def direct_to_inspection(self, lane: str, transaction_id: int) -> None:
        """Keep the barrier closed and show the truck the way to secondary inspection."""

    async def print_tickets(self, lane: str, transaction_id: int) -> None:
        """Print the gate pass / EIR and the instruction ticket on the lane printer."""

    async def rerun_ocr(self, transaction_id: int) -> None:
        """Read the transaction's stored images again and store the new reads."""
