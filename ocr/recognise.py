"""Read one code candidate: synthetic lines through the engine, two opinions per character,
the check digit as arbiter, a second look at another scale, and a score.

The confidence is the lowest per-character engine confidence of the characters used, with
penalties for a repair, for disagreement with a read without whitelists, for a rare equipment
category and for contrary evidence from the second look. It is a score, not a probability.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ocr import iso6346
from ocr.candidates import Blob, Group
from ocr.engine import DIGITS, LETTERS, Engine, Glyph
from ocr.glyphs import SLOT_GAP, glyph_image, paste, render, stretch_of, unboxed_glyph_image
from ocr.layouts import Candidate, region

# Scoring: a check-digit repair or a disagreement with the free read costs confidence.
REPAIR_PENALTY = 0.9
DISAGREEMENT_PENALTY = 0.8
# Alternatives weaker than this are noise from the engine, not real doubts.
MIN_ALTERNATIVE = 0.1
# Alternatives at least this strong that spell a second valid number cost AMBIGUOUS_PENALTY.
STRONG_ALTERNATIVE = 0.5
AMBIGUOUS_PENALTY = 0.3
# Each character beyond the first with a strong runner-up costs this.
CONTESTED_PENALTY = 0.7
# Freight containers are category U; a J or Z read is more often a misaligned window (a
# digit forced into a letter) than detachable equipment or a chassis number at this gate.
RARE_CATEGORY_PRIOR = 0.6
# A character read where a lost one was filled in (see candidates._bridged) is less certain.
FILLED_PENALTY = 0.9
# The chosen read is read again this much larger. A different valid number from that reading
# costs CONTRARY_PENALTY; MANY_UNCONFIRMED characters or more it does not confirm cost
# VERIFY_PENALTY.
VERIFY_SCALE = 1.2
# A line read that places fewer than all but one of its characters is read again this much
# larger before characters are read one by one.
RETRY_SCALE = 1.5
CONTRARY_PENALTY = 0.2
MANY_UNCONFIRMED = 3
VERIFY_PENALTY = 0.5


@dataclass(frozen=True)
class CodeRead:
    """A valid number read from a candidate, with its score."""

    number: str
    confidence: float
    candidate: Candidate
    stretch: float = 1.0  # the horizontal scale its characters were read at
    engine: str = ""  # the name of the engine that read it


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
    max_missing: int | None = None,
    stretch: float = 1.0,
) -> list[Glyph | None]:
    """Read the blobs as one line; a character the line read did not place is read on its
    own, unless more than `max_missing` are missing (then the line is given up as it is)."""
    line, slots = render(gray, blobs, bold, stretch)
    assigned = _assign(engine.read_line(line, whitelist), slots)
    if sum(g is None for g in assigned) > 1:
        # the engine sometimes gives up on a clean line at one size and reads it at another
        larger = _read_rescaled(line, slots, engine, whitelist, RETRY_SCALE)
        if sum(g is None for g in larger) < sum(g is None for g in assigned):
            assigned = larger
    if max_missing is not None and sum(g is None for g in assigned) > max_missing:
        return assigned
    for index, glyph in enumerate(assigned):
        if glyph is None:  # read that one character on its own
            single, single_slots = render(gray, (blobs[index],), bold, stretch)
            assigned[index] = _assign(engine.read_line(single, whitelist), single_slots)[0]
    return assigned


# A candidate whose owner code the engine cannot place at least this many of is not read
# further: a rod's texture or a column of marks, not a code (saves most of the time spent on
# the wrong candidates).
MIN_OWNER_PLACED = 3


def _two_opinions(
    gray: np.ndarray, blobs: tuple[Blob, ...], engine: Engine, whitelist: str,
    max_missing: int | None = None, stretch: float = 1.0,
) -> list[Glyph | None]:
    """Read the characters as binarised by Otsu and again with bolder strokes. Where the two
    readings differ, the more confident one leads and the other becomes its alternative, so
    that the check digit can arbitrate. With `max_missing`, a plain read that misses more
    characters than that is returned as it is, without the second opinion."""
    plain = _read_part(gray, blobs, engine, whitelist, max_missing=max_missing, stretch=stretch)
    if max_missing is not None and sum(g is None for g in plain) > max_missing:
        return plain
    bold = _read_part(gray, blobs, engine, whitelist, bold=True, stretch=stretch)
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
    gray: np.ndarray, blobs: tuple[Blob, ...], check: Glyph | None, engine: Engine,
    stretch: float = 1.0,
) -> Glyph | None:
    """When the check digit sits in a box, read the serial again with the digit cut out of
    the box; the two readings of the check digit merge like two opinions (the check digit
    arbitrates where they differ)."""
    unboxed = unboxed_glyph_image(gray, blobs[-1])
    if unboxed is None:
        return check
    line, slots = paste([glyph_image(gray, b) for b in blobs[:-1]] + [unboxed], stretch)
    return _merge(check, _assign(engine.read_line(line, DIGITS), slots)[-1])


def read_candidate(
    gray: np.ndarray,
    candidate: Candidate,
    engine: Engine,
    unplaced: list[Candidate] | None = None,
) -> CodeRead | None:
    """Read one 11-blob candidate; None unless it yields exactly one valid number. Characters
    narrowed or widened by the view (see `glyphs.stretch_of`) are read as they are first, and
    in their usual proportions when that gives no confident number; two different numbers
    from the two readings give none. A candidate whose owner code the engine cannot place
    either way is appended to `unplaced`."""
    if not all(_inked(gray, candidate.blobs, i) for i, b in enumerate(candidate.blobs) if b.filled):
        return None
    misses: list[Candidate] = []
    read = _read_stretched(gray, candidate, engine, 1.0, misses)
    stretch = stretch_of(candidate.blobs[4:10])
    if stretch != 1.0 and (read is None or read.confidence < STRETCH_RETRY_BELOW):
        other = _read_stretched(gray, candidate, engine, stretch, misses)
        if read is not None and other is not None and other.number != read.number:
            return None
        if other is not None and (read is None or other.confidence > read.confidence):
            read = other
    if unplaced is not None and len(misses) == (2 if stretch != 1.0 else 1):
        unplaced.append(candidate)
    return read


# Below this confidence, a candidate's characters are read again in their usual proportions.
STRETCH_RETRY_BELOW = 0.6


def _read_stretched(
    gray: np.ndarray,
    candidate: Candidate,
    engine: Engine,
    stretch: float,
    unplaced: list[Candidate],
) -> CodeRead | None:
    owner = _two_opinions(
        gray, candidate.blobs[:4], engine, LETTERS, max_missing=4 - MIN_OWNER_PLACED,
        stretch=stretch,
    )
    if sum(g is None for g in owner) > 4 - MIN_OWNER_PLACED:
        unplaced.append(candidate)
    if any(g is None for g in owner):
        return None
    serial = _two_opinions(gray, candidate.blobs[4:], engine, DIGITS, stretch=stretch)
    serial[-1] = _with_unboxed_check_digit(
        gray, candidate.blobs[4:], serial[-1], engine, stretch
    )
    if any(g is None for g in serial):
        return None
    decided = decide_number([g for g in owner + serial if g is not None])
    if decided is None:
        return None
    number, confidence = decided
    if number[3] != "U":
        confidence *= RARE_CATEGORY_PRIOR
    if any(b.filled for b in candidate.blobs):
        confidence *= FILLED_PENALTY
        # The check digit cannot tell apart the letters whose values are 11 apart (A/K/U,
        # B/L/V, C/M/W, ...): every letter of the owner code has such a twin, so a letter
        # there that was not seen whole is a guess the check digit cannot catch (a V behind a
        # bar read as an L). The category letter has none among U, J and Z.
        if any(b.filled for b in candidate.blobs[:3]):
            confidence *= AMBIGUOUS_PENALTY
        # and any character not seen whole must be read without a strong runner-up
        glyphs = owner + serial
        if any(
            blob.filled and glyph is not None
            and any(c >= STRONG_ALTERNATIVE for _a, c in glyph.alternatives)
            for blob, glyph in zip(candidate.blobs, glyphs, strict=True)
        ):
            confidence *= AMBIGUOUS_PENALTY
    confidence *= FRAGMENT_PENALTY ** len(fragments(candidate.blobs, number))
    free = _free_read(gray, candidate, engine, stretch)
    if free is not None and free[:10] != number[:10]:
        confidence *= DISAGREEMENT_PENALTY
    return CodeRead(number, confidence, candidate, stretch, engine.name)


# A character that is not narrow by nature, in a box less than FRAGMENT_WIDTH of the median
# width of the other such characters of its part (owner code, serial), is probably a part of
# it: the rest hidden by a rod or a bar, and read as another character (a D's left half as
# an L). Each costs FRAGMENT_PENALTY.
NARROW_CHARACTERS = frozenset("IJ1")
FRAGMENT_WIDTH = 0.65
FRAGMENT_PENALTY = 0.5


def fragments(blobs: tuple[Blob, ...], number: str) -> list[int]:
    """Positions of characters whose boxes are too narrow for what they were read as."""
    found: list[int] = []
    for part in (range(0, 4), range(4, 10)):
        wide = [i for i in part if number[i] not in NARROW_CHARACTERS and not blobs[i].filled]
        if len(wide) < 3:
            continue
        median = float(np.median([blobs[i].w / blobs[i].h for i in wide]))
        found.extend(i for i in wide if blobs[i].w / blobs[i].h < FRAGMENT_WIDTH * median)
    return found


# A filled-in blob must hold at least this share of the ink its neighbours hold (at their
# threshold): a character partly hidden still shows most of its strokes, a space does not.
MIN_FILLED_INK = 0.5


def _inked(gray: np.ndarray, blobs: tuple[Blob, ...], index: int) -> bool:
    """Whether the filled-in blob at `index` holds ink like its found neighbours."""
    neighbours = [b for b in blobs[max(0, index - 2) : index + 3] if not b.filled]
    shares, levels = [], []
    for blob in neighbours:
        crop = _crop(gray, blob)
        level, _binary = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        levels.append(level)
        shares.append(float(np.mean(crop > level)))
    if not shares:
        return False
    crop = _crop(gray, blobs[index])
    share = float(np.mean(crop > float(np.median(levels)))) if crop.size else 0.0
    return share >= MIN_FILLED_INK * float(np.median(shares))


def _crop(gray: np.ndarray, blob: Blob) -> np.ndarray:
    """The blob's pixels with ink bright (the polarity of bright paint on dark steel)."""
    y0, x0 = max(0, blob.y), max(0, blob.x)
    crop = gray[y0 : blob.bottom, x0 : blob.right]
    return crop if blob.polarity == 1 else 255 - crop


