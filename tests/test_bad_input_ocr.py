"""Images as a broken camera or a hostile file system hands them over: a clear error per image
or an honest "unreadable", never a crash and never a container number out of noise."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocr import imageio, read_image


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def _noise(height: int, width: int, channels: int | None = 3) -> np.ndarray:
    rng = np.random.default_rng(7)
    shape = (height, width) if channels is None else (height, width, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad-images")
    files: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        files[name] = folder / name
        files[name].write_bytes(data)

    ok, jpeg = cv2.imencode(".jpg", _noise(240, 320))
    assert ok
    put("empty.jpg", b"")
    put("text.jpg", b"this is not a picture\n" * 10)
    put("random.png", np.random.default_rng(1).bytes(4096))
    put("truncated.jpg", jpeg.tobytes()[: len(jpeg) // 3])
    put("header-only.jpg", jpeg.tobytes()[:20])
    put("zero.png", _png_header_only(0, 0))
    put("html.jpg", b"<html><body>502 Bad Gateway</body></html>")
    files["missing.jpg"] = folder / "missing.jpg"
    files["directory.jpg"] = folder / "directory.jpg"
    files["directory.jpg"].mkdir()
    return files


@pytest.fixture(scope="module")
def odd_but_valid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Decodable images of unusual kinds: read (as unreadable noise), not refused."""
    folder = tmp_path_factory.mktemp("odd-images")
    rng = np.random.default_rng(3)
    images = {
        "gray.png": _noise(240, 320, None),
        "gray16.png": rng.integers(0, 65536, size=(240, 320), dtype=np.uint16),
        "color16.png": rng.integers(0, 65536, size=(240, 320, 3), dtype=np.uint16),
        "rgba.png": _noise(240, 320, 4),
        "black.png": np.zeros((240, 320, 3), np.uint8),
        "white.jpg": np.full((240, 320, 3), 255, np.uint8),
    }
    files = {}
    for name, array in images.items():
        files[name] = folder / name
        assert cv2.imwrite(str(files[name]), array)
    return files


@pytest.mark.parametrize(
    "name",
    ["empty.jpg", "text.jpg", "random.png", "truncated.jpg", "header-only.jpg", "zero.png",
     "html.jpg", "missing.jpg", "directory.jpg"],
)
def test_bad_file_gives_an_error_not_a_number(bad_files: dict[str, Path], name: str) -> None:
    read = read_image(bad_files[name])
    assert read.error, f"{name}: no error reported"
    assert read.container_number is None
    assert read.confidence == 0.0


def test_odd_images_are_read_without_error_or_invention(odd_but_valid: dict[str, Path]) -> None:
    for name, path in odd_but_valid.items():
        read = read_image(path)
        assert read.error is None, f"{name}: {read.error}"
        assert read.container_number is None, f"{name}: a number read from noise"


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((0,), np.uint8),
        np.zeros((4, 4, 4, 4), np.uint8),
        np.zeros((100, 100, 7), np.uint8),
        np.zeros((100, 100), np.complex64),
        np.zeros((100, 100), np.bool_),
        np.zeros((3, 5000), np.uint8),
        np.zeros((7000, 7000), np.uint8),
    ],
    ids=["0x0", "1-d", "4-d", "7-channels", "complex", "bool", "sliver", "49-megapixel"],
)
def test_bad_arrays_give_an_error(array: np.ndarray) -> None:
    read = read_image(array)
    assert read.error, "no error for an unusable array"
    assert read.container_number is None


def test_float_image_with_nan_and_inf_is_not_a_crash() -> None:
    array = np.random.default_rng(5).random((120, 160), dtype=np.float32)
    array[10:20, 10:20] = np.nan
    array[30:40, 30:40] = np.inf
    read = read_image(array)
    assert read.container_number is None
    assert read.error is None or "image" in read.error


@pytest.mark.parametrize(
    "data", [b"", b"\x00", b"\xff\xd8\xff", bytearray(b"GIF89a"), memoryview(b"BM" + b"\0" * 60)]
)
def test_bad_bytes_give_an_error(data: bytes | bytearray | memoryview) -> None:
    read = read_image(data)
    assert read.error
    assert read.container_number is None


def test_unsupported_input_type_is_an_error() -> None:
    read = read_image(12345)  # type: ignore[arg-type]
    assert read.error and "unsupported" in read.error


def test_cli_one_line_per_image_and_keeps_going(
    bad_files: dict[str, Path], odd_but_valid: dict[str, Path]
) -> None:
    paths = [*bad_files.values(), *odd_but_valid.values()]
    done = subprocess.run(
        [sys.executable, "-m", "gated.cli", "ocr", "--json", *map(str, paths)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert "Traceback" not in done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [line["image"] for line in lines] == [str(p) for p in paths]
    for line in lines:
        assert set(line) >= {"image", "container_number", "size_type", "confidence",
                             "elapsed_ms", "error"}
        assert line["container_number"] is None
    errors = {Path(line["image"]).name for line in lines if line["error"]}
    assert errors == set(bad_files)
    assert done.returncode == 0  # some images were usable


def test_cli_all_bad_exits_non_zero_and_visit_is_empty(bad_files: dict[str, Path]) -> None:
    paths = [str(p) for p in bad_files.values()]
    visit = subprocess.run(
        [sys.executable, "-m", "gated.cli", "ocr", "--visit", "--json", *paths],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert visit.returncode != 0 and "Traceback" not in visit.stderr
    answer = json.loads(visit.stdout)
    assert answer["containers"] == []
    assert all(image["error"] for image in answer["images"])


def test_header_claiming_a_huge_image_is_refused_before_decoding() -> None:
    """60000 x 60000 is beyond every decoder limit: refused from the header alone."""
    read = read_image(_png_header_only(60000, 60000))
    assert read.error
    assert read.container_number is None


def test_decompression_bomb_is_refused_from_its_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """16000 x 16000 (a 0.8 MB PNG) is beyond Pillow's own bomb limit; it was once decoded
    (1.6 GB, 11 s) before the size check: refused from the header, never decoded."""
    decoded: list[int] = []

    def imdecode(buffer: np.ndarray, flags: int) -> None:
        decoded.append(len(buffer))
        return None

    monkeypatch.setattr(imageio.cv2, "imdecode", imdecode)
    with pytest.raises(imageio.ImageError, match="too large"):
        imageio.load_gray(_png_header_only(16000, 16000))
    assert decoded == [], "the bomb reached the decoder"
