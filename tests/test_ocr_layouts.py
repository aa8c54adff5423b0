"""Candidate geometry: even pitch of a code's characters, and what counts as support."""

from __future__ import annotations

import numpy as np

from ocr.candidates import Blob, Group, _chains
from ocr.engine import Glyph
from ocr.glyphs import stretch_of
from ocr.layouts import Candidate, assemble, pitch_ratio
from ocr.recognise import CodeRead, choose, fragments, read_candidate


def _row(xs: list[int], y: int = 100, h: int = 40, w: int = 24) -> tuple[Blob, ...]:
    return tuple(Blob(x, y, w, h, 1) for x in xs)


def _even_line(start: int = 100, pitch: int = 30) -> list[int]:
    """Owner code, a space, serial, a space, check digit."""
    owner = [start + pitch * i for i in range(4)]
    serial = [owner[-1] + 2 * pitch + pitch * i for i in range(6)]
    return [*owner, *serial, serial[-1] + 2 * pitch]


def test_an_evenly_spaced_line_is_a_candidate() -> None:
    line = Group(_row(_even_line()), "h")
    found = assemble([line], [])
    assert [c.layout for c in found] == ["horizontal"]
    assert pitch_ratio(found[0].blobs[:4], "h") == 1.0


def test_a_line_with_a_hidden_character_is_not_a_candidate() -> None:
    # a stray blob in front of the owner code and a character lost behind a rod: the window
    # has eleven blobs, but the owner code's steps are uneven
    xs = _even_line()
    del xs[2]
    line = Group(_row([xs[0] - 90, *xs]), "h")
    assert assemble([line], []) == []


def test_an_evenly_spaced_column_is_a_candidate_and_a_gap_in_it_is_not() -> None:
    ys = [100 + 50 * i for i in range(4)] + [330 + 50 * i for i in range(6)] + [650]
    column = Group(tuple(Blob(500, y, 30, 40, 0) for y in ys), "v")
    assert [c.layout for c in assemble([], [column])] == ["vertical"]
    ys_gap = ys[:5] + [y + 50 for y in ys[5:]]  # a digit missing inside the serial
    gap = Group(tuple(Blob(500, y, 30, 40, 0) for y in ys_gap), "v")
    assert assemble([], [gap]) == []


def test_the_same_characters_found_twice_are_not_support() -> None:
    blobs = _row(_even_line())
    again = tuple(Blob(b.x + 1, b.y, b.w, b.h, b.polarity) for b in blobs)
    first = CodeRead("CSQU3054383", 0.4, Candidate(blobs, "horizontal"))
    second = CodeRead("CSQU3054383", 0.4, Candidate(again, "horizontal"))
    assert choose([first, second]) == first
    elsewhere = tuple(Blob(b.x, b.y + 300, b.w, b.h, b.polarity) for b in blobs)
    third = CodeRead("CSQU3054383", 0.4, Candidate(elsewhere, "horizontal"))
    chosen = choose([first, third])
    assert chosen is not None and chosen.confidence > 0.6


def test_a_stray_blob_before_a_line_does_not_take_its_first_character() -> None:
    # a rod piece taller than the characters, left of the owner code, whose first letter is
    # a little shorter (too short to link to the rod): the rod's nearest similar blob is the
    # second letter, which must stay the first letter's neighbour
    xs = _even_line(start=400)
    first = Blob(xs[0], 102, 24, 36, 1)
    line = (first, *_row(xs[1:]))
    rod = Blob(300, 95, 10, 50, 1)
    chains = _chains([rod, *line], "h")
    assert any(group.blobs == line for group in chains)


def test_one_long_chain_does_not_crowd_out_the_other_groups() -> None:
    rod = Group(tuple(Blob(50, 20 + 45 * i, 20, 40, 0) for i in range(20)), "v")
    line = Group(_row(_even_line()), "h")
    found = assemble([line], [rod])
    assert [c.layout for c in found[:2]] == ["vertical", "horizontal"]


def test_a_column_with_a_lost_character_is_joined_through_a_filled_in_blob() -> None:
    # a column of 11 whose 6th character is hidden (a bar across it): two runs, 4+1 and 5,
    # two steps apart; they are joined through a blob filled in where the 6th should be
    ys = [100 + 50 * i for i in range(11)]
    seen = [Blob(500, y, 30, 40, 1) for index, y in enumerate(ys) if index != 5]
    groups = _chains(seen, "v")
    joined = [g for g in groups if any(b.filled for b in g.blobs)]
    assert len(joined) == 1
    filled = joined[0].blobs[5]
    assert filled.filled and (filled.x, filled.y, filled.w, filled.h) == (500, 350, 30, 40)
    candidates = assemble([], groups)
    assert any(c.blobs[5].filled for c in candidates)