def _read_rescaled(
    line: np.ndarray,
    slots: list[tuple[int, int]],
    engine: Engine,
    whitelist: str,
    factor: float = VERIFY_SCALE,
) -> list[Glyph | None]:
    """Read a rendered line again at another size: the engine's errors depend on scale."""
    size = (round(line.shape[1] * factor), round(line.shape[0] * factor))
    bigger = cv2.resize(line, size, interpolation=cv2.INTER_LINEAR)
    _thr, bigger = cv2.threshold(bigger, 127, 255, cv2.THRESH_BINARY)
    scaled = [(round(a * factor), round(b * factor)) for a, b in slots]
    return _assign(engine.read_line(bigger, whitelist), scaled, gap=SLOT_GAP * factor)


def _second_look(
    line: np.ndarray, slots: list[tuple[int, int]], engine: Engine, whitelist: str
) -> list[Glyph | None]:
    """The line read at VERIFY_SCALE; where the engine places almost nothing there (it gives
    up on some clean lines at some sizes) at RETRY_SCALE instead: a character not placed is
    no evidence either way."""
    seen = _read_rescaled(line, slots, engine, whitelist)
    if sum(g is None for g in seen) > 1:
        retry = _read_rescaled(line, slots, engine, whitelist, RETRY_SCALE)
        if sum(g is None for g in retry) < sum(g is None for g in seen):
            seen = retry
    return seen


