"""Find where a container code may be: character-sized blobs, grouped into lines and columns.

Blobs come from adaptive thresholds at both polarities (white paint on dark steel and dark
paint on light steel). A code is a run of blobs of similar height along a line (one-line and
multi-line layouts) or down a column (vertical layout of upright characters).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

# Character height range in pixels at the working scale (1080p images are used as they are).
MIN_CHAR_HEIGHT = 14
MAX_CHAR_HEIGHT = 110
# Widest character box, in heights: oblique views and lens distortion widen glyphs.
MAX_WIDTH_RATIO = 1.5


@dataclass(frozen=True)
class Blob:
    """One character-sized connected component."""

    x: int
    y: int
    w: int
    h: int
    polarity: int  # 1: bright on dark, 0: dark on bright
    filled: bool = False  # not found but placed where a lost character of a chain should be

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def right(self) -> int:
        return self.x + self.w

    @property
    def bottom(self) -> int:
        return self.y + self.h


@dataclass(frozen=True)
class Group:
    """Blobs that read in order, along a line ('h') or down a column ('v')."""

    blobs: tuple[Blob, ...]
    direction: str

    @cached_property
    def height(self) -> float:
        # asked for thousands of times an image: computed once, and without numpy's
        # per-call overhead on a handful of numbers
        return float(statistics.median(b.h for b in self.blobs))


# Adaptive threshold settings (block size, offset, close small breaks) tried at each polarity.
THRESHOLDS = ((41, 12, False), (41, 12, True), (81, 16, False))


# Blobs are searched at a reduced resolution, no taller than this (connected components on
# a full 1080p frame cost most of the time), and reported in full-resolution pixels.
SEARCH_HEIGHT = 720


def find_blobs(gray: np.ndarray, search_height: int = SEARCH_HEIGHT) -> list[Blob]:
    """Character-sized components at both polarities, in the image's pixels."""
    factor = max(1.0, gray.shape[0] / search_height)
    if factor > 1.0:
        size = (round(gray.shape[1] / factor), round(gray.shape[0] / factor))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    else:
        small = gray
    blobs: list[Blob] = []
    for polarity in (1, 0):
        for block, offset, close in THRESHOLDS:
            block = round(block / factor) | 1
            blobs.extend(_blobs_of(small, polarity, block, offset, close, factor))
    return _dedupe(blobs)


_CLOSE_KERNEL = np.ones((3, 3), np.uint8)


def _blobs_of(
    gray: np.ndarray, polarity: int, block: int, offset: int, close: bool, factor: float
) -> list[Blob]:
    thresh_type = cv2.THRESH_BINARY if polarity else cv2.THRESH_BINARY_INV
    c = -offset if polarity else offset
    binary = cv2.adaptiveThreshold(
        gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, thresh_type, block, c
    )
    if close:  # mend strokes broken by wear or glare (the waist of an 8)
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, _CLOSE_KERNEL)
    _count, _labels, stats, _centroids = cv2.connectedComponentsWithStats(
        binary, connectivity=8
    )
    x, y, w, h, area = (stats[1:, i].astype(np.float64) for i in range(5))
    fill = area / np.maximum(w * h, 1.0)
    narrow = w < 0.35 * h  # a '1' or an 'I' is a solid bar
    keep = (
        (h * factor >= MIN_CHAR_HEIGHT) & (h * factor <= MAX_CHAR_HEIGHT)
        & (w >= 2) & (w <= MAX_WIDTH_RATIO * h)
        & (fill >= 0.12) & ((fill <= 0.92) | narrow)
        & ~((w < 0.25 * h) & (fill < 0.5))  # thin and sparse: a crack or a rod
    )
    # Two characters of a column that touch (a J's tail on the U below) make one blob too
    # tall for a character: kept for joining chains (see `_double`).
    keep |= (
        (h * factor > MAX_CHAR_HEIGHT) & (h * factor <= 2.2 * MAX_CHAR_HEIGHT)
        & (w >= 0.28 * h) & (w <= 0.6 * h) & (fill >= 0.12) & (fill <= 0.92)
    )
    return [
        Blob(
            math.floor(x[i] * factor), math.floor(y[i] * factor),
            math.ceil(w[i] * factor), math.ceil(h[i] * factor), polarity,
        )
        for i in np.flatnonzero(keep)
    ]


