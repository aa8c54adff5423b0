"""Fusion of a visit's reads and the reader's check-digit decision rules."""

from __future__ import annotations

from gated.domain import ContainerRead
from ocr import fuse
from ocr.engine import Glyph
from ocr.recognise import decide_number


def _read(image: str, number: str | None, confidence: float = 0.9, **kw: object) -> ContainerRead:
    return ContainerRead(
        image=image, camera=None, container_number=number, size_type=kw.get("size_type"),  # type: ignore[arg-type]
        confidence=confidence, error=kw.get("error"),  # type: ignore[arg-type]
    )


def test_agreeing_images_make_one_container_with_all_support() -> None:
    fused = fuse([
        _read("a", "TGHU7870036", 0.9, size_type="22G1"),
        _read("b", "TGHU7870036", 0.8, size_type="22G1"),
        _read("c", None, 0.0),
    ])
    assert len(fused) == 1
    assert fused[0].container_number == "TGHU7870036"
    assert fused[0].images == ("a", "b")
    assert fused[0].size_type == "22G1"
    assert fused[0].disagreeing_images == ()
    assert fused[0].confidence > 0.9  # two independent agreeing reads beat either alone


def test_two_containers_on_one_truck() -> None:
    fused = fuse([
        _read("front", "BEAU2656931"), _read("side", "BEAU2656931"),
        _read("rear", "TRHU1700369"),
    ])
    assert [f.container_number for f in fused] == ["BEAU2656931", "TRHU1700369"]
    assert fused[1].images == ("rear",)


def test_near_disagreement_lowers_confidence_and_is_listed() -> None:
    # CSQU3054383 and CSQU4054388 are both valid and two characters apart: one is a misread.
    fused = fuse([
        _read("a", "CSQU3054383", 0.9), _read("b", "CSQU3054383", 0.9),
        _read("c", "CSQU3054383", 0.9), _read("d", "CSQU4054388", 0.9),
    ])
    assert len(fused) == 1
    assert fused[0].disagreeing_images == ("d",)
    assert fused[0].confidence < 0.2


def test_one_against_one_is_doubtful() -> None:
    fused = fuse([_read("a", "CSQU3054383", 0.95), _read("b", "CSQU4054388", 0.7)])
    assert len(fused) == 1
    assert fused[0].container_number == "CSQU3054383"
    assert fused[0].confidence < 0.6


def test_neighbouring_serials_each_seen_twice_are_two_containers() -> None:
    # Two 20' boxes with consecutive serials (two characters apart with the check digit).
    fused = fuse([
        _read("a", "CSQU3054383"), _read("b", "CSQU3054383"),
        _read("c", "CSQU3054399"), _read("d", "CSQU3054399"),
    ])
    assert sorted(f.container_number for f in fused) == ["CSQU3054383", "CSQU3054399"]
    assert all(f.disagreeing_images == () for f in fused)


def test_invalid_errored_and_empty_reads_do_not_vote() -> None:
    assert fuse([]) == []
    fused = fuse([
        _read("a", "TGHU7870037"),  # bad check digit
        _read("b", "TGHU7870036", error="decoder failed"),
        _read("c", None),
    ])
    assert fused == []


def test_at_most_two_containers() -> None:
    fused = fuse([
        _read("a", "BEAU2656931"), _read("b", "BEAU2656931"),
        _read("c", "TRHU1700369"), _read("d", "TRHU1700369"),
        _read("e", "PCIU2743129", 0.6),
    ])
    assert [f.container_number for f in fused] == ["BEAU2656931", "TRHU1700369"]
    assert all("e" in f.disagreeing_images for f in fused)


def _glyphs(text: str, confidence: float = 0.95, alternatives=None) -> list[Glyph]:  # type: ignore[no-untyped-def]
    alternatives = alternatives or {}
    return [
        Glyph(c, confidence if i not in alternatives else alternatives[i][1], 0, 0,
              tuple(alternatives.get(i, ((), 0))[0]))
        for i, c in enumerate(text)
    ]


def test_decide_valid_number_keeps_confidence() -> None:
    assert decide_number(_glyphs("TGHU7870036", 0.95)) == ("TGHU7870036", 0.95)


def test_decide_repairs_a_doubtful_character_when_one_repair_fits() -> None:
    glyphs = _glyphs("TGHU7870086", alternatives={9: ((("3", 0.4),), 0.5)})
    decided = decide_number(glyphs)
    assert decided is not None
    number, confidence = decided
    assert number == "TGHU7870036"
    assert confidence < 0.5  # a repair is never as sure as a clean read


def test_decide_refuses_a_confident_character_that_must_change() -> None:
    # The engine was sure of the 8 and offered 3 only with zero weight: repair scores ~0.
    glyphs = _glyphs("TGHU7870086", alternatives={9: ((("3", 0.0),), 0.99)})
    decided = decide_number(glyphs)
    assert decided is None or decided[1] < 0.05


def test_decide_refuses_when_two_repairs_fit() -> None:
    glyphs = _glyphs(
        "TGHU7870030",
        alternatives={5: ((("6", 0.4),), 0.5), 10: (tuple((d, 0.3) for d in "123456789"), 0.5)},
    )
    assert decide_number(glyphs) is None


def test_decide_doubts_a_valid_read_when_strong_alternatives_make_another() -> None:
    # TGHU7870036 is valid as read, but strong second opinions (6 for the 8 at position 5,
    # 8 for the 6 at position 10) spell another valid number, TGHU7670038: doubtful.
    glyphs = _glyphs(
        "TGHU7870036",
        alternatives={5: ((("6", 0.9),), 0.95), 10: ((("8", 0.9),), 0.95)},
    )
    decided = decide_number(glyphs)
    assert decided is not None
    assert decided[0] == "TGHU7870036" and decided[1] < 0.6
    lone = _glyphs("TGHU7870036", alternatives={5: ((("6", 0.9),), 0.95)})
    assert decide_number(lone) == ("TGHU7870036", 0.95)


def test_decide_doubts_a_read_with_several_contested_characters() -> None:
    # Three characters with strong runners-up: the check digit alone cannot vouch for them.
    contested = {0: ((("Q", 0.7),), 0.95), 3: ((("Y", 0.8),), 0.95), 4: ((("1", 0.6),), 0.95)}
    decided = decide_number(_glyphs("TGHU7870036", alternatives=contested))
    assert decided is not None and decided[1] < 0.6


def test_decide_needs_eleven_characters() -> None:
    assert decide_number(_glyphs("TGHU787003")) is None


def test_reads_below_the_floor_do_not_vote() -> None:
    reads = [_read("a", "TGHU7870036", 0.2), _read("b", "TGHU7870036", 0.45)]
    assert [f.images for f in fuse(reads, floor=0.3)] == [("b",)]


def test_two_doubtful_images_that_agree_make_a_confident_container() -> None:
    # Neither 0.45 read stands alone at 0.6; two cameras agreeing on one valid number do.
    fused = fuse([_read("a", "TGHU7870036", 0.45), _read("b", "TGHU7870036", 0.45)], floor=0.3)
    assert len(fused) == 1 and fused[0].confidence >= 0.6
    alone = fuse([_read("a", "TGHU7870036", 0.45)], floor=0.3)
    assert alone[0].confidence < 0.6
