"""Read the container number of one gate-camera image.

Steps: find character-sized blobs and group them into lines and columns (`candidates`);
assemble 11-character code candidates in the three layouts (one line, owner code above the
serial, vertical column); paste each candidate's characters into one synthetic line and read
it with position whitelists (letters, then digits); coerce confusable characters by position;
let the check digit decide, repairing only when exactly one alternative fits; score.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import cv2
import numpy as np

from gated.domain import ContainerRead
from ocr import iso6346
from ocr.candidates import Blob, Group, find_groups
from ocr.engine import DIGITS, LETTERS, Engine, Glyph, default_engine
from ocr.glyphs import SLOT_GAP, glyph_image, paste, render, unboxed_glyph_image
from ocr.imageio import ImageError, ImageInput, describe, load_gray

_LOGGER = logging.getLogger(__name__)

MAX_CANDIDATES = 12
# Scoring: a check-digit repair or a disagreement with the free read costs confidence.
REPAIR_PENALTY = 0.9
DISAGREEMENT_PENALTY = 0.8
DEFAULT_MIN_CONFIDENCE = 0.6
# Blob search resolutions (frame height), tried in turn until a read is accepted: the reduced
# one is fast, the full one finds what the reduction merged or lost.
SEARCH_HEIGHTS = (720, 1080)
# Alternatives weaker than this are noise from the engine, not real doubts.
MIN_ALTERNATIVE = 0.1
# Freight containers are category U; a J or Z read is more often a misaligned window (a
# digit forced into a letter) than detachable equipment or a chassis number at this gate.
RARE_CATEGORY_PRIOR = 0.6
# The chosen read is read again this much larger. A different valid number from that reading
# costs CONTRARY_PENALTY; MANY_UNCONFIRMED characters or more it does not confirm cost
# VERIFY_PENALTY.
VERIFY_SCALE = 1.2
CONTRARY_PENALTY = 0.2
MANY_UNCONFIRMED = 3
VERIFY_PENALTY = 0.5


@dataclass(frozen=True)
class Candidate:
    blobs: tuple[Blob, ...]
    layout: str  # horizontal, horizontal_multiline, vertical


@dataclass(frozen=True)
class CodeRead:
    number: str
    confidence: float
    candidate: Candidate


def read_image(
    image: ImageInput,
    camera: str | None = None,
    engine: Engine | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> ContainerRead:
    """Read one image. Never raises for bad input: the error goes into the result."""
    started = time.perf_counter()
    name = describe(image)
    try:
        gray, scale = load_gray(image)
    except ImageError as exc:
        return _result(name, camera, started, error=str(exc))
    except Exception as exc:  # a decoder bug must not take the lane down
        _LOGGER.warning("camera %s: cannot load image %s: %r", camera, name, exc)
        return _result(name, camera, started, error=f"cannot load image: {exc!r}")
    try:
        read = _read_gray(gray, name, camera, engine or default_engine(), started, min_confidence)
    except Exception as exc:
        _LOGGER.exception("camera %s: OCR failed on %s", camera, name)
        return _result(name, camera, started, error=f"OCR failed: {exc!r}")
    if read.region is not None and scale != 1.0:
        x, y, w, h = (round(v * scale) for v in read.region)
        read = replace(read, region=(x, y, w, h))
    return read


def _result(
    name: str,
    camera: str | None,
    started: float,
    error: str | None = None,
    best: CodeRead | None = None,
    size_type: str | None = None,
    accepted: bool = False,
) -> ContainerRead:
    elapsed = (time.perf_counter() - started) * 1000.0
    region = _region(best.candidate.blobs) if best is not None else None
    return ContainerRead(
        image=name,
        camera=camera,
        container_number=best.number if best is not None and accepted else None,
        size_type=size_type if accepted else None,
        confidence=round(best.confidence, 3) if best is not None else 0.0,
        layout=best.candidate.layout if best is not None else None,
        region=region,
        error=error,
        elapsed_ms=round(elapsed, 1),
    )


def _region(blobs: tuple[Blob, ...]) -> tuple[int, int, int, int]:
    x0 = min(b.x for b in blobs)
    y0 = min(b.y for b in blobs)
    x1 = max(b.right for b in blobs)
    y1 = max(b.bottom for b in blobs)
    return (x0, y0, x1 - x0, y1 - y0)


def _read_gray(
    gray: np.ndarray,
    name: str,
    camera: str | None,
    engine: Engine,
    started: float,
    min_confidence: float,
) -> ContainerRead:
    reads: list[CodeRead] = []
    best = None
    for search_height in SEARCH_HEIGHTS:
        lines, columns = find_groups(gray, search_height)
        candidates = assemble(lines, columns)[:MAX_CANDIDATES]
        reads.extend(r for r in (read_candidate(gray, c, engine) for c in candidates) if r)
        best = choose(reads)
        if best is not None and best.confidence >= max(min_confidence, DEFAULT_MIN_CONFIDENCE):
            break
    if best is None:
        return _result(name, camera, started)
    best = verify(gray, best, engine)
    accepted = best.confidence >= min_confidence
    size_type = find_size_type(gray, best.candidate, lines, columns, engine) if accepted else None
    _LOGGER.debug(
        "camera %s: %s read %s (%.2f, %s)", camera, name, best.number, best.confidence,
        "accepted" if accepted else "refused",
    )
    return _result(name, camera, started, best=best, size_type=size_type, accepted=accepted)


# --- candidates ----------------------------------------------------------------------------


def _consistent(blobs: tuple[Blob, ...]) -> bool:
    heights = [b.h for b in blobs]
    return max(heights) <= 1.5 * min(heights)


def assemble(lines: list[Group], columns: list[Group]) -> list[Candidate]:
    """11-blob candidates in the three layouts, longest and tallest groups first."""
    found: list[Candidate] = []
    for group in sorted(columns, key=lambda g: -g.height):
        found.extend(_windows(group.blobs, "vertical"))
    for group in sorted(lines, key=lambda g: -g.height):
        found.extend(_windows(group.blobs, "horizontal"))
    found.extend(_multiline(lines))
    return found


def _windows(blobs: tuple[Blob, ...], layout: str) -> list[Candidate]:
    out = []
    for start in range(0, len(blobs) - 10):
        window = blobs[start : start + 11]
        if _consistent(window):
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
                    if _consistent(blobs):
                        out.append(Candidate(blobs, "horizontal_multiline"))
    return out


# --- reading -------------------------------------------------------------------------------


def _assign(
    glyphs: list[Glyph], slots: list[tuple[int, int]], gap: float = SLOT_GAP
) -> list[Glyph | None]:
    """Each slot's glyph, None where the engine saw no character or several."""
    per_slot: list[list[Glyph]] = [[] for _ in slots]
    for glyph in glyphs:
        centre = (glyph.x0 + glyph.x1) / 2
        for index, (x0, x1) in enumerate(slots):
            if x0 - gap / 2 <= centre < x1 + gap / 2:
                per_slot[index].append(glyph)
                break
    return [found[0] if len(found) == 1 else None for found in per_slot]


