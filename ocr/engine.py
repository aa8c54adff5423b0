"""Recognition engines: what reads a prepared line of characters.

The pipeline finds and rectifies the characters itself and hands an engine a clean synthetic
line (dark characters on white, one slot per character). An engine returns one `Glyph` per
character it saw, left to right, with its confidence and alternatives.

Tesseract is the default. It runs in-process through `tesserocr` when that binding is
installed, and through `pytesseract` (one `tesseract` process per call, slower) otherwise.
PP-OCR (`ocr.ppocr`) is the second engine: by default it reads again what Tesseract leaves
unreadable, where its model is installed.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

_LOGGER = logging.getLogger(__name__)

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"


@dataclass(frozen=True)
class Glyph:
    """One recognised character: its text, confidence 0..1, x range in the line image and the
    other characters the engine considered (best first, without `text`)."""

    text: str
    confidence: float
    x0: int
    x1: int
    alternatives: tuple[tuple[str, float], ...] = ()


class Engine(Protocol):
    """Reads one synthetic line image (uint8, dark text on white)."""

    name: str

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]: ...


def _tessdata_dir() -> str | None:
    """Where the installed Tesseract keeps its language data."""
    prefix = os.environ.get("TESSDATA_PREFIX")
    if prefix and Path(prefix, "eng.traineddata").is_file():
        return prefix
    for candidate in sorted(Path("/usr/share/tesseract-ocr").glob("*/tessdata"), reverse=True):
        if (candidate / "eng.traineddata").is_file():
            return str(candidate)
    exe = shutil.which("tesseract")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--list-langs"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.splitlines()[0] if out else ""
    if '"' in first:
        return first.split('"')[1]
    return None


class TesseractEngine:
    """Tesseract in single-line mode with a per-call character whitelist."""

    name = "tesseract"

    def __init__(self, prefer_inprocess: bool = True) -> None:
        self._lock = threading.Lock()
        self._api = None
        if prefer_inprocess:
            self._api = self._open_tesserocr()
        self.backend = "tesserocr" if self._api is not None else "pytesseract"

    @staticmethod
    def _open_tesserocr():  # type: ignore[no-untyped-def]
        try:
            import tesserocr
        except ImportError:
            _LOGGER.info("ocr: tesserocr not installed, using pytesseract (slower)")
            return None
        path = _tessdata_dir()
        try:
            api = tesserocr.PyTessBaseAPI(
                path=path or "", lang="eng", psm=tesserocr.PSM.SINGLE_LINE
            )
        except RuntimeError as exc:
            _LOGGER.warning("ocr: tesserocr failed to start (%s), using pytesseract", exc)
            return None
        api.SetVariable("lstm_choice_mode", "2")
        api.SetVariable("load_system_dawg", "0")
        api.SetVariable("load_freq_dawg", "0")
        return api

    def close(self) -> None:
        if self._api is not None:
            self._api.End()
            self._api = None

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        if self._api is not None:
            with self._lock:
                return self._read_tesserocr(image, whitelist)
        return self._read_pytesseract(image, whitelist)

    def _read_tesserocr(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        import tesserocr

        api = self._api
        assert api is not None
        api.SetVariable("tessedit_char_whitelist", whitelist)
        # the pixels as they are (SetImage would encode a PIL image to BMP first)
        pixels = np.ascontiguousarray(image, dtype=np.uint8)
        api.SetImageBytes(pixels.tobytes(), pixels.shape[1], pixels.shape[0], 1, pixels.shape[1])
        api.Recognize()
        glyphs = []
        iterator = api.GetIterator()
        level = tesserocr.RIL.SYMBOL
        for symbol in tesserocr.iterate_level(iterator, level):
            try:
                text = symbol.GetUTF8Text(level)
            except RuntimeError:  # the iterator of an empty page has no text
                break
            if not text:
                continue
            box = symbol.BoundingBox(level)
            confidence = max(0.0, min(1.0, symbol.Confidence(level) / 100.0))
            alternatives = []
            for choice in symbol.GetChoiceIterator():
                alt = choice.GetUTF8Text()
                if alt and alt != text and alt in whitelist:
                    alternatives.append((alt, max(0.0, min(1.0, choice.Confidence() / 100.0))))
            x0, x1 = (box[0], box[2]) if box else (0, 0)
            glyphs.append(Glyph(text, confidence, x0, x1, tuple(alternatives)))
        return glyphs

    def _read_pytesseract(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        import pytesseract

        config = f"--psm 7 -c tessedit_char_whitelist={whitelist}"
        boxes = pytesseract.image_to_boxes(image, config=config)
        data = pytesseract.image_to_data(
            image, config=config, output_type=pytesseract.Output.DICT
        )
        confidences = [float(c) for c in data["conf"] if float(c) >= 0]
        word_conf = min(confidences) / 100.0 if confidences else 0.0
        glyphs = []
        for row in boxes.splitlines():
            parts = row.split()
            if len(parts) < 5 or parts[0] not in whitelist:
                continue
            x0, x1 = int(parts[1]), int(parts[3])
            glyphs.append(Glyph(parts[0], word_conf, x0, x1))
        return glyphs


_DEFAULT: TesseractEngine | None = None
_DEFAULT_LOCK = threading.Lock()


def default_engine() -> TesseractEngine:
    """The process-wide Tesseract engine, opened on first use."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = TesseractEngine()
            _LOGGER.info("ocr: tesseract engine ready (%s)", _DEFAULT.backend)
        return _DEFAULT