def verify(gray: np.ndarray, read: CodeRead, engine: Engine) -> CodeRead:
    """Read the chosen candidate once more at another scale. A second reading that spells a
    different valid number is strong contrary evidence (two confident errors that happen to
    pass the check digit rarely repeat at another scale); many unconfirmed characters are
    weaker evidence. The second reading is noisier than the first, so it never confirms a
    number, it only casts doubt."""
    blobs = read.candidate.blobs
    stretch = read.stretch
    owner_line, owner_slots = render(gray, blobs[:4], stretch=stretch)
    serial_line, serial_slots = render(gray, blobs[4:], stretch=stretch)
    seen = _second_look(owner_line, owner_slots, engine, LETTERS)
    seen += _second_look(serial_line, serial_slots, engine, DIGITS)
    spelled = ["".join(g.text if g is not None else "?" for g in seen)]
    unboxed = unboxed_glyph_image(gray, blobs[-1])
    if unboxed is not None:
        line, slots = paste([glyph_image(gray, b) for b in blobs[4:-1]] + [unboxed], stretch)
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
    return replace(read, confidence=confidence)


def decide_number(glyphs: list[Glyph]) -> tuple[str, float] | None:
    """The number 11 glyphs spell and its confidence. When the check digit fails, each
    position's alternatives are tried, and the answer stands only if exactly one valid number
    can be made of them."""
    if len(glyphs) != 11:
        return None
    text = "".join(g.text for g in glyphs)
    confidence = min(g.confidence for g in glyphs)
    if iso6346.is_valid_container_number(text):
        # Strong second opinions that spell another valid number make the read doubtful.
        strong = [
            [g.text] + [a for a, c in g.alternatives if c >= STRONG_ALTERNATIVE] for g in glyphs
        ]
        if len(iso6346.valid_from_alternatives(strong)) > 1:
            confidence *= AMBIGUOUS_PENALTY
        # One contested character is what the check digit settles; more are a shaky read.
        contested = sum(1 for options in strong if len(options) > 1)
        if contested > 1:
            confidence *= CONTESTED_PENALTY ** (contested - 1)
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


