"""Read the container number of one gate-camera image.

Steps: load the image (`imageio`); find character-sized blobs and group them into lines and
columns (`candidates`); assemble 11-blob candidates in the three layouts (`layouts`); read
each, let the check digit decide and score it (`recognise`); keep the best, look at it once
more, and withhold it below the confidence threshold.

Engines read in turn: the first reads every image, a next one (by default PP-OCR, where its
model is installed) reads the same candidates again only when the ones before leave the
image unreadable. Their reads are weighed together, so two engines finding different valid
numbers at one place make the image doubtful.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from gated.domain import ContainerRead
from ocr.candidates import Group, find_groups
from ocr.engine import Engine, Glyph, default_engines
from ocr.imageio import ImageError, ImageInput, describe, load_gray
from ocr.layouts import Candidate, assemble, region
from ocr.recognise import CodeRead, choose, find_size_type, read_candidate, verify

_LOGGER = logging.getLogger(__name__)

MAX_CANDIDATES = 12
# A fallback engine may make at most this many line reads an image (PP-OCR: 12-25 ms each,
# 10-20 a candidate): it reads the likeliest three or so candidates, and an image with none
# costs about half a second more. (Measured: 30 read one perturbed photo of 232 fewer than
# 60; 60 cost 6 % more CPU an image than 30 on the synthetic gate pictures.)
FALLBACK_CALLS = 40
DEFAULT_MIN_CONFIDENCE = 0.6
# Blob search resolutions (frame height), tried in turn until a read is accepted: the reduced
# one is fast, the full one finds what the reduction merged or lost.
SEARCH_HEIGHTS = (720, 1080)


def read_image(
    image: ImageInput,
    camera: str | None = None,
    engine: Engine | Sequence[Engine] | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> ContainerRead:
    """Read one image. Never raises for bad input: the error goes into the result.
    `engine` is one engine, or engines in turn (see the module's text); by default
    `default_engines()`."""
    started = time.perf_counter()
    engines = _engines(engine)
    name = describe(image)
    try:
        gray, scale = load_gray(image)
    except ImageError as exc:
        return _result(name, camera, started, error=str(exc))
    except Exception as exc:  # a decoder bug must not take the lane down
        _LOGGER.warning("camera %s: cannot load image %s: %r", camera, name, exc)
        return _result(name, camera, started, error=f"cannot load image: {exc!r}")
    try:
        read = _read_gray(gray, name, camera, engines, started, min_confidence)
    except Exception as exc:
        _LOGGER.exception("camera %s: OCR failed on %s", camera, name)
        return _result(name, camera, started, error=f"OCR failed: {exc!r}")
    if read.region is not None and scale != 1.0:
        x, y, w, h = (round(v * scale) for v in read.region)
        read = replace(read, region=(x, y, w, h))
    return read


def _engines(engine: Engine | Sequence[Engine] | None) -> Sequence[Engine]:
    if engine is None:
        return default_engines()
    if isinstance(engine, Sequence):
        if not engine:
            raise ValueError("no OCR engine given")
        return engine
    return (engine,)


def _doubted(read: CodeRead, best: CodeRead, checked: CodeRead) -> CodeRead:
    """`read` with the second look's doubt when it is the read `best` was chosen from."""
    if (read.engine, read.number, read.candidate) != (best.engine, best.number, best.candidate):
        return read
    factor = checked.confidence / best.confidence if best.confidence > 0 else 0.0
    return replace(read, confidence=read.confidence * min(1.0, factor))


def _named(engines: Sequence[Engine], name: str) -> Engine:
    return next(e for e in engines if e.name == name)


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
    box = region(best.candidate.blobs) if best is not None else None
    return ContainerRead(
        image=name,
        camera=camera,
        container_number=best.number if best is not None and accepted else None,
        size_type=size_type if accepted else None,
        confidence=round(best.confidence, 3) if best is not None else 0.0,
        layout=best.candidate.layout if best is not None else None,
        region=box,
        error=error,
        elapsed_ms=round(elapsed, 1),
    )


def _read_gray(
    gray: np.ndarray,
    name: str,
    camera: str | None,
    engines: Sequence[Engine],
    started: float,
    min_confidence: float,
) -> ContainerRead:
    enough = max(min_confidence, DEFAULT_MIN_CONFIDENCE)
    found: dict[int, tuple[list[Group], list[Group], list[Candidate]]] = {}
    reads: list[CodeRead] = []
    looked: set[tuple[str, str, Candidate]] = set()  # reads given their second look
    best = final = None
    searched = SEARCH_HEIGHTS[0]  # the groups of the last search serve the size/type code
    for turn, engine in enumerate(engines):
        reader = engine if turn == 0 else _Budget(engine, FALLBACK_CALLS)
        for searched in SEARCH_HEIGHTS:
            if searched not in found:
                lines, columns = find_groups(gray, searched)
                found[searched] = (lines, columns, assemble(lines, columns))
            reads.extend(_read_candidates(gray, found[searched][2], reader))
            best = choose(reads)
            if best is not None and best.confidence >= enough:
                break
        if best is None:
            continue
        # The next engine reads too when the second look leaves the best read below the mark.
        # The doubt stays with the read it was cast on, so that another engine's read of the
        # place can lead, and a read is looked at a second time only once.
        key = (best.engine, best.number, best.candidate)
        if key in looked:
            final = best
        else:
            looked.add(key)
            final = verify(gray, best, _named(engines, best.engine))
            reads = [_doubted(r, best, final) for r in reads]
        if final.confidence >= enough:
            break
    if final is None:
        return _result(name, camera, started)
    best = final
    engine = _named(engines, best.engine)
    accepted = best.confidence >= min_confidence
    lines, columns, _candidates = found[searched]
    size_type = find_size_type(gray, best.candidate, lines, columns, engine) if accepted else None
    _LOGGER.debug(
        "camera %s: %s read %s by %s (%.2f, %s)", camera, name, best.number, best.engine,
        best.confidence, "accepted" if accepted else "refused",
    )
    return _result(name, camera, started, best=best, size_type=size_type, accepted=accepted)


class _BudgetSpent(Exception):
    """A fallback engine has made all the line reads it may for this image."""


class _Budget:
    """An engine that may read `calls` lines, then raises `_BudgetSpent`."""

    def __init__(self, engine: Engine, calls: int) -> None:
        self.name = engine.name
        self._engine = engine
        self._left = calls

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        if self._left <= 0:
            raise _BudgetSpent
        self._left -= 1
        return self._engine.read_line(image, whitelist)


def _read_candidates(
    gray: np.ndarray, candidates: list[Candidate], engine: Engine
) -> list[CodeRead]:
    """Read up to MAX_CANDIDATES candidates. One whose owner code the engine could not place
    marks its place as no code: candidates of the same layout mostly over it (the same
    rod's texture found by another threshold) are passed over without reading."""
    reads: list[CodeRead] = []
    unplaced: list[Candidate] = []
    attempts = 0
    for candidate in candidates:
        if attempts == MAX_CANDIDATES:
            break
        if any(_same_place(candidate, other) for other in unplaced):
            continue
        attempts += 1
        try:
            read = read_candidate(gray, candidate, engine, unplaced)
        except _BudgetSpent:
            break
        if read is not None:
            reads.append(read)
    return reads


# Candidates whose boxes overlap by this much of the smaller one are at the same place.
SAME_PLACE = 0.5


def _same_place(a: Candidate, b: Candidate) -> bool:
    if a.layout != b.layout:
        return False
    ax, ay, aw, ah = region(a.blobs)
    bx, by, bw, bh = region(b.blobs)
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    return w > 0 and h > 0 and w * h >= SAME_PLACE * min(aw * ah, bw * bh)