class EngineUnavailable(RuntimeError):
    """The configured engine cannot run here."""


ENGINE_NAMES = ("tesseract", "ppocr")
# The engine that reads again what the first leaves unreadable, where it is installed.
DEFAULT_FALLBACK = "ppocr"

_PPOCR: Engine | None = None
_PPOCR_MISSING: str | None = None


def _ppocr_engine() -> Engine:
    """The process-wide PP-OCR engine, loaded on first use (about 45 MB)."""
    global _PPOCR, _PPOCR_MISSING
    with _DEFAULT_LOCK:
        if _PPOCR is None and _PPOCR_MISSING is None:
            from ocr.ppocr import ModelUnavailable, PPOcrEngine

            try:
                _PPOCR = PPOcrEngine()
                _LOGGER.info("ocr: PP-OCR engine ready")
            except ModelUnavailable as exc:
                _PPOCR_MISSING = str(exc)
        if _PPOCR is None:
            raise EngineUnavailable(f"OCR engine 'ppocr' is not available: {_PPOCR_MISSING}")
        return _PPOCR


def make_engine(name: str) -> Engine:
    """The engine a site configuration names (`ocr.engine`, `ocr.fallback_engine`)."""
    if name == "tesseract":
        return default_engine()
    if name == "ppocr":
        return _ppocr_engine()
    raise EngineUnavailable(
        f"OCR engine {name!r} is unknown (built in: {', '.join(ENGINE_NAMES)})"
    )


# Engines whose absence has been logged in this process (a warning once, not per picture).
_MISSING_WARNED: set[str] = set()


class _Deferred:
    """An engine opened when it first reads: a fallback costs no memory until it is needed.
    One that fails to load gives no characters (a warning, once a process)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        try:
            engine = make_engine(self.name)
        except EngineUnavailable as exc:
            if self.name not in _MISSING_WARNED:
                _MISSING_WARNED.add(self.name)
                _LOGGER.warning("ocr: %s; reading with the other engine alone", exc)
            return []
        return engine.read_line(image, whitelist)


def _installed(name: str) -> bool:
    """Whether the engine's files are here, without loading it."""
    if name != "ppocr":
        return True
    from ocr.ppocr import ModelUnavailable, model_path

    try:
        model_path()
    except ModelUnavailable as exc:
        if name not in _MISSING_WARNED:
            _MISSING_WARNED.add(name)
            _LOGGER.warning("ocr: fallback engine %s not used: %s", name, exc)
        return False
    return True


def make_engines(
    primary: str = "tesseract", fallback: str | None = DEFAULT_FALLBACK
) -> list[Engine]:
    """The engines in turn: `primary` reads every image, `fallback` (None or "none", as a site
    file says it: none) what the primary leaves unreadable. A missing primary raises
    `EngineUnavailable`; a missing fallback only logs a warning: the product reads with
    Tesseract alone."""
    engines: list[Engine] = [make_engine(primary)]
    if fallback is not None and fallback not in ("none", primary):
        if fallback not in ENGINE_NAMES:
            raise EngineUnavailable(f"OCR engine {fallback!r} is unknown")
        if _installed(fallback):
            engines.append(_Deferred(fallback))
    return engines


def default_engines() -> list[Engine]:
    """Tesseract, then PP-OCR where Tesseract leaves an image unreadable."""
    return make_engines()