def _dedupe(blobs: list[Blob]) -> list[Blob]:
    """Drop near-identical boxes found by several thresholds."""
    kept: list[Blob] = []
    for blob in sorted(blobs, key=lambda b: (b.polarity, b.x, b.y)):
        duplicate = False
        for other in kept[-40:]:
            if other.polarity != blob.polarity:
                continue
            if (
                abs(other.x - blob.x) <= 3
                and abs(other.y - blob.y) <= 3
                and abs(other.w - blob.w) <= 4
                and abs(other.h - blob.h) <= 4
            ):
                duplicate = True
                break
        if not duplicate:
            kept.append(blob)
    return kept


def _drop_frames(blobs: list[Blob]) -> list[Blob]:
    """A boxed check digit gives two blobs, the frame and the digit: keep the digit."""
    if not blobs:
        return blobs
    arr = np.array([(b.x, b.y, b.right, b.bottom, b.h, b.polarity) for b in blobs], float)
    x0, y0, x1, y1, h, pol = arr.T
    kept = []
    for i, blob in enumerate(blobs):
        inside = (
            (pol == pol[i])
            & (x0 > x0[i]) & (y0 > y0[i]) & (x1 < x1[i]) & (y1 < y1[i])
            & (h >= 0.4 * h[i]) & (h <= 0.92 * h[i])
        )
        if not inside.any():
            kept.append(blob)
    return kept


class _Table:
    """Blob boxes as arrays, for vectorised neighbour search."""

    def __init__(self, blobs: list[Blob]) -> None:
        arr = np.array(
            [(b.x, b.y, b.right, b.bottom, b.w, b.h, b.cx, b.cy, b.polarity) for b in blobs],
            float,
        ).reshape(-1, 9)
        (self.x0, self.y0, self.x1, self.y1, self.w, self.h,
         self.cx, self.cy, self.pol) = arr.T


def _next_index(table: _Table, i: int, direction: str, loose: bool = False) -> int | None:
    """The nearest compatible blob after blob i along a line ('h') or down a column ('v').
    The sideways offset allowed grows with the gap: oblique views tilt lines and columns.
    `loose` is for the check digit, whose box or place may set it apart from the rest."""
    h = np.maximum(table.h, table.h[i])
    ratio = LOOSE_HEIGHT_TOLERANCE if loose else HEIGHT_TOLERANCE
    similar = np.maximum(table.h, table.h[i]) <= ratio * np.minimum(table.h, table.h[i])
    if direction == "h":
        gap = table.x0 - table.x1[i]
        offset = np.abs(table.cy - table.cy[i])
        ok = (gap >= -0.15 * h) & (gap <= (3.6 if loose else 3.2) * h)
        ok &= offset <= (0.5 if loose else 0.3) * h + 0.2 * np.maximum(gap, 0)
    else:
        gap = table.y0 - table.y1[i]
        offset = np.abs(table.cx - table.cx[i])
        ok = (gap >= -0.1 * h) & (gap <= (1.5 if loose else 1.0) * h)
        ok &= offset <= (0.8 if loose else 0.45) * h + 0.2 * np.maximum(gap, 0)
    ok &= similar & (table.pol == table.pol[i])
    ok[i] = False
    if not ok.any():
        return None
    candidates = np.flatnonzero(ok)
    return int(candidates[np.argmin(gap[candidates])])


HEIGHT_TOLERANCE = 1.3

LOOSE_HEIGHT_TOLERANCE = 1.6


def _gap(table: _Table, i: int, j: int, direction: str) -> float:
    """Empty space between blob i and the blob j after it."""
    if direction == "h":
        return float(table.x0[j] - table.x1[i])
    return float(table.y0[j] - table.y1[i])


