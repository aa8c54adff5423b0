"""A second recognition engine: the PP-OCRv4 text recogniser, run by OpenCV's DNN module.

The model is the one shipped inside the `rapidocr-onnxruntime` wheel (Apache-2.0 weights of
the PaddleOCR project). Only its model file is used: OpenCV, which the reader loads anyway,
runs it, so neither onnxruntime nor RapidOCR's own code is imported. The Makefile installs
the wheel without its dependencies.

The recogniser reads a whole line and gives, for each of its time steps, a probability for
every character it knows (CTC). A whitelist is applied by keeping only the whitelisted
characters and the blank and renormalising; a character's confidence is its probability at
its strongest step, its alternatives the other whitelisted characters at that step.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from ocr.engine import Glyph

_LOGGER = logging.getLogger(__name__)

MODEL_PACKAGE = "rapidocr_onnxruntime"
MODEL_FILE = "models/ch_PP-OCRv4_rec_infer.onnx"
# The recogniser's input: 48 rows, values scaled to -1..1, width a multiple of its stride.
INPUT_HEIGHT = 48
STRIDE = 8
MIN_WIDTH = 64
# Alternatives below this probability are not reported.
MIN_REPORTED = 0.01


class ModelUnavailable(RuntimeError):
    """The PP-OCR model file is not installed or cannot be loaded."""


def model_path() -> Path:
    """Where the installed wheel keeps the recognition model (the package is not imported)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the PP-OCR model is not installed (pip install --no-deps {MODEL_PACKAGE})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise ModelUnavailable(f"the PP-OCR model is missing: {path}")
    return path


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """The top-level fields of a protobuf message: (number, wire type, value)."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, wire, value))
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            out.append((number, wire, data[pos : pos + length]))
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


# ONNX ModelProto: field 14 holds metadata_props, entries with key (1) and value (2).
_METADATA_PROPS = 14


def character_list(model: bytes) -> list[str]:
    """The recogniser's characters, in class order after the blank, from the model's
    `character` metadata."""
    for number, wire, value in _fields(model):
        if number != _METADATA_PROPS or wire != 2 or not isinstance(value, bytes):
            continue
        entry = {n: v for n, w, v in _fields(value) if w == 2}
        if entry.get(1) == b"character" and isinstance(entry.get(2), bytes):
            return entry[2].decode("utf-8").splitlines()  # type: ignore[union-attr]
    raise ModelUnavailable("the PP-OCR model carries no character list")


class PPOcrEngine:
    """PP-OCRv4 recognition of one line, with a per-call whitelist."""

    name = "ppocr"

    def __init__(self, path: Path | None = None) -> None:
        path = path or model_path()
        try:
            characters = character_list(path.read_bytes())
            # from the file, not from the bytes above: OpenCV parsing a copy held here
            # raised the process's peak memory by another 20 MB
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except (OSError, ValueError, cv2.error) as exc:
            raise ModelUnavailable(f"cannot load the PP-OCR model {path}: {exc}") from exc
        _release_free_heap()
        # class 0 is the CTC blank, then the characters in order, then a space
        self._index = {char: i + 1 for i, char in enumerate(characters)}
        self._lock = threading.Lock()

    def _classes(self, whitelist: str) -> list[int]:
        missing = [c for c in whitelist if c not in self._index]
        if missing:
            raise ValueError(f"the PP-OCR model cannot read {''.join(missing)!r}")
        return [0] + [self._index[c] for c in whitelist]

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        classes = self._classes(whitelist)
        height, width = image.shape[:2]
        if height == 0 or width == 0:
            return []
        scale = INPUT_HEIGHT / height
        resized_width = max(1, round(width * scale))
        padded = max(MIN_WIDTH, -(-resized_width // STRIDE) * STRIDE)
        resized = cv2.resize(image, (resized_width, INPUT_HEIGHT), interpolation=cv2.INTER_AREA)
        plane = np.zeros((INPUT_HEIGHT, padded), np.float32)
        plane[:, :resized_width] = resized.astype(np.float32) / 127.5 - 1.0
        blob = np.ascontiguousarray(np.broadcast_to(plane, (1, 3, INPUT_HEIGHT, padded)))
        with self._lock:
            self._net.setInput(blob)
            output = self._net.forward()
        steps = np.asarray(output, np.float32).reshape(output.shape[-2], output.shape[-1])
        kept = steps[:, classes]
        probabilities = kept / np.maximum(kept.sum(axis=1, keepdims=True), 1e-9)
        pixels_per_step = padded / probabilities.shape[0] / scale
        return _decode(probabilities, whitelist, pixels_per_step)


def _release_free_heap() -> None:
    """Give the heap that parsing the model used and freed back to the system (glibc keeps it
    otherwise: about 10 MB of the worker's resident memory)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def _decode(probabilities: np.ndarray, whitelist: str, pixels_per_step: float) -> list[Glyph]:
    """Greedy CTC decoding: runs of one class between blanks make a character."""
    best = probabilities.argmax(axis=1)
    glyphs = []
    step = 0
    steps = len(best)
    while step < steps:
        cls = int(best[step])
        if cls == 0:
            step += 1
            continue
        start = step
        while step < steps and best[step] == cls:
            step += 1
        run = probabilities[start:step, cls]
        peak = start + int(run.argmax())
        row = probabilities[peak]
        alternatives = tuple(
            (whitelist[j - 1], float(row[j]))
            for j in np.argsort(-row)[:4]
            if j not in (0, cls) and row[j] >= MIN_REPORTED
        )
        glyphs.append(
            Glyph(
                whitelist[cls - 1], float(run.max()),
                round(start * pixels_per_step), round(step * pixels_per_step), alternatives,
            )
        )
    return glyphs