def _free_read(
    gray: np.ndarray, candidate: Candidate, engine: Engine, stretch: float = 1.0
) -> str | None:
    """The candidate read without position whitelists, coerced by position afterwards: a check
    that the letters really look like letters and the digits like digits."""
    owner = _read_part(gray, candidate.blobs[:4], engine, LETTERS + DIGITS, stretch=stretch)
    serial = _read_part(gray, candidate.blobs[4:10], engine, LETTERS + DIGITS, stretch=stretch)
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
    # The same characters found again (another search scale, a window one blob wider) are
    # the same evidence, not support: only the number read elsewhere in the image counts.
    support = 1 + sum(1 for r in reads[1:] if r.number == best.number and not _overlap(r, best))
    rivals = [r for r in reads[1:] if r.number != best.number and _overlap(r, best)]
    confidence = best.confidence
    if rivals:
        confidence *= max(0.0, 1.0 - rivals[0].confidence)
    elif support > 1:
        confidence = 1.0 - (1.0 - confidence) * 0.5
    return replace(best, confidence=confidence)


def _overlap(a: CodeRead, b: CodeRead) -> bool:
    """True when two reads come from overlapping parts of the image."""
    ax, ay, aw, ah = region(a.candidate.blobs)
    bx, by, bw, bh = region(b.candidate.blobs)
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
    x0, y0, w, h = region(candidate.blobs)
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
    own = set(candidate.blobs)
    groups.sort(key=lambda g: abs(g.blobs[0].y - y0) + abs(g.blobs[0].x - x0))
    for group in groups:
        for start in range(0, len(group.blobs) - 3):
            blobs = group.blobs[start : start + 4]
            if own.intersection(blobs):
                continue
            line, slots = render(gray, blobs)
            assigned = _assign(engine.read_line(line, LETTERS + DIGITS), slots)
            if any(g is None for g in assigned):
                continue
            code = iso6346.repair_size_type("".join(g.text for g in assigned if g is not None))
            if code is not None:
                return code
    return None
