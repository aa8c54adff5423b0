"""Container number OCR: reads ISO 6346 codes on gate-camera images and fuses a visit's reads.

Public entry points: `read_image`, `fuse`, the `Engine` interface and `iso6346` helpers.
"""

from ocr.engine import (
    Engine,
    EngineUnavailable,
    Glyph,
    TesseractEngine,
    default_engine,
    make_engine,
)
from ocr.fusion import VisitRead, fuse, read_visit
from ocr.iso6346 import is_valid_container_number, parse_size_type
from ocr.reader import read_image

__all__ = [
    "Engine",
    "EngineUnavailable",
    "Glyph",
    "TesseractEngine",
    "VisitRead",
    "default_engine",
    "fuse",
    "is_valid_container_number",
    "make_engine",
    "parse_size_type",
    "read_image",
    "read_visit",
]
