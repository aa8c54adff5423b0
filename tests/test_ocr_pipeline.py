"""The reading pipeline end to end: synthetic codes, bad input, the CLI, and the shared photos."""

from __future__ import annotations

import csv
import json
import struct
import zlib
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from gated.cli import main as gated_main
from gated.domain import ContainerRead
from ocr import (
    EngineUnavailable,
    Glyph,
    TesseractEngine,
    fuse,
    make_engine,
    read_image,
    read_visit,
)
from ocr.fusion import HYPOTHESIS_FLOOR
from ocr.reader import DEFAULT_MIN_CONFIDENCE

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def _painted(text: str, vertical: bool, background: int, paint: int) -> np.ndarray:
    """A 1080p frame with a container code painted on it, as a camera would see a clean one."""
    if not FONT.is_file():
        pytest.skip("DejaVu font (fonts-dejavu-core) is not installed")
    font = ImageFont.truetype(str(FONT), 56)
    image = Image.new("L", (1920, 1080), background)
    draw = ImageDraw.Draw(image)
    if vertical:
        for index, char in enumerate(text.replace(" ", "")):
            draw.text((900, 120 + 68 * index), char, fill=paint, font=font)
    else:
        draw.text((500, 450), text, fill=paint, font=font)
    return np.array(image)


@pytest.mark.parametrize("vertical", [False, True], ids=["one-line", "vertical"])
@pytest.mark.parametrize(("background", "paint"), [(60, 230), (220, 30)], ids=["light", "dark"])
def test_reads_a_painted_code(vertical: bool, background: int, paint: int) -> None:
    read = read_image(_painted("CSQU 305438 3", vertical, background, paint), camera="AH")
    assert read.error is None
    assert read.container_number == "CSQU3054383"
    assert read.camera == "AH"
    assert read.layout == ("vertical" if vertical else "horizontal")
    assert read.confidence >= 0.6
    assert read.region is not None
    x, y, w, h = read.region
    assert (880 if vertical else 480) <= x <= (920 if vertical else 520)


def test_a_code_with_a_wrong_check_digit_is_not_read() -> None:
    read = read_image(_painted("CSQU 305438 7", False, 60, 230))
    assert read.container_number is None
    assert read.error is None


def test_a_blank_frame_is_unreadable_not_an_error() -> None:
    read = read_image(np.full((1080, 1920), 128, np.uint8))
    assert read.container_number is None
    assert read.error is None
    assert read.confidence == 0.0


class _BlindEngine:
    """An engine that never sees a character."""

    name = "blind"

    def __init__(self) -> None:
        self.calls = 0

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        self.calls += 1
        return []


def test_the_engine_is_pluggable() -> None:
    engine = _BlindEngine()
    read = read_image(_painted("CSQU 305438 3", False, 60, 230), engine=engine)
    assert engine.calls > 0
    assert read.container_number is None and read.error is None


def test_pytesseract_fallback_reads_too() -> None:
    engine = TesseractEngine(prefer_inprocess=False)
    assert engine.backend == "pytesseract"
    read = read_image(_painted("CSQU 305438 3", False, 60, 230), engine=engine)
    assert read.container_number == "CSQU3054383"


def test_make_engine() -> None:
    assert make_engine("tesseract").name == "tesseract"
    with pytest.raises(EngineUnavailable):
        make_engine("rapidocr")


