"""Turn what a caller hands the reader (path, bytes, array) into one 8-bit grayscale image.

Every problem becomes an `ImageError` with a message a clerk or an operator can act on.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

MAX_PIXELS = 40_000_000  # a 1080p camera gives 2 Mpx; anything near this is not a gate photo
MAX_BYTES = 50 * 1024 * 1024
MIN_SIDE = 32
WORK_WIDTH = 1920  # larger images are scaled down to this width


class ImageError(ValueError):
    """The input is not a usable image."""


ImageInput = str | Path | bytes | bytearray | memoryview | np.ndarray


def describe(image: object) -> str:
    """A short name for the input, for the `image` field of a read."""
    if isinstance(image, str | Path):
        return str(image)
    if isinstance(image, bytes | bytearray | memoryview):
        return f"<{len(image)} bytes>"
    if isinstance(image, np.ndarray):
        return f"<array {'x'.join(str(d) for d in image.shape)} {image.dtype}>"
    return f"<{type(image).__name__}>"


def load_gray(image: ImageInput) -> tuple[np.ndarray, float]:
    """8-bit grayscale at most WORK_WIDTH wide, and the factor that maps its coordinates back
    to the original image. Raises ImageError."""
    if isinstance(image, str | Path):
        array = _decode(_read_file(Path(image)))
    elif isinstance(image, bytes | bytearray | memoryview):
        array = _decode(bytes(image))
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise ImageError(f"unsupported input type {type(image).__name__}")
    return _to_gray8(array)


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise ImageError("empty file")
    if size > MAX_BYTES:
        raise ImageError(f"file too large ({size} bytes)")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _decode(raw: bytes) -> np.ndarray:
    if not raw:
        raise ImageError("empty image data")
    if len(raw) > MAX_BYTES:
        raise ImageError(f"image data too large ({len(raw)} bytes)")
    _check_header(raw)
    buffer = np.frombuffer(raw, dtype=np.uint8)
    array = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if array is None:
        raise ImageError("not a decodable image (corrupt, truncated or unknown format)")
    return array


def _check_header(raw: bytes) -> None:
    """Refuse a huge image from its header, before decoding allocates it."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about large images; this check gives its own clear error instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as header:
                width, height = header.size
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large ({exc})") from exc
    except (OSError, ValueError):
        return  # unknown to Pillow: OpenCV decides below, its own pixel limit applies
    if width * height > MAX_PIXELS:
        raise ImageError(f"image too large ({width}x{height})")


def _to_gray8(array: np.ndarray) -> tuple[np.ndarray, float]:
    if array.ndim not in (2, 3) or array.size == 0:
        raise ImageError(f"not an image array (shape {array.shape})")
    height, width = array.shape[:2]
    if height < MIN_SIDE or width < MIN_SIDE:
        raise ImageError(f"image too small ({width}x{height})")
    if height * width > MAX_PIXELS:
        raise ImageError(f"image too large ({width}x{height})")
    if array.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise ImageError(f"unsupported pixel type {array.dtype}")
    if array.ndim == 3:
        channels = array.shape[2]
        if channels == 1:
            array = array[:, :, 0]
        elif channels == 3:
            array = cv2.cvtColor(array, cv2.COLOR_BGR2GRAY)
        elif channels == 4:
            array = cv2.cvtColor(array, cv2.COLOR_BGRA2GRAY)
        else:
            raise ImageError(f"unsupported channel count {channels}")
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype in (np.float32, np.float64):
        finite = np.nan_to_num(array.astype(np.float64))
        peak = float(finite.max()) if finite.size else 0.0
        scale = 255.0 if peak <= 1.0 else 1.0
        array = np.clip(finite * scale, 0, 255).astype(np.uint8)
    if width > WORK_WIDTH:
        scale = WORK_WIDTH / width
        array = cv2.resize(array, (WORK_WIDTH, round(height * scale)), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(array), 1.0 / scale
    return np.ascontiguousarray(array), 1.0
