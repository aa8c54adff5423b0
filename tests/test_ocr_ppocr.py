"""The second engine (PP-OCR through OpenCV), engines in turn, and a stray blob in a line."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from gated.config import OcrConfig
from gated.ocr_service import OcrService
from ocr import engine as engine_module
from ocr import read_image
from ocr import reader as reader_module
from ocr.engine import DIGITS, LETTERS, EngineUnavailable, Glyph, make_engine, make_engines
from ocr.iso6346 import check_digit
from ocr.ppocr import ModelUnavailable, PPOcrEngine, character_list, model_path

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def _font(size: int) -> ImageFont.FreeTypeFont:
    if not FONT.is_file():
        pytest.skip("DejaVu font (fonts-dejavu-core) is not installed")
    return ImageFont.truetype(str(FONT), size)


def _ppocr() -> PPOcrEngine:
    try:
        return PPOcrEngine()
    except ModelUnavailable as exc:
        pytest.skip(f"PP-OCR model not installed: {exc}")


def _line(text: str) -> np.ndarray:
    """Dark characters on white, as the pipeline hands an engine its lines."""
    image = Image.new("L", (60 + 44 * len(text), 80), 255)
    ImageDraw.Draw(image).text((30, 10), text, fill=0, font=_font(52))
    return np.array(image)


def _entry(key: bytes, value: bytes) -> bytes:
    inner = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(value)]) + value
    return b"\x72" + bytes([len(inner)]) + inner  # field 14, length-delimited


def test_character_list_from_model_metadata() -> None:
    # a producer name (field 2), a graph stand-in (field 7) and two metadata entries
    model = (
        b"\x12\x04test" + b"\x3a\x03\x01\x02\x03"
        + _entry(b"other", b"x") + _entry(b"character", b"a\nb\nC")
    )
    assert character_list(model) == ["a", "b", "C"]


@pytest.mark.parametrize(
    "model",
    [b"\x12\x04te", b"\x72\x05\x0a\x09character", b"\x12\x04test", b"\x0f"],
    ids=["truncated-field", "truncated-entry", "no-metadata", "bad-wire-type"],
)
def test_a_model_without_a_character_list_is_refused(model: bytes) -> None:
    with pytest.raises((ValueError, ModelUnavailable)):
        character_list(model)


def test_the_installed_model_knows_the_code_characters() -> None:
    try:
        path = model_path()
    except ModelUnavailable as exc:
        pytest.skip(str(exc))
    characters = character_list(path.read_bytes())
    assert set(LETTERS + DIGITS) <= set(characters)


def test_reads_a_line_within_the_whitelist() -> None:
    engine = _ppocr()
    glyphs = engine.read_line(_line("CSQU"), LETTERS)
    assert "".join(g.text for g in glyphs) == "CSQU"
    assert all(0.5 <= g.confidence <= 1.0 for g in glyphs)
    assert [g.x0 for g in glyphs] == sorted(g.x0 for g in glyphs)
    digits = engine.read_line(_line("305438"), DIGITS)
    assert "".join(g.text for g in digits) == "305438"
    # letters forced into digits: whatever it says, it says digits
    forced = engine.read_line(_line("CSQU"), DIGITS)
    assert all(g.text in DIGITS for g in forced)
    assert all(a in DIGITS for g in forced for a, _c in g.alternatives)


def test_an_empty_or_blank_line_gives_nothing() -> None:
    engine = _ppocr()
    assert engine.read_line(np.zeros((0, 10), np.uint8), DIGITS) == []
    assert engine.read_line(np.full((60, 300), 255, np.uint8), DIGITS) == []


def test_a_character_the_model_lacks_is_an_error() -> None:
    with pytest.raises(ValueError):
        _ppocr().read_line(_line("A"), "A\u2603")


def _frame(text: str) -> np.ndarray:
    image = Image.new("L", (1920, 1080), 200)
    ImageDraw.Draw(image).text((500, 450), text, fill=30, font=_font(56))
    return np.array(image)


class _Blind:
    name = "blind"

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        return []


def test_the_second_engine_reads_what_the_first_leaves_unreadable() -> None:
    _ppocr()
    frame = _frame("CSQU 305438 3")
    assert read_image(frame, engine=[_Blind()]).container_number is None
    read = read_image(frame, engine=[_Blind(), make_engine("ppocr")])
    assert read.container_number == "CSQU3054383"
    assert read.confidence >= 0.6


class _Counting:
    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = "counting"
        self.calls = 0

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        self.calls += 1
        return self.inner.read_line(image, whitelist)  # type: ignore[attr-defined]


def test_the_second_engine_is_not_asked_when_the_first_reads() -> None:
    second = _Counting(_Blind())
    read = read_image(_frame("CSQU 305438 3"), engine=[make_engine("tesseract"), second])
    assert read.container_number == "CSQU3054383"
    assert second.calls == 0


def test_a_missing_fallback_model_leaves_tesseract_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def missing() -> Path:
        raise ModelUnavailable("not installed here")

    monkeypatch.setattr("ocr.ppocr.model_path", missing)
    monkeypatch.setattr(engine_module, "_MISSING_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="ocr.engine"):
        engines = make_engines("tesseract", "ppocr")
    assert [e.name for e in engines] == ["tesseract"]
    assert "not installed here" in caplog.text
    assert read_image(_frame("CSQU 305438 3"), engine=engines).container_number == "CSQU3054383"


def test_engine_names() -> None:
    assert [e.name for e in make_engines("tesseract", None)] == ["tesseract"]
    assert [e.name for e in make_engines("tesseract", "none")] == ["tesseract"]
    assert [e.name for e in make_engines("tesseract", "tesseract")] == ["tesseract"]
    with pytest.raises(EngineUnavailable):
        make_engines("tesseract", "rapidocr")
    with pytest.raises(EngineUnavailable):
        make_engine("rapidocr")
    with pytest.raises(ValueError):
        read_image(_frame("CSQU 305438 3"), engine=[])


def test_the_daemon_reads_with_the_configured_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str | None]] = []

    def fake(primary: str, fallback: str | None) -> list[object]:
        asked.append((primary, fallback))
        return [_Blind()]

    monkeypatch.setattr("ocr.make_engines", fake)

    class Site:
        ocr = OcrConfig(engine="ppocr", fallback_engine="none")

    read = OcrService(Site()).read(str(Path(__file__)), "AH")  # type: ignore[arg-type]
    assert asked == [("ppocr", "none")]  # as the site file says it: no fallback
    assert read.container_number is None and read.error is not None


def test_a_stray_mark_between_two_digits_is_left_out() -> None:
    """A thin upright mark (a corrugation edge) half a step after a digit is not a character:
    the code is read around it."""
    font = _font(56)
    image = Image.new("L", (1920, 1080), 200)
    draw = ImageDraw.Draw(image)
    x = 400
    for index, char in enumerate("CSQU3054383"):
        draw.text((x, 450), char, fill=30, font=font)
        x += 75 + (90 if index == 3 else 0)
        if index == 5:  # between the serial's second and third digits
            draw.rectangle((x - 22, 460, x - 15, 504), fill=30)
    read = read_image(np.array(image), engine=[make_engine("tesseract")])
    assert read.container_number == "CSQU3054383"


def test_a_fallback_engine_reads_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image full of code-like lines that pass no check digit: the first engine reads them
    all, a fallback engine stops after FALLBACK_CALLS line reads."""
    image = Image.new("L", (1920, 1080), 200)
    draw = ImageDraw.Draw(image)
    for row in range(7):
        wrong = (int(check_digit(f"CSQU30543{row}")) + 3) % 10
        draw.text((300, 80 + 135 * row), f"CSQU 30543{row} {wrong}", fill=30, font=_font(56))
    frame = np.array(image)
    first = _Counting(make_engine("tesseract"))
    fallback = _Counting(make_engine("tesseract"))
    read = read_image(frame, engine=[first, fallback])
    assert read.container_number is None
    assert fallback.calls == reader_module.FALLBACK_CALLS
    assert first.calls > reader_module.FALLBACK_CALLS  # the first engine has no budget
    monkeypatch.setattr(reader_module, "FALLBACK_CALLS", 10_000)
    unlimited = _Counting(make_engine("tesseract"))
    read_image(frame, engine=[first, unlimited])
    assert unlimited.calls > 60


