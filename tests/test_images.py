"""Synthetic container pictures: size, truth, determinism, layouts; the real-photo folder; the
synthetic set generator's labels."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from stdnum import iso6346

from hwsim.images import (
    HEIGHT,
    LABEL_COLUMNS,
    LAYOUTS,
    WIDTH,
    PhotoFolder,
    RenderSpec,
    encode_jpeg,
    random_container_number,
    random_spec,
    render,
    render_empty,
)


def test_random_container_numbers_are_valid_iso6346() -> None:
    rng = np.random.default_rng(5)
    numbers = {random_container_number(rng) for _ in range(200)}
    assert len(numbers) == 200
    assert all(iso6346.is_valid(n) and n[3] == "U" for n in numbers)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_renders_full_hd_with_the_marking_inside(layout: str) -> None:
    view = "door_end_from_above" if layout != "vertical" else "end_wall_oblique_side_camera"
    picture = render(random_spec(21, container_number="TGHU7870036", layout=layout, view=view))
    assert picture.image.shape == (HEIGHT, WIDTH, 3) and picture.image.dtype == np.uint8
    assert picture.container_number == "TGHU7870036"
    assert picture.spec.layout == layout
    x, y, w, h = picture.region
    assert 0 <= x and 0 <= y and x + w <= WIDTH and y + h <= HEIGHT
    # a column is tall and narrow, a line wide and low
    if layout == "vertical":
        assert h > 4 * w
    elif layout == "horizontal":
        assert w > 4 * h


def test_the_region_holds_the_marking() -> None:
    """On a clean picture the marked region has much more edge energy than the wall around."""
    spec = random_spec(8, layout="horizontal", view="door_end_from_above", difficulty=0.0)
    picture = render(spec)
    gray = cv2.cvtColor(picture.image, cv2.COLOR_BGR2GRAY)
    edges = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0))
    x, y, w, h = picture.region
    inside = edges[y : y + h, x : x + w].mean()
    below = edges[min(HEIGHT - h, y + 3 * h) : min(HEIGHT, y + 4 * h), x : x + w].mean()
    assert inside > 2 * below


def test_same_seed_same_pixels_other_seed_other_pixels() -> None:
    first = render(random_spec(3))
    again = render(random_spec(3))
    other = render(random_spec(4))
    assert np.array_equal(first.image, again.image) and first.region == again.region
    assert first.spec != other.spec


def test_invalid_specs_are_refused() -> None:
    good = random_spec(1)
    with pytest.raises(ValueError, match="ISO 6346"):
        RenderSpec(**{**good.__dict__, "container_number": "TGHU7870037"})
    with pytest.raises(ValueError, match="layout"):
        RenderSpec(**{**good.__dict__, "layout": "diagonal"})


def test_empty_portal_and_jpeg_encoding() -> None:
    empty = render_empty("door_end_from_above", seed=2, chassis=True)
    assert empty.shape == (HEIGHT, WIDTH, 3)
    jpeg = encode_jpeg(empty, quality=70)
    assert jpeg[:2] == b"\xff\xd8" and jpeg.rstrip(b"\x00")[-2:] == b"\xff\xd9"


def test_photo_folder_picks_by_container_and_camera(shared_data: Path) -> None:
    folder = PhotoFolder(shared_data / "real_containers")
    assert len(folder.photos) >= 20 and not folder.skipped
    number = folder.photos[0].container_number
    same_camera = folder.pick(number, folder.photos[0].camera)
    assert same_camera is not None and same_camera.camera == folder.photos[0].camera
    assert same_camera.container_number == number and same_camera.path.is_file()
    assert folder.pick("TGHU7870036") is None
    assert all(len(photos) <= 5 for photos in folder.captures().values())


def test_photo_folder_reports_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(encode_jpeg(render_empty("door_end_from_above", 1)))
    (tmp_path / "labels.csv").write_text(
        "file,container_number,camera,code_layout,view,capture\n"
        "a.jpg,TGHU7870036,AH,horizontal,door_end_from_above,1\n"
        "missing.jpg,TGHU7870036,AS,horizontal,door_end_from_above,1\n"
        "a.jpg,TGHU7870037,AS,horizontal,door_end_from_above,1\n"
    )
    folder = PhotoFolder(tmp_path)
    assert [p.camera for p in folder.photos] == ["AH"]
    assert folder.skipped == ["missing.jpg", "a.jpg"]
    (tmp_path / "labels.csv").write_text("file,container_number\n")
    with pytest.raises(ValueError, match="missing columns"):
        PhotoFolder(tmp_path)


def test_make_synthetic_writes_labels_like_the_real_set(tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "set"
    command = [sys.executable, str(repo_root / "bench/make_synthetic.py"), str(out),
               "--count", "6", "--seed", "9"]
    subprocess.run(command, check=True, capture_output=True, timeout=120)

    with (out / "labels.csv").open(newline="") as stream:
        reader = csv.DictReader(stream)
        assert tuple(reader.fieldnames or ()) == LABEL_COLUMNS
        rows = list(reader)
    assert len(rows) == 6
    assert [r["camera"] for r in rows] == ["AH", "AS", "LF", "RF", "LB", "AH"]
    assert len({r["capture"] for r in rows}) == 2
    for row in rows:
        assert iso6346.is_valid(row["container_number"])
        assert row["code_layout"] in LAYOUTS
        picture = cv2.imread(str(out / row["file"]))
        assert picture is not None and picture.shape == (HEIGHT, WIDTH, 3)
    # front cameras of one truck pass see the same container
    first = {r["camera"]: r["container_number"] for r in rows[:5]}
    assert first["AH"] == first["LF"] == first["RF"]
    assert (out / "truth.csv").is_file()


def test_an_unreadable_container_has_its_number_painted_over() -> None:
    legible = render(random_spec(8, layout="horizontal", difficulty=0.0))
    covered = render(random_spec(8, layout="horizontal", difficulty=0.0, legible=False))
    x, y, w, h = legible.region
    assert covered.region == legible.region

    def edge_energy(image: np.ndarray) -> float:
        gray = cv2.cvtColor(image[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY)
        return float(np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)).mean())

    assert edge_energy(covered.image) < 0.5 * edge_energy(legible.image)
