"""Container number OCR: reads ISO 6346 codes on gate-camera images and fuses a visit's reads.

Public entry points: `read_image`, `fuse`, the `Engine` interface and `iso6346` helpers.

The names are loaded on first use: the daemon's own process only fuses reads (`ocr.fusion`),
and importing the package must not load OpenCV, numpy and Tesseract there (40 MB); the OCR
worker processes load them when they read their first image.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ocr.engine import (
        Engine,
        EngineUnavailable,
        Glyph,
        TesseractEngine,
        default_engine,
        default_engines,
        make_engine,
        make_engines,
    )
    from ocr.fusion import VisitRead, fuse, read_visit
    from ocr.iso6346 import is_valid_container_number, parse_size_type
    from ocr.reader import read_image

_HOME = {
    "Engine": "ocr.engine",
    "EngineUnavailable": "ocr.engine",
    "Glyph": "ocr.engine",
    "TesseractEngine": "ocr.engine",
    "default_engine": "ocr.engine",
    "make_engine": "ocr.engine",
    "default_engines": "ocr.engine",
    "make_engines": "ocr.engine",
    "VisitRead": "ocr.fusion",
    "fuse": "ocr.fusion",
    "read_visit": "ocr.fusion",
    "is_valid_container_number": "ocr.iso6346",
    "parse_size_type": "ocr.iso6346",
    "read_image": "ocr.reader",
}

__all__ = [
    "Engine",
    "EngineUnavailable",
    "Glyph",
    "TesseractEngine",
    "VisitRead",
    "default_engine",
    "default_engines",
    "fuse",
    "is_valid_container_number",
    "make_engine",
    "make_engines",
    "parse_size_type",
    "read_image",
    "read_visit",
]


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'ocr' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