def test_a_hidden_owner_letter_is_not_trusted() -> None:
    """A letter of the owner code crossed by a rod is filled in and read from what shows: the
    check digit cannot catch its twin (B/L/V, I/S, ...), so the read stays below the
    threshold, however clear the rest."""
    font = _font(56)
    image = Image.new("L", (1920, 1080), 200)
    draw = ImageDraw.Draw(image)
    for index, char in enumerate("CSQU3054383"):
        draw.text((900, 60 + 84 * index), char, fill=30, font=font)
    draw.rectangle((860, 60 + 84 + 10, 1000, 60 + 84 + 20), fill=30)  # a rod across the S
    read = read_image(np.array(image), engine=[make_engine("tesseract")], min_confidence=0.0)
    assert read.container_number == "CSQU3054383"  # read, but
    assert read.confidence < 0.6


def test_the_second_engine_reads_when_the_second_look_casts_doubt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first read above the mark that its second look brings below it is not the end: the
    next engine reads, and its read stands on its own second look."""
    real_verify = reader_module.verify

    def doubting_the_first(gray: np.ndarray, read: object, engine: object) -> object:
        checked = real_verify(gray, read, engine)  # type: ignore[arg-type]
        if getattr(engine, "name", "") == "tesseract":
            return replace(checked, confidence=checked.confidence * 0.3)
        return checked

    monkeypatch.setattr(reader_module, "verify", doubting_the_first)
    second = _Counting(make_engine("tesseract"))
    read = read_image(_frame("CSQU 305438 3"), engine=[make_engine("tesseract"), second])
    assert second.calls > 0
    assert read.container_number == "CSQU3054383"
    assert read.confidence >= 0.6


def test_a_fallback_that_fails_to_load_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A model file that is there but cannot be loaded: the fallback gives no characters, the
    first engine's answer stands, and the process logs it once, not for every picture."""
    monkeypatch.setattr("ocr.ppocr.model_path", lambda: Path(__file__))  # not a model
    monkeypatch.setattr(engine_module, "_PPOCR", None)
    monkeypatch.setattr(engine_module, "_PPOCR_MISSING", None)
    monkeypatch.setattr(engine_module, "_MISSING_WARNED", set())
    wrong = _frame("CSQU 305438 7")  # a code that fails its check digit: both engines read
    with caplog.at_level(logging.WARNING, logger="ocr.engine"):
        for _ in range(2):
            engines = make_engines("tesseract", "ppocr")
            assert [e.name for e in engines] == ["tesseract", "ppocr"]
            assert read_image(wrong, engine=engines).container_number is None
    assert caplog.text.count("'ppocr' is not available") == 1