def _read_part(
    gray: np.ndarray,
    blobs: tuple[Blob, ...],
    engine: Engine,
    whitelist: str,
    bold: bool = False,
) -> list[Glyph | None]:
    line, slots = render(gray, blobs, bold)
    assigned = _assign(engine.read_line(line, whitelist), slots)
    for index, glyph in enumerate(assigned):
        if glyph is None:  # read that one character on its own
            single, single_slots = render(gray, (blobs[index],), bold)
            assigned[index] = _assign(engine.read_line(single, whitelist), single_slots)[0]
    return assigned


def _two_opinions(
    gray: np.ndarray, blobs: tuple[Blob, ...], engine: Engine, whitelist: str
) -> list[Glyph | None]:
    """Read the characters as binarised by Otsu and again with bolder strokes. Where the two
    readings differ, the more confident one leads and the other becomes its alternative, so
    that the check digit can arbitrate."""
    plain = _read_part(gray, blobs, engine, whitelist)
    bold = _read_part(gray, blobs, engine, whitelist, bold=True)
    return [_merge(a, b) for a, b in zip(plain, bold, strict=True)]


def _merge(a: Glyph | None, b: Glyph | None) -> Glyph | None:
    if a is None or b is None:
        return a or b
    lead, other = (a, b) if a.confidence >= b.confidence else (b, a)
    alternatives = dict(lead.alternatives)
    for text, confidence in ((other.text, other.confidence), *other.alternatives):
        if text != lead.text:
            alternatives[text] = max(alternatives.get(text, 0.0), confidence)
    ranked = tuple(sorted(alternatives.items(), key=lambda item: -item[1]))
    return Glyph(lead.text, lead.confidence, lead.x0, lead.x1, ranked)


