"""Character images for the recognition engine: binarised crops of blobs, pasted into lines.

The check digit is often painted inside a box. A box is found by the hole it encloses; the
digit inside is cut out either as a separate component or, when it touches the box, by its
thicker strokes.
"""

from __future__ import annotations

import cv2
import numpy as np

from ocr.candidates import Blob

SLOT_HEIGHT = 40
SLOT_GAP = 6
BORDER = 16
MIN_SLOT_WIDTH = 0.45  # of SLOT_HEIGHT
BOLD_SHIFT = 0.33


def _pad(blob: Blob) -> int:
    return max(2, round(0.08 * blob.h))


def _blob_binary(gray: np.ndarray, blob: Blob, bold: bool = False) -> np.ndarray:
    pad = _pad(blob)
    return binarise(
        gray, blob.x - pad, blob.y - pad, blob.right + pad, blob.bottom + pad, blob.polarity,
        bold,
    )


def glyph_image(gray: np.ndarray, blob: Blob, bold: bool = False) -> np.ndarray:
    """One character, dark on white, SLOT_HEIGHT tall."""
    pad = _pad(blob)
    return _to_slot(_tight(_drop_strays(_blob_binary(gray, blob, bold), pad), pad))


def _tight(binary: np.ndarray, margin: int) -> np.ndarray:
    """Crop to the ink plus a margin, so every character fills its slot the same way (the
    blob's box comes from a reduced-resolution search and is only roughly placed)."""
    ys, xs = np.nonzero(binary == 0)
    if ys.size == 0:
        return binary
    height, width = binary.shape
    y0, y1 = max(0, ys.min() - margin), min(height, ys.max() + 1 + margin)
    x0, x1 = max(0, xs.min() - margin), min(width, xs.max() + 1 + margin)
    return binary[y0:y1, x0:x1]


def _drop_strays(binary: np.ndarray, pad: int) -> np.ndarray:
    """Erase ink that lies mostly in the margin around the blob: pieces of a neighbour, a
    frame or a corrugation edge, not of this character."""
    ink = (binary == 0).astype(np.uint8)
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(ink, connectivity=8)
    height, width = binary.shape
    cleaned = binary
    for index in range(1, count):
        cx, cy = centroids[index]
        inside = pad <= cx < width - pad and pad <= cy < height - pad
        if not inside:
            if cleaned is binary:
                cleaned = binary.copy()
            cleaned[labels == index] = 255
    return cleaned


def unboxed_glyph_image(gray: np.ndarray, blob: Blob) -> np.ndarray | None:
    """The digit as if cut out of a frame around it, SLOT_HEIGHT tall; None when nothing
    digit-like is left. Frames are not reliably told from digits (a digit touching its frame
    splits the hole), so this is an extra opinion for the check digit, not a decision."""
    binary = _blob_binary(gray, blob)
    inner = _unbox(binary, _pad(blob))
    return None if inner is None else _to_slot(inner)


def _to_slot(binary: np.ndarray) -> np.ndarray:
    """Scale to SLOT_HEIGHT; a narrow character (1, I) gets white space to a minimum width so
    the engine does not merge it with a neighbour."""
    scale = SLOT_HEIGHT / float(binary.shape[0])
    width = max(4, round(binary.shape[1] * scale))
    resized = cv2.resize(binary, (width, SLOT_HEIGHT), interpolation=cv2.INTER_AREA)
    _thr, resized = cv2.threshold(resized, 127, 255, cv2.THRESH_BINARY)
    min_width = round(MIN_SLOT_WIDTH * SLOT_HEIGHT)
    if width < min_width:
        left = (min_width - width) // 2
        resized = cv2.copyMakeBorder(
            resized, 0, 0, left, min_width - width - left, cv2.BORDER_CONSTANT, value=255
        )
    return resized


