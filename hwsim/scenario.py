"""Scenario files: which trucks come to which lane when, what they carry, what goes wrong.

A scenario is YAML validated like the site configuration (unknown keys are errors). Trucks not
listed can be generated at a rate with `random_trucks`. Every truck says the outcome the TOS
should see, so a run ends with a verdict.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from stdnum import iso6346

Load = Literal["one_40", "one_45", "two_20", "one_20", "empty_chassis", "bobtail"]
CardKind = Literal["valid", "expired", "canceled", "biometric_fail", "corrupted", "slow", "none"]
Cargo = Literal["clean", "nuisance", "source", "neutron_source"]
Outcome = Literal["PROCEED", "TROUBLE", "INSPECTION"]
FaultKind = Literal[
    "reader_disconnect", "rpm_fault", "camera_down", "broker_stop", "corrupted_frames",
    "unreadable_container",
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TruckSpec(Strict):
    at: float = Field(ge=0, description="Seconds after the start when it reaches the portal.")
    lane: str = Field(default="1", description="Lane the truck drives into.")
    load: Load = Field(default="one_40", description="What is on the chassis.")
    containers: list[str] = Field(
        default=[], description="Container numbers; generated when empty and the load has any."
    )
    company: str = Field(default="ACME", description="Trucking company code.")
    registered: bool = Field(default=True, description="Truck tag known to the TOS registry.")
    card: CardKind = Field(default="valid", description="What the driver presents.")
    cargo: Cargo = Field(default="clean", description="What the radiation portal sees.")
    appointment: bool = Field(default=True, description="The TOS pre-advised this visit.")
    hold: Literal["customs", "line"] | None = Field(default=None, description="A hold, if any.")
    unreadable: bool = Field(
        default=False, description="Camera images show no legible number (dirt, damage)."
    )
    gross_kg: float = Field(default=28000.0, gt=0, description="Weight on the lane scale.")
    faults: list[FaultKind] = Field(
        default=[], description="Device faults on this truck's lane while it is there."
    )
    expect: Outcome = Field(default="PROCEED", description="Decision the TOS should receive.")


class FaultSpec(Strict):
    at: float = Field(ge=0, description="Seconds after the start.")
    lane: str = Field(default="1", description="Lane whose device fails.")
    kind: FaultKind = Field(description="What fails.")
    duration: float = Field(default=5.0, gt=0, description="Seconds until it recovers.")


class Scenario(Strict):
    name: str = Field(default="scenario", description="Shown in the summary.")
    seed: int = Field(default=1, description="Random seed: the same seed gives the same run.")
    lanes: int = Field(default=2, ge=1, le=16, description="Lanes to simulate.")
    speed: float = Field(default=1.0, gt=0, description="Times faster than real time.")
    trucks: list[TruckSpec] = Field(default=[], description="Trucks with their expectations.")
    random_trucks: int = Field(default=0, ge=0, description="Extra clean trucks to generate.")
    arrival_rate_per_hour: float = Field(
        default=120.0, gt=0, description="Rate of the generated trucks, per lane."
    )
    random_start_s: float = Field(
        default=0.0, ge=0, description="Seconds before the generated trucks start arriving."
    )
    faults: list[FaultSpec] = Field(default=[], description="Device faults at given times.")
    patience_s: float = Field(
        default=20.0, gt=0, description="How long a stopped truck waits before backing out."
    )


def load_scenario(path: str | Path) -> Scenario:
    return Scenario.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def random_container_number(rng: random.Random) -> str:
    owner = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "U"
    serial = f"{rng.randrange(10**6):06d}"
    return owner + serial + iso6346.calc_check_digit(owner + serial)


def containers_for(load: Load) -> int:
    return {"one_40": 1, "one_45": 1, "one_20": 1, "two_20": 2}.get(load, 0)


def expand(scenario: Scenario) -> list[TruckSpec]:
    """Every truck of the run, with generated containers and generated random trucks."""
    rng = random.Random(scenario.seed)
    trucks = list(scenario.trucks)
    lane_ids = [str(n) for n in range(1, scenario.lanes + 1)]
    clock = {lane: scenario.random_start_s for lane in lane_ids}
    for index in range(scenario.random_trucks):
        lane = lane_ids[index % len(lane_ids)]
        clock[lane] += rng.expovariate(scenario.arrival_rate_per_hour / 3600.0)
        load = rng.choice(["one_40", "one_40", "two_20", "one_20", "empty_chassis"])
        trucks.append(TruckSpec(at=clock[lane], lane=lane, load=load))  # type: ignore[arg-type]
    complete = []
    for truck in sorted(trucks, key=lambda t: t.at):
        needed = containers_for(truck.load)
        numbers = list(truck.containers)
        while len(numbers) < needed:
            numbers.append(random_container_number(rng))
        complete.append(truck.model_copy(update={"containers": numbers[:needed] or numbers}))
    return complete
