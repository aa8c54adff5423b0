"""Container code candidates: 11 blobs in one of the three layouts of a container number.

One line (owner code and serial side by side), several lines (owner code above the serial,
left-aligned) and a vertical column of upright characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocr.candidates import Blob, Group


@dataclass(frozen=True)
class Candidate:
    """Eleven blobs that may spell a container number, in reading order."""

    blobs: tuple[Blob, ...]
    layout: str  # horizontal, horizontal_multiline, vertical


def region(blobs: tuple[Blob, ...]) -> tuple[int, int, int, int]:
    """The bounding box (x, y, w, h) of the blobs."""
    x0 = min(b.x for b in blobs)
    y0 = min(b.y for b in blobs)
    x1 = max(b.right for b in blobs)
    y1 = max(b.bottom for b in blobs)
    return (x0, y0, x1 - x0, y1 - y0)


def _consistent(blobs: tuple[Blob, ...]) -> bool:
    heights = [b.h for b in blobs]
    return max(heights) <= 1.5 * min(heights)


# Characters of one code are painted at an even pitch: within the owner code and within the
# serial, the largest step between neighbouring centres may be at most this many times the
# smallest. A window with a character missing (hidden by a rod) or with a stray blob at one
# end has a step about twice the others, and is the commonest source of a wrong number that
# still passes the check digit.
MAX_PITCH_RATIO = 1.6


def pitch_ratio(blobs: tuple[Blob, ...], direction: str) -> float:
    """Largest over smallest step between the centres of neighbouring blobs."""
    centres = [b.cx if direction == "h" else b.cy for b in blobs]
    steps = [abs(b - a) for a, b in zip(centres[:-1], centres[1:], strict=True)]
    return max(steps) / max(min(steps), 1.0)


def _even(blobs: tuple[Blob, ...], direction: str) -> bool:
    """Owner code (4) and serial (6) each evenly spaced; the check digit may stand apart."""
    return (
        pitch_ratio(blobs[:4], direction) <= MAX_PITCH_RATIO
        and pitch_ratio(blobs[4:10], direction) <= MAX_PITCH_RATIO
    )


def assemble(lines: list[Group], columns: list[Group]) -> list[Candidate]:
    """11-blob candidates in the three layouts. The first window of every group comes before
    any group's second, so that one long chain (a locking rod's texture, a column of
    corrugation marks) cannot fill the reader's budget of candidates; within a rank, columns
    before lines, then multi-line pairs, then groups joined across a lost character, taller
    groups first."""
    ranked: list[tuple[int, int, float, Candidate]] = []
    for order, (layout, groups) in enumerate((("vertical", columns), ("horizontal", lines))):
        for group in groups:
            bridged = any(b.filled for b in group.blobs)
            for rank, window in enumerate(_windows(group.blobs, layout)):
                ranked.append((rank, 3 * bridged + order, -group.height, window))
    for rank, window in enumerate(_multiline(lines)):
        ranked.append((rank, 2 + 3 * any(b.filled for b in window.blobs), 0.0, window))
    ranked.sort(key=lambda item: item[:3])
    return [window for *_key, window in ranked]


def _windows(blobs: tuple[Blob, ...], layout: str) -> list[Candidate]:
    """The group's 11-blob windows; of a group joined across a lost character, only those
    that hold the filled-in blob (the others are windows of the groups as found)."""
    bridged = any(b.filled for b in blobs)
    out = []
    for start in range(0, len(blobs) - 10):
        window = blobs[start : start + 11]
        if bridged and not any(b.filled for b in window):
            continue
        if _consistent(window) and _even(window, "v" if layout == "vertical" else "h"):
            out.append(Candidate(window, layout))
    return out


def _multiline(lines: list[Group]) -> list[Candidate]:
    """Owner code on one line, serial and check digit on the line below, left-aligned. Either
    line may carry a stray blob (a lock rod, a mark) beside the characters."""
    out = []
    for owner_line in (g for g in lines if len(g.blobs) >= 4):
        for start in range(len(owner_line.blobs) - 3):
            owner = owner_line.blobs[start : start + 4]
            bottom = max(b.bottom for b in owner)
            for serial_line in (g for g in lines if len(g.blobs) >= 7):
                height = max(owner_line.height, serial_line.height)
                for index, lead in enumerate(serial_line.blobs[:-6]):
                    drop = lead.y - bottom
                    if not -0.1 * height <= drop <= 1.6 * height:
                        continue
                    if abs(lead.x - owner[0].x) > 1.2 * height:
                        continue
                    blobs = owner + serial_line.blobs[index : index + 7]
                    if _consistent(blobs) and _even(blobs, "h"):
                        out.append(Candidate(blobs, "horizontal_multiline"))
    return out