def _with_unboxed_check_digit(
    gray: np.ndarray, blobs: tuple[Blob, ...], check: Glyph | None, engine: Engine
) -> Glyph | None:
    """When the check digit sits in a box, read the serial again with the digit cut out of
    the box; the two readings of the check digit merge like two opinions (the check digit
    arbitrates where they differ)."""
    unboxed = unboxed_glyph_image(gray, blobs[-1])
    if unboxed is None:
        return check
    line, slots = paste([glyph_image(gray, b) for b in blobs[:-1]] + [unboxed])
    return _merge(check, _assign(engine.read_line(line, DIGITS), slots)[-1])


def read_candidate(gray: np.ndarray, candidate: Candidate, engine: Engine) -> CodeRead | None:
    """Read one 11-blob candidate; None unless it yields exactly one valid number."""
    owner = _two_opinions(gray, candidate.blobs[:4], engine, LETTERS)
    if any(g is None for g in owner):
        return None
    serial = _two_opinions(gray, candidate.blobs[4:], engine, DIGITS)
    serial[-1] = _with_unboxed_check_digit(gray, candidate.blobs[4:], serial[-1], engine)
    if any(g is None for g in serial):
        return None
    decided = decide_number([g for g in owner + serial if g is not None])
    if decided is None:
        return None
    number, confidence = decided
    if number[3] != "U":
        confidence *= RARE_CATEGORY_PRIOR
    free = _free_read(gray, candidate, engine)
    if free is not None and free[:10] != number[:10]:
        confidence *= DISAGREEMENT_PENALTY
    return CodeRead(number, confidence, candidate)


def _read_rescaled(
    line: np.ndarray, slots: list[tuple[int, int]], engine: Engine, whitelist: str
) -> list[Glyph | None]:
    """Read a rendered line again at another size: the engine's errors depend on scale."""
    factor = VERIFY_SCALE
    size = (round(line.shape[1] * factor), round(line.shape[0] * factor))
    bigger = cv2.resize(line, size, interpolation=cv2.INTER_LINEAR)
    _thr, bigger = cv2.threshold(bigger, 127, 255, cv2.THRESH_BINARY)
    scaled = [(round(a * factor), round(b * factor)) for a, b in slots]
    return _assign(engine.read_line(bigger, whitelist), scaled, gap=SLOT_GAP * factor)


def verify(gray: np.ndarray, read: CodeRead, engine: Engine) -> CodeRead:
    """Read the chosen candidate once more at another scale. A second reading that spells a
    different valid number is strong contrary evidence (two confident errors that happen to
    pass the check digit rarely repeat at another scale); many unconfirmed characters are
    weaker evidence. The second reading is noisier than the first, so it never confirms a
    number, it only casts doubt."""
    blobs = read.candidate.blobs
    owner_line, owner_slots = render(gray, blobs[:4])
    serial_line, serial_slots = render(gray, blobs[4:])
    seen = _read_rescaled(owner_line, owner_slots, engine, LETTERS)
    seen += _read_rescaled(serial_line, serial_slots, engine, DIGITS)
    spelled = ["".join(g.text if g is not None else "?" for g in seen)]
    unboxed = unboxed_glyph_image(gray, blobs[-1])
    if unboxed is not None:
        line, slots = paste([glyph_image(gray, b) for b in blobs[4:-1]] + [unboxed])
        other = _read_rescaled(line, slots, engine, DIGITS)[-1]
        if other is not None:
            spelled.append(spelled[0][:-1] + other.text)
    contrary = any(
        text != read.number and iso6346.is_valid_container_number(text) for text in spelled
    )
    unconfirmed = min(
        sum(1 for a, b in zip(text, read.number, strict=True) if a != b) for text in spelled
    )
    confidence = read.confidence
    if contrary:
        confidence *= CONTRARY_PENALTY
    elif unconfirmed >= MANY_UNCONFIRMED:
        confidence *= VERIFY_PENALTY
    return CodeRead(read.number, confidence, read.candidate)