def _jpeg(array: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", array)
    assert ok
    return encoded.tobytes()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height in its header, with almost no pixel data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: b"", "empty"),
        (lambda tmp: _jpeg(np.full((200, 300), 90, np.uint8))[:300], "decodable"),
        (lambda tmp: b"this is not an image at all", "decodable"),
        (lambda tmp: np.zeros((0, 0), np.uint8), "not an image array"),
        (lambda tmp: np.zeros((10, 10), np.uint8), "too small"),
        (lambda tmp: _png_header_only(8000, 6000), "too large"),
        (lambda tmp: _png_header_only(16000, 16000), "too large"),  # beyond Pillow's own limit
        (lambda tmp: np.zeros((100, 100, 3), np.int32), "pixel type"),
        (lambda tmp: np.zeros((100, 100, 5), np.uint8), "channel"),
        (lambda tmp: tmp / "missing.jpg", "cannot read"),
        (lambda tmp: (tmp / "empty.jpg", (tmp / "empty.jpg").write_bytes(b""))[0], "empty"),
        (lambda tmp: 42, "unsupported input"),
    ],
    ids=[
        "empty-bytes", "truncated-jpeg", "text", "0x0", "tiny", "huge", "bomb", "int32",
        "5-channels",
        "missing-file", "empty-file", "wrong-type",
    ],
)
def test_bad_input_gives_a_clear_error(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    read = read_image(make(tmp_path), camera="LB")
    assert isinstance(read, ContainerRead)
    assert read.container_number is None
    assert read.error is not None and message in read.error
    assert read.camera == "LB"


@pytest.mark.parametrize(
    "image",
    [
        np.full((1080, 1920), 30000, np.uint16),
        np.full((1080, 1920, 4), 200, np.uint8),
        np.full((1080, 1920, 1), 200, np.uint8),
        np.full((1080, 1920), 0.5, np.float32),
        np.full((2160, 3840, 3), 100, np.uint8),
    ],
    ids=["16-bit", "bgra", "one-channel", "float", "4k"],
)
def test_unusual_but_valid_images_are_read_without_error(image: np.ndarray) -> None:
    read = read_image(image)
    assert read.error is None
    assert read.container_number is None


def test_a_4k_frame_reports_the_region_in_its_own_pixels() -> None:
    frame = _painted("CSQU 305438 3", False, 60, 230)
    big = cv2.resize(frame, (3840, 2160), interpolation=cv2.INTER_CUBIC)
    read = read_image(big)
    assert read.container_number == "CSQU3054383"
    assert read.region is not None
    assert 960 <= read.region[0] <= 1040


def test_cli_json_one_object_per_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), _painted("CSQU 305438 3", True, 60, 230))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    assert gated_main(["ocr", "--json", str(good), str(bad)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["image"] for row in lines] == [str(good), str(bad)]
    assert lines[0]["container_number"] == "CSQU3054383"
    assert lines[0]["error"] is None
    assert 0.0 <= lines[0]["confidence"] <= 1.0
    assert isinstance(lines[0]["elapsed_ms"], float)
    assert "size_type" in lines[0]
    assert lines[1]["container_number"] is None and lines[1]["error"]


def test_cli_visit_fuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for index, vertical in enumerate((False, True)):
        path = tmp_path / f"view{index}.png"
        cv2.imwrite(str(path), _painted("CSQU 305438 3", vertical, 60, 230))
        paths.append(str(path))
    assert gated_main(["ocr", "--visit", "--json", *paths]) == 0
    visit = json.loads(capsys.readouterr().out)
    assert len(visit["containers"]) == 1
    container = visit["containers"][0]
    assert container["container_number"] == "CSQU3054383"
    assert sorted(container["images"]) == sorted(paths)
    assert "size_type" in container and 0.0 <= container["confidence"] <= 1.0


# --- the shared photos of a real gate --------------------------------------------------------


@pytest.fixture(scope="module")
def photo_reads(shared_data: Path) -> list[tuple[dict[str, str], ContainerRead]]:
    """Every labelled photo read once for the whole module, before the threshold (as a visit
    reads them); `_shown` applies the threshold as `read_image` does."""
    folder = shared_data / "real_containers"
    labels = folder / "labels.csv"
    if not labels.is_file():
        pytest.skip("real_containers/labels.csv is not present")
    with labels.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        (row, read_image(folder / row["file"], camera=row["camera"], min_confidence=0.0))
        for row in rows
    ]


def _shown(read: ContainerRead) -> str | None:
    return read.container_number if read.confidence >= DEFAULT_MIN_CONFIDENCE else None


def test_photos_no_misread_and_most_read(
    photo_reads: list[tuple[dict[str, str], ContainerRead]],
) -> None:
    misread = [
        (row["file"], _shown(read))
        for row, read in photo_reads
        if _shown(read) not in (None, row["container_number"])
    ]
    correct = sum(1 for row, read in photo_reads if _shown(read) == row["container_number"])
    assert misread == []
    assert all(read.error is None for _row, read in photo_reads)
    assert correct >= 0.85 * len(photo_reads)


def test_photos_regions_lie_inside_the_frame(
    photo_reads: list[tuple[dict[str, str], ContainerRead]],
) -> None:
    for _row, read in photo_reads:
        if _shown(read) is None:
            continue
        assert read.region is not None
        x, y, w, h = read.region
        assert 0 <= x and 0 <= y and x + w <= 1920 and y + h <= 1080 and w > 0 and h > 0


def test_photos_fused_per_visit_no_misread(
    photo_reads: list[tuple[dict[str, str], ContainerRead]],
) -> None:
    visits: dict[str, list[tuple[dict[str, str], ContainerRead]]] = defaultdict(list)
    for row, read in photo_reads:
        visits[row["capture"]].append((row, read))
    correct = total = 0
    for members in visits.values():
        truths = {row["container_number"] for row, _read in members}
        fused = {
            c.container_number
            for c in fuse([r for _row, r in members], floor=HYPOTHESIS_FLOOR)
            if c.confidence >= DEFAULT_MIN_CONFIDENCE
        }
        assert fused <= truths
        correct += len(fused)
        total += len(truths)
    assert correct >= 0.85 * total


def test_read_visit_withholds_doubtful_numbers_per_image() -> None:
    painted = _painted("CSQU 305438 3", False, 60, 230)
    visit = read_visit([painted, np.full((1080, 1920), 128, np.uint8)], ["AH", "LF"])
    assert [r.camera for r in visit.reads] == ["AH", "LF"]
    assert visit.reads[0].container_number == "CSQU3054383"
    assert visit.reads[1].container_number is None
    assert [c.container_number for c in visit.accepted] == ["CSQU3054383"]
    strict = read_visit([painted], min_confidence=1.01)
    assert strict.reads[0].container_number is None and strict.accepted == ()
    assert [c.container_number for c in strict.containers] == ["CSQU3054383"]