def _chains(blobs: list[Blob], direction: str) -> list[Group]:
    if not blobs:
        return []
    table = _Table(blobs)
    # Each blob follows the nearest blob that has it as its nearest next one: a stray blob
    # (a rod, a mark) further back must not take a character away from its true neighbour.
    previous: dict[int, tuple[float, int]] = {}
    for i in range(len(blobs)):
        nxt = _next_index(table, i, direction)
        if nxt is None:
            continue
        gap = _gap(table, i, nxt, direction)
        if nxt not in previous or gap < previous[nxt][0]:
            previous[nxt] = (gap, i)
    following = {i: nxt for nxt, (_gap_size, i) in previous.items()}
    has_previous = set(previous)
    groups = []
    chains = []
    for i in range(len(blobs)):
        if i in has_previous:
            continue
        chain = [i]
        while chain[-1] in following and len(chain) < 40:
            chain.append(following[chain[-1]])
        chains.append(chain)
        if len(chain) >= 3:
            groups.append(Group(tuple(blobs[j] for j in chain), direction))
        # A check digit set apart (boxed, spaced) ends a 10-character line or column, or the
        # 6-digit serial line of the multi-line layout: look further, more loosely.
        if len(chain) == 10 or (len(chain) == 6 and direction == "h"):
            tail = _next_index(table, chain[-1], direction, loose=True)
            if tail is not None and tail not in chain:
                groups.append(Group(tuple(blobs[j] for j in [*chain, tail]), direction))
    return (
        groups + _bridged(blobs, chains, direction) + _filled_in(blobs, chains, direction)
        + _unstrayed(blobs, chains, direction)
    )


# A character lost from a chain (hidden by a rod or a bar, broken by wear or glare) leaves
# two runs of evenly spaced blobs with a step of about two between them. They are joined
# through a blob filled in where the lost character should be, when the step between the
# runs is within BRIDGE_TOLERANCE steps of two and the joined chain could hold a code
# (a column of 11, or the 7 of a serial line).
BRIDGE_TOLERANCE = 0.4
MIN_BRIDGED = {"h": 7, "v": 11}


def _bridged(blobs: list[Blob], chains: list[list[int]], direction: str) -> list[Group]:
    """Chains joined across one lost character, as extra groups (the chains as found stay).
    A run of three or more blobs gives the step; the chain on its other side may be short."""
    if not chains:
        return []
    along, across = (0, 1) if direction == "h" else (1, 0)
    centre = np.array([(b.cx, b.cy) for b in blobs], float)
    heads = np.array([c[0] for c in chains])
    tails = np.array([c[-1] for c in chains])
    lengths = np.array([len(c) for c in chains])
    heights = np.array([b.h for b in blobs], float)
    polarity = np.array([b.polarity for b in blobs])
    out = []
    for index, run in enumerate(chains):
        if len(run) < 3:
            continue
        step = float(np.median(np.diff(centre[run, along])))
        if step <= 0:
            continue
        short = max(1, MIN_BRIDGED[direction] - 1 - len(run))
        # the run's last blob before another chain's first, then its first after another's last
        for own, other, sign in ((run[-1], heads, 1), (run[0], tails, -1)):
            distance = sign * (centre[other, along] - centre[own, along])
            ok = (
                (np.abs(distance - 2 * step) <= BRIDGE_TOLERANCE * step)
                & (np.abs(centre[other, across] - centre[own, across])
                   <= 0.5 * np.maximum(heights[other], heights[own]))
                & (np.maximum(heights[other], heights[own])
                   <= HEIGHT_TOLERANCE * np.minimum(heights[other], heights[own]))
                & (polarity[other] == polarity[own])
                & (lengths >= short)
            )
            ok[index] = False
            for partner in np.flatnonzero(ok):
                before, after = (run, chains[partner]) if sign == 1 else (chains[partner], run)
                if sign == -1 and len(chains[partner]) >= 3:
                    continue  # found already from the partner's side
                out.append(_join(blobs, before, after, direction))
            # three steps on, with one blob two characters long between: two characters
            # that touch (a J's tail on the U below it) are cut where the run's step says
            size = float(np.median([blobs[j].h if direction == "v" else blobs[j].w for j in run]))
            ok3 = (
                (np.abs(distance - 3 * step) <= BRIDGE_TOLERANCE * step)
                & (np.abs(centre[other, across] - centre[own, across])
                   <= 0.5 * np.maximum(heights[other], heights[own]))
                & (polarity[other] == polarity[own])
                & (lengths >= max(1, short - 1))
            )
            ok3[index] = False
            for partner in np.flatnonzero(ok3):
                if sign == -1 and len(chains[partner]) >= 3:
                    continue
                before, after = (run, chains[partner]) if sign == 1 else (chains[partner], run)
                pair = _double(blobs, blobs[before[-1]], blobs[after[0]], step, size, direction)
                if pair is not None:
                    out.append(_join(blobs, before, after, direction, pair))
    return out