def decide_number(glyphs: list[Glyph]) -> tuple[str, float] | None:
    """The number 11 glyphs spell and its confidence. When the check digit fails, each
    position's alternatives are tried, and the answer stands only if exactly one valid number
    can be made of them."""
    if len(glyphs) != 11:
        return None
    text = "".join(g.text for g in glyphs)
    confidence = min(g.confidence for g in glyphs)
    if iso6346.is_valid_container_number(text):
        return text, confidence
    alternatives = [
        [g.text] + [a for a, c in g.alternatives if c >= MIN_ALTERNATIVE] for g in glyphs
    ]
    valid = iso6346.valid_from_alternatives(alternatives)
    if len(valid) != 1:
        return None
    number = valid[0]
    # A repaired character counts with the confidence of the alternative that was chosen.
    confidence = 1.0
    for glyph, char in zip(glyphs, number, strict=True):
        chosen = glyph.confidence if char == glyph.text else dict(glyph.alternatives)[char]
        confidence = min(confidence, chosen)
    return number, confidence * REPAIR_PENALTY


def _free_read(gray: np.ndarray, candidate: Candidate, engine: Engine) -> str | None:
    """The candidate read without position whitelists, coerced by position afterwards: a check
    that the letters really look like letters and the digits like digits."""
    owner = _read_part(gray, candidate.blobs[:4], engine, LETTERS + DIGITS)
    serial = _read_part(gray, candidate.blobs[4:10], engine, LETTERS + DIGITS)
    if any(g is None for g in owner + serial):
        return None
    return iso6346.coerce_positions(
        "".join(g.text for g in owner + serial if g is not None) + "0"
    )


def choose(reads: list[CodeRead]) -> CodeRead | None:
    """The best read of an image; conflicting valid numbers make it doubtful."""
    if not reads:
        return None
    reads = sorted(reads, key=lambda r: -r.confidence)
    best = reads[0]
    support = sum(1 for r in reads if r.number == best.number)
    rivals = [r for r in reads[1:] if r.number != best.number and _overlap(r, best)]
    confidence = best.confidence
    if rivals:
        confidence *= max(0.0, 1.0 - rivals[0].confidence)
    elif support > 1:
        confidence = 1.0 - (1.0 - confidence) * 0.5
    return CodeRead(best.number, confidence, best.candidate)


def _overlap(a: CodeRead, b: CodeRead) -> bool:
    """True when two reads come from overlapping parts of the image."""
    ax, ay, aw, ah = _region(a.candidate.blobs)
    bx, by, bw, bh = _region(b.candidate.blobs)
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


# --- size/type code ------------------------------------------------------------------------


def find_size_type(
    gray: np.ndarray,
    candidate: Candidate,
    lines: list[Group],
    columns: list[Group],
    engine: Engine,
) -> str | None:
    """The 4-character size/type code printed next to the number, when one is found."""
    x0, y0, w, h = _region(candidate.blobs)
    char_h = float(np.median([b.h for b in candidate.blobs]))
    serial = candidate.blobs[4:]
    if candidate.layout == "vertical":
        groups = [
            g for g in columns
            if 0 < g.blobs[0].x - (x0 + w) < 6 * char_h and abs(g.blobs[0].y - y0) < 3 * char_h
        ]
    else:
        serial_x0 = min(b.x for b in serial)
        serial_x1 = max(b.right for b in serial)
        groups = [
            g for g in lines
            if 0 <= g.blobs[0].y - (y0 + h) < 2.5 * char_h
            and serial_x0 - char_h <= g.blobs[0].x <= serial_x1
        ]
    groups.sort(key=lambda g: abs(g.blobs[0].y - y0) + abs(g.blobs[0].x - x0))
    for group in groups:
        for start in range(0, len(group.blobs) - 3):
            blobs = group.blobs[start : start + 4]
            line, slots = render(gray, blobs)
            assigned = _assign(engine.read_line(line, LETTERS + DIGITS), slots)
            if any(g is None for g in assigned):
                continue
            code = iso6346.repair_size_type("".join(g.text for g in assigned if g is not None))
            if code is not None:
                return code
    return None
