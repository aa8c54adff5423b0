"""The lanes' OCR port as the daemon's OCR worker processes run it.

Apart from `gated.daemon` on purpose: a worker unpickles `OcrService`, so it imports this
module, `ocr` and the domain types only, not the daemon's database, web and device stacks
(about 30 MB less in each worker process).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gated.domain import ContainerRead, FusedContainer

if TYPE_CHECKING:
    from gated.config import SiteConfig


class OcrService:
    """The OCR port of the lanes. Picklable: `read` runs in the OCR worker processes, which
    keeps image work off the event loop's interpreter lock."""

    def __init__(self, config: SiteConfig) -> None:
        self._min_confidence = config.ocr.min_confidence

    def read(self, path: str, camera: str | None) -> ContainerRead:
        import ocr

        return ocr.read_image(path, camera, min_confidence=self._min_confidence)

    def fuse(self, reads: Sequence[ContainerRead]) -> list[FusedContainer]:
        import ocr

        return list(ocr.fuse(list(reads)))


def warm_up_ocr() -> None:
    """Load the OCR modules and the engine in a worker before the first truck needs them."""
    import numpy

    import ocr

    ocr.read_image(numpy.zeros((64, 64), dtype=numpy.uint8))