def _double(
    blobs: list[Blob], last: Blob, first: Blob, step: float, size: float, direction: str
) -> tuple[Blob, Blob] | None:
    """Two characters cut out of one blob lying between `last` and `first` (three steps
    apart) that is about two characters long, or None."""
    middle = ((last.cx + first.cx) / 2, (last.cy + first.cy) / 2)
    for blob in blobs:
        length = blob.h if direction == "v" else blob.w
        if blob.polarity != last.polarity or not 1.5 * size <= length <= 2.6 * size:
            continue
        if abs(blob.cx - middle[0]) + abs(blob.cy - middle[1]) > 0.4 * step:
            continue
        w = (last.w + first.w) / 2 if direction == "v" else size
        h = (last.h + first.h) / 2 if direction == "h" else size
        cut = []
        for fraction in (1 / 3, 2 / 3):
            cx = last.cx + fraction * (first.cx - last.cx)
            cy = last.cy + fraction * (first.cy - last.cy)
            cut.append(
                Blob(round(cx - w / 2), round(cy - h / 2), round(w), round(h), blob.polarity, True)
            )
        return cut[0], cut[1]
    return None


def _steps(blobs: list[Blob], chain: list[int], direction: str) -> tuple[np.ndarray, float]:
    """The distances between the centres of a chain's neighbours, and their median."""
    along = [blobs[j].cx if direction == "h" else blobs[j].cy for j in chain]
    steps = np.diff(along)
    return steps, float(np.median(steps))


def _filled_in(blobs: list[Blob], chains: list[list[int]], direction: str) -> list[Group]:
    """Along a line, linking reaches over a lost character: a step of about two inside a
    chain gets a blob filled in, as an extra group for each such step."""
    out = []
    for chain in chains:
        if len(chain) + 1 < MIN_BRIDGED[direction] or len(chain) < 4:
            continue
        steps, step = _steps(blobs, chain, direction)
        if step <= 0:
            continue
        for k in np.flatnonzero(np.abs(steps - 2 * step) <= BRIDGE_TOLERANCE * step):
            out.append(_join(blobs, chain[: k + 1], chain[k + 1 :], direction))
    return out


# A stray blob between two characters (the edge of a corrugation, a rivet, a scratch) splits
# one step of the chain in two: a blob whose two steps together make one step (within
# BRIDGE_TOLERANCE) and each at most STRAY_STEP of a step is dropped, as an extra group.
STRAY_STEP = 0.75


def _unstrayed(blobs: list[Blob], chains: list[list[int]], direction: str) -> list[Group]:
    """Chains with one stray blob left out, for chains long enough to hold a code without it."""
    out = []
    for chain in chains:
        if len(chain) - 1 < MIN_BRIDGED[direction] or len(chain) < 5:
            continue
        steps, step = _steps(blobs, chain, direction)
        if step <= 0:
            continue
        for k in range(1, len(chain) - 1):
            first, second = steps[k - 1], steps[k]
            if (
                abs(first + second - step) <= BRIDGE_TOLERANCE * step
                and max(first, second) <= STRAY_STEP * step
            ):
                kept = chain[:k] + chain[k + 1 :]
                out.append(Group(tuple(blobs[j] for j in kept), direction))
    return out


def _join(
    blobs: list[Blob],
    before: list[int],
    after: list[int],
    direction: str,
    between: tuple[Blob, ...] | None = None,
) -> Group:
    """The two chains as one group, through `between` or one blob filled in midway."""
    if between is None:
        last, first = blobs[before[-1]], blobs[after[0]]
        w, h = (last.w + first.w) / 2, (last.h + first.h) / 2
        cx, cy = (last.cx + first.cx) / 2, (last.cy + first.cy) / 2
        x, y = round(cx - w / 2), round(cy - h / 2)
        between = (Blob(x, y, round(w), round(h), last.polarity, True),)
    return Group((*(blobs[j] for j in before), *between, *(blobs[j] for j in after)), direction)


def find_groups(
    gray: np.ndarray, search_height: int = SEARCH_HEIGHT
) -> tuple[list[Group], list[Group]]:
    """Lines and columns of character-sized blobs."""
    blobs = _drop_frames(find_blobs(gray, search_height))
    return _chains(blobs, "h"), _chains(blobs, "v")
