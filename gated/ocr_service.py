"""The lanes' OCR port as the daemon's OCR worker processes run it.

Apart from `gated.daemon` on purpose: a worker unpickles `OcrService`, so it imports this
module, `ocr` and the domain types only, not the daemon's database, web and device stacks
(about 30 MB less in each worker process).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gated.domain import ContainerRead, FusedContainer

if TYPE_CHECKING:
    from gated.config import SiteConfig

_LOGGER = logging.getLogger(__name__)


class OcrService:
    """The OCR port of the lanes. Picklable: `read` runs in the OCR worker processes, which
    keeps image work off the event loop's interpreter lock."""

    def __init__(self, config: SiteConfig) -> None:
        self._min_confidence = config.ocr.min_confidence
        self._engine = config.ocr.engine
        self._fallback = config.ocr.fallback_engine

    def read(self, path: str, camera: str | None) -> ContainerRead:
        """One image's best reading, however doubtful: doubtful reads still vote in `fuse`;
        the lane shows and stores a number per image only at the site's threshold."""
        import ocr

        engines = ocr.make_engines(self._engine, self._fallback)
        return ocr.read_image(path, camera, engine=engines, min_confidence=0.0)

    def fuse(self, reads: Sequence[ContainerRead]) -> list[FusedContainer]:
        """Two cameras agreeing on one valid number by chance is far less likely than either
        being right: reads from the hypothesis floor up vote, and the lane's decision accepts
        a container only at the site's threshold."""
        import ocr
        from ocr.fusion import HYPOTHESIS_FLOOR

        return list(ocr.fuse(list(reads), floor=HYPOTHESIS_FLOOR))


def start_ocr_worker() -> None:
    """A worker process's initialiser: one OpenCV thread, then load the OCR engine.

    The daemon runs one worker process per core; OpenCV's own thread pool inside each would
    only contend for the same cores, and every extra thread keeps a malloc arena of its own
    (15 MB more peak memory a worker, measured on 1080p pictures).
    """
    try:
        import cv2

        cv2.setNumThreads(1)
        warm_up_ocr()
    except Exception:
        # an initialiser that raises breaks the whole pool; a worker that cannot warm up
        # still answers each picture with its own error, which the lane shows the clerk
        _LOGGER.exception("OCR worker %d: warm-up failed", os.getpid())


def warm_up_ocr() -> None:
    """Load the OCR modules and the engine in a worker before the first truck needs them."""
    import numpy

    import ocr

    ocr.read_image(numpy.zeros((64, 64), dtype=numpy.uint8))
