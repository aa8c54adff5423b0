"""Fuse the reads of all images of one visit into one answer per container.

A truck carries one or two containers. Every camera that read a valid number votes for it.
Reads of the same container that disagree (numbers a few characters apart) are evidence that
one of them is wrong: the fused confidence drops, so the lane sends the truck to a clerk
rather than guess.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from gated.domain import ContainerRead, FusedContainer
from ocr.iso6346 import is_valid_container_number

if TYPE_CHECKING:
    from ocr.engine import Engine
    from ocr.imageio import ImageInput

_LOGGER = logging.getLogger(__name__)

MAX_CONTAINERS = 2
# Numbers this many characters apart or fewer are taken as two readings of one container...
NEAR_DISTANCE = 3
# ...unless each is read on at least this many images: the same misread twice from different
# cameras is unlikely, while two 20' containers with neighbouring serials are not.
INDEPENDENT_SUPPORT = 2
# Per-image reads at least this confident vote in a visit even when they could not stand alone.
HYPOTHESIS_FLOOR = 0.3


@dataclass
class _Cluster:
    number: str
    reads: list[ContainerRead] = field(default_factory=list)
    # (image, confidence of its rival read): a near rival costs confidence, a third container
    # read elsewhere on the truck is listed with 0.
    disagreeing: list[tuple[str, float]] = field(default_factory=list)

    @property
    def support(self) -> float:
        """Probability that not every supporting read is wrong (reads taken as independent)."""
        doubt = 1.0
        for read in self.reads:
            doubt *= 1.0 - min(read.confidence, 0.999)
        return 1.0 - doubt

    @property
    def confidence(self) -> float:
        value = self.support
        for _image, rival in self.disagreeing:
            value *= 1.0 - min(rival, 1.0)
        return value


def distance(a: str, b: str) -> int:
    """Characters that differ between two numbers of the same length."""
    if len(a) != len(b):
        return max(len(a), len(b))
    return sum(1 for x, y in zip(a, b, strict=True) if x != y)


def fuse(
    reads: Iterable[ContainerRead], lane: str | None = None, floor: float = 0.0
) -> list[FusedContainer]:
    """One FusedContainer per container seen (at most two), strongest first. Reads below
    `floor` confidence do not vote. The caller accepts a container at its own threshold."""
    clusters: dict[str, _Cluster] = {}
    for read in reads:
        number = read.container_number
        if read.error or not number or not is_valid_container_number(number):
            continue
        if read.confidence < floor:
            continue
        clusters.setdefault(number, _Cluster(number)).reads.append(read)

    ordered = sorted(clusters.values(), key=lambda c: (-len(c.reads), -c.support, c.number))
    kept: list[_Cluster] = []
    extra: list[_Cluster] = []
    for cluster in ordered:
        near = next(
            (
                k for k in kept
                if distance(k.number, cluster.number) <= NEAR_DISTANCE
                and min(len(k.reads), len(cluster.reads)) < INDEPENDENT_SUPPORT
            ),
            None,
        )
        if near is not None:
            near.disagreeing.extend((r.image, r.confidence) for r in cluster.reads)
        elif len(kept) < MAX_CONTAINERS:
            kept.append(cluster)
        else:
            extra.append(cluster)
    for cluster in extra:
        _LOGGER.warning(
            "lane %s: a third container number %s read on %s; ignored (at most %d per truck)",
            lane, cluster.number, ", ".join(r.image for r in cluster.reads), MAX_CONTAINERS,
        )
        for kept_cluster in kept:
            kept_cluster.disagreeing.extend((r.image, 0.0) for r in cluster.reads)

    fused = []
    for cluster in kept:
        size_type = _size_type(cluster.reads)
        fused.append(
            FusedContainer(
                container_number=cluster.number,
                size_type=size_type,
                confidence=round(cluster.confidence, 3),
                images=tuple(r.image for r in cluster.reads),
                disagreeing_images=tuple(image for image, _rival in cluster.disagreeing),
            )
        )
    return fused


def _size_type(reads: list[ContainerRead]) -> str | None:
    """The size/type code most reads agree on (ties: the most confident read's)."""
    votes: dict[str, float] = {}
    for read in reads:
        if read.size_type:
            votes[read.size_type] = votes.get(read.size_type, 0.0) + 1.0 + read.confidence
    if not votes:
        return None
    return max(votes.items(), key=lambda item: item[1])[0]


@dataclass(frozen=True)
class VisitRead:
    """A visit's images read and fused: per-image reads as a clerk sees them (numbers below
    the threshold withheld) and the fused containers (accept those at or above it)."""

    reads: tuple[ContainerRead, ...]
    containers: tuple[FusedContainer, ...]
    min_confidence: float

    @property
    def accepted(self) -> tuple[FusedContainer, ...]:
        return tuple(c for c in self.containers if c.confidence >= self.min_confidence)


def read_visit(
    images: Sequence[ImageInput],
    cameras: Sequence[str | None] | None = None,
    engine: Engine | Sequence[Engine] | None = None,
    min_confidence: float | None = None,
    lane: str | None = None,
) -> VisitRead:
    """Read every image of one truck and fuse them. Reads too doubtful to stand alone still
    vote when at least HYPOTHESIS_FLOOR: two cameras agreeing on the same valid number by
    chance is far less likely than either being right. `min_confidence` defaults to the
    reader's DEFAULT_MIN_CONFIDENCE."""
    # imported here: fusion alone runs in the daemon's process, which must not load OpenCV
    from ocr.reader import DEFAULT_MIN_CONFIDENCE, read_image

    if min_confidence is None:
        min_confidence = DEFAULT_MIN_CONFIDENCE
    cameras = list(cameras) if cameras is not None else [None] * len(images)
    raw = [
        read_image(image, camera=camera, engine=engine, min_confidence=0.0)
        for image, camera in zip(images, cameras, strict=True)
    ]
    containers = fuse(raw, lane=lane, floor=HYPOTHESIS_FLOOR)
    shown = tuple(
        read if read.confidence >= min_confidence
        else replace(read, container_number=None, size_type=None)
        for read in raw
    )
    return VisitRead(shown, tuple(containers), min_confidence)
