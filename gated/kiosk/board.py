"""The lane board source for `create_app`: each lane runner's state with its devices' health."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from gated.health import HealthBoard


class BoardReporter(Protocol):
    def board(self) -> dict[str, Any]:
        """The lane's live state: lane, direction, state, transaction id, truck, containers."""


def lane_board(
    lanes: Mapping[str, BoardReporter], health: HealthBoard
) -> Callable[[], list[dict[str, Any]]]:
    """A `lane_board` callable for `create_app`: one row per lane, in configuration order,
    with the lane's devices from the health board (lost devices show in red)."""

    def board() -> list[dict[str, Any]]:
        rows = []
        for lane_id, runner in lanes.items():
            row = dict(runner.board())
            row["devices"] = health.lane_devices(lane_id)
            rows.append(row)
        return rows

    return board