def test_runs_not_two_steps_apart_are_not_joined() -> None:
    ys = [100 + 50 * i for i in range(5)] + [100 + 50 * i + 30 for i in range(6, 12)]
    groups = _chains([Blob(500, y, 30, 40, 1) for y in ys], "v")
    assert not any(b.filled for g in groups for b in g.blobs)


def test_a_step_of_two_inside_a_line_gets_a_filled_in_blob() -> None:
    # linking along a line reaches over a lost character; a group with it filled in is added
    xs = [100 + 30 * i for i in range(11)]
    del xs[6]
    groups = _chains(list(_row(xs)), "h")
    filled = [b for g in groups for b in g.blobs if b.filled]
    assert [(b.x, b.w) for b in filled] == [(280, 24)]


def test_stretch_restores_usual_proportions_only_when_far_off() -> None:
    narrow = tuple(Blob(0, 0, 20, 60, 1) for _ in range(6))  # a third of the height wide
    usual = tuple(Blob(0, 0, 36, 60, 1) for _ in range(6))
    assert stretch_of(narrow) > 1.5
    assert stretch_of(usual) == 1.0


def test_two_touching_characters_in_a_column_are_cut_where_the_step_says() -> None:
    # W, Y above; J and U touching as one blob twice a character tall; serial below
    ys = [100 + 50 * i for i in range(12)]
    seen = [Blob(500, y, 30, 40, 1) for index, y in enumerate(ys) if index not in (2, 3)]
    double = Blob(500, ys[2], 30, 90, 1)
    groups = _chains([*seen, double], "v")
    joined = [g for g in groups if sum(b.filled for b in g.blobs) == 2]
    assert len(joined) == 1
    cut = [b for b in joined[0].blobs if b.filled]
    assert [(b.y, b.h) for b in cut] == [(ys[2], 40), (ys[3], 40)]


def test_a_character_in_a_box_too_narrow_for_it_is_a_fragment() -> None:
    widths = [30, 30, 14, 30, 30, 30, 30, 10, 30, 30, 30]  # L from a D's left half; a 1
    blobs = tuple(Blob(100 + 40 * i, 100, w, 40, 1) for i, w in enumerate(widths))
    assert fragments(blobs, "XOLU2221800") == [2]
    assert fragments(blobs, "XOIU2221800") == []


class _ScriptedEngine:
    """Reads any line of solid boxes as the owner code or serial of CSQU3054383, with a
    runner-up of `doubt` for the serial's second digit."""

    name = "scripted"

    def __init__(self, doubt: float) -> None:
        self.doubt = doubt

    def read_line(self, image: np.ndarray, whitelist: str) -> list[Glyph]:
        ink = (image < 128).any(axis=0)
        edges = np.flatnonzero(np.diff(ink.astype(np.int8)))
        runs = list(zip(edges[0::2] + 1, edges[1::2] + 1, strict=True))
        text = {4: "CSQU", 6: "305438", 7: "3054383"}.get(len(runs), "")
        glyphs = []
        for index, ((x0, x1), char) in enumerate(zip(runs, text, strict=False)):
            alternatives = (("8", self.doubt),) if char == "0" and index == 1 else ()
            glyphs.append(Glyph(char, 0.99, int(x0), int(x1), alternatives))
        return glyphs


def test_a_filled_in_character_with_a_strong_runner_up_makes_the_read_doubtful() -> None:
    gray = np.full((200, 1000), 255, np.uint8)
    blobs = []
    for index, x in enumerate(_even_line(start=60, pitch=60)):
        gray[80:120, x : x + 30] = 0
        blobs.append(Blob(x, 80, 30, 40, 0, filled=index == 5))
    candidate = Candidate(tuple(blobs), "horizontal")
    sure = read_candidate(gray, candidate, _ScriptedEngine(doubt=0.2))
    doubtful = read_candidate(gray, candidate, _ScriptedEngine(doubt=0.8))
    assert sure is not None and sure.number == "CSQU3054383" and sure.confidence > 0.6
    assert doubtful is not None and doubtful.confidence < 0.3
