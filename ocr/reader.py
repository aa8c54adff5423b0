"""Read the container number of one gate-camera image.

Steps: load the image (`imageio`); find character-sized blobs and group them into lines and
columns (`candidates`); assemble 11-blob candidates in the three layouts (`layouts`); read
each, let the check digit decide and score it (`recognise`); keep the best, look at it once
more, and withhold it below the confidence threshold.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np

from gated.domain import ContainerRead
from ocr.candidates import find_groups
from ocr.engine import Engine, default_engine
from ocr.imageio import ImageError, ImageInput, describe, load_gray
from ocr.layouts import Candidate, assemble, region
from ocr.recognise import CodeRead, choose, find_size_type, read_candidate, verify

_LOGGER = logging.getLogger(__name__)

MAX_CANDIDATES = 12
DEFAULT_MIN_CONFIDENCE = 0.6
# Blob search resolutions (frame height), tried in turn until a read is accepted: the reduced
# one is fast, the full one finds what the reduction merged or lost.
SEARCH_HEIGHTS = (720, 1080)


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
    engine: Engine,
    started: float,
    min_confidence: float,
) -> ContainerRead:
    reads: list[CodeRead] = []
    best = None
    for search_height in SEARCH_HEIGHTS:
        lines, columns = find_groups(gray, search_height)
        reads.extend(_read_candidates(gray, assemble(lines, columns), engine))
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
        read = read_candidate(gray, candidate, engine, unplaced)
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