def binarise(
    gray: np.ndarray, x0: int, y0: int, x1: int, y1: int, polarity: int, bold: bool = False
) -> np.ndarray:
    """Otsu threshold of a crop, ink black (0) on white (255). `bold` moves the threshold a
    third of the way towards the background, which mends worn or thin strokes: a second
    opinion for the engine."""
    y0, y1 = max(0, y0), min(gray.shape[0], y1)
    x0, x1 = max(0, x0), min(gray.shape[1], x1)
    crop = gray[y0:y1, x0:x1]
    if polarity == 1:
        crop = 255 - crop
    threshold, binary = cv2.threshold(crop, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if bold:
        background = crop[crop > threshold]
        if background.size:
            level = threshold + BOLD_SHIFT * (float(background.mean()) - threshold)
            _level, binary = cv2.threshold(crop, level, 255, cv2.THRESH_BINARY)
    return binary


def _unbox(binary: np.ndarray, pad: int) -> np.ndarray | None:
    """The digit inside a frame, cropped to itself. A digit apart from its frame is kept as it
    is; one that touches it is separated by its thicker strokes (an opening that the thin
    frame lines do not survive). None when no digit is found."""
    ink = (binary == 0).astype(np.uint8)
    height, width = ink.shape
    min_h = 0.4 * (height - 2 * pad)
    count, labels, stats, _centroids = cv2.connectedComponentsWithStats(ink, connectivity=8)
    frames = [
        i for i in range(1, count)
        if stats[i][2] >= 0.8 * (width - 2 * pad) and stats[i][3] >= 0.8 * (height - 2 * pad)
    ]
    inside = [i for i in range(1, count) if i not in frames and stats[i][3] >= min_h]
    if frames and inside:
        digit = np.isin(labels, inside)
    else:
        dist = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
        core_radius = 0.55 * float(dist.max())
        if core_radius < 1.0:
            return None
        size = 2 * round(core_radius) + 1
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        core = cv2.dilate((dist >= core_radius).astype(np.uint8), kernel) & ink
        count, labels, stats, _centroids = cv2.connectedComponentsWithStats(core, connectivity=8)
        inside = [i for i in range(1, count) if stats[i][3] >= min_h]
        if not inside:
            return None
        digit = np.isin(labels, inside)
    ys, xs = np.nonzero(digit)
    y0, y1 = max(0, ys.min() - pad), min(height, ys.max() + 1 + pad)
    x0, x1 = max(0, xs.min() - pad), min(width, xs.max() + 1 + pad)
    cleaned = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    cleaned[digit[y0:y1, x0:x1]] = 0
    return cleaned


def render(
    gray: np.ndarray, blobs: tuple[Blob, ...], bold: bool = False, stretch: float = 1.0
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Paste the characters side by side on a white line; return it and each slot's x range."""
    return paste([glyph_image(gray, b, bold) for b in blobs], stretch)


# Container stencils' digits are about this wide for their height; see `stretch_of`.
DIGIT_ASPECT = 0.6
# Corrections smaller than this (either way) are left alone; larger ones are capped.
MIN_STRETCH, MAX_STRETCH = 0.87, 1.15
STRETCH_LIMITS = (0.6, 1.7)


def stretch_of(serial: tuple[Blob, ...]) -> float:
    """The horizontal scale that gives the serial's digits their usual width: a view from
    the side narrows or widens every character of a code alike, and the engine reads
    characters of their usual proportions best. 1.0 when the digits look usual already."""
    if not serial:
        return 1.0
    aspect = float(np.median([b.w / b.h for b in serial]))
    factor = DIGIT_ASPECT / max(aspect, 0.05)
    if MIN_STRETCH <= factor <= MAX_STRETCH:
        return 1.0
    return float(np.clip(factor, *STRETCH_LIMITS))


def paste(
    glyphs: list[np.ndarray], stretch: float = 1.0
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Glyph images side by side on a white line, and each slot's x range; each glyph's
    width is scaled by `stretch` (its slot's minimum width kept)."""
    if stretch != 1.0:
        glyphs = [_stretched(g, stretch) for g in glyphs]
    width = 2 * BORDER + sum(g.shape[1] for g in glyphs) + SLOT_GAP * (len(glyphs) - 1)
    line = np.full((SLOT_HEIGHT + 2 * BORDER, width), 255, np.uint8)
    slots = []
    x = BORDER
    for glyph in glyphs:
        line[BORDER : BORDER + SLOT_HEIGHT, x : x + glyph.shape[1]] = glyph
        slots.append((x, x + glyph.shape[1]))
        x += glyph.shape[1] + SLOT_GAP
    return line, slots


def _stretched(glyph: np.ndarray, factor: float) -> np.ndarray:
    ink = np.nonzero((glyph == 0).any(axis=0))[0]
    if ink.size == 0:
        return glyph
    core = glyph[:, ink.min() : ink.max() + 1]
    width = max(2, round(core.shape[1] * factor))
    resized = cv2.resize(core, (width, glyph.shape[0]), interpolation=cv2.INTER_AREA)
    _thr, resized = cv2.threshold(resized, 127, 255, cv2.THRESH_BINARY)
    margin = max(2, round(0.08 * glyph.shape[0]))
    min_width = round(MIN_SLOT_WIDTH * SLOT_HEIGHT)
    left = max(margin, (min_width - width) // 2)
    right = max(margin, min_width - width - left)
    return cv2.copyMakeBorder(resized, 0, 0, left, right, cv2.BORDER_CONSTANT, value=255)

