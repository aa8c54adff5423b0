"""The image store: where pictures go, and retention by age and by total size, oldest first."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gated.config import ImageStoreConfig
from gated.image_store import ImageStore, run_retention

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _store(tmp_path: Path, **limits: float) -> ImageStore:
    return ImageStore(ImageStoreConfig(directory=str(tmp_path / "images"), **limits))


def _save_aged(store: ImageStore, age: timedelta, size: int = 1000, camera: str = "AH") -> Path:
    at = NOW - age
    path = store.save("1", uuid.uuid4(), camera, b"\xff\xd8" + b"x" * (size - 2), at=at)
    os.utime(path, (at.timestamp(), at.timestamp()))
    return path


def test_save_files_by_day_lane_and_transaction(tmp_path: Path) -> None:
    store = _store(tmp_path)
    transaction = uuid.uuid4()
    path = store.save("IN-1", transaction, "AH", b"\xff\xd8jpeg", at=NOW)
    assert path == tmp_path / "images/2026/03/10/IN-1" / str(transaction) / "AH.jpg"
    assert path.read_bytes() == b"\xff\xd8jpeg"
    assert not list(path.parent.glob("*.part"))


def test_names_cannot_escape_the_store(tmp_path: Path) -> None:
    store = _store(tmp_path)
    path = store.save("../../etc", uuid.uuid4(), "../passwd", b"\xff\xd8", at=NOW)
    assert path.resolve().is_relative_to((tmp_path / "images").resolve())
    with pytest.raises(ValueError):
        store.save("1", "not-a-uuid", "AH", b"\xff\xd8", at=NOW)
    assert store.save_errors == 1


def test_empty_image_is_refused_and_counted(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(ValueError, match="empty"):
        store.save("1", uuid.uuid4(), "AH", b"", at=NOW)
    assert store.save_errors == 1


async def test_retention_by_age_removes_only_old_images(tmp_path: Path) -> None:
    store = _store(tmp_path, max_age_days=7)
    old = [_save_aged(store, timedelta(days=d)) for d in (30, 8, 7.5)]
    young = [_save_aged(store, timedelta(days=d)) for d in (6.9, 1, 0)]

    report = await store.enforce_retention(now=NOW)

    assert report.removed_files == 3
    assert report.kept_files == 3
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in young)
    # the emptied day and transaction directories went with their pictures
    assert not (tmp_path / "images/2026/02").exists()
    assert (tmp_path / "images/2026/03/10").is_dir()


async def test_retention_by_size_removes_oldest_first(tmp_path: Path) -> None:
    # 10 images of 200 kB (hours apart) against a 1 MB limit: the 5 oldest must go
    store = _store(tmp_path, max_total_mb=1.0)
    paths = [_save_aged(store, timedelta(hours=h), size=200 * 1024) for h in range(10, 0, -1)]

    report = await store.enforce_retention(now=NOW)

    assert [p.exists() for p in paths] == [False] * 5 + [True] * 5
    assert report.removed_bytes == 5 * 200 * 1024
    assert report.kept_bytes <= 1024 * 1024
    # a second pass has nothing to do
    again = await store.enforce_retention(now=NOW)
    assert again.removed_files == 0 and again.kept_files == 5


async def test_retention_on_a_missing_directory_does_nothing(tmp_path: Path) -> None:
    report = await _store(tmp_path).enforce_retention(now=NOW)
    assert report.removed_files == 0 and report.kept_files == 0


def test_save_after_retention_pruned_the_directory(tmp_path: Path) -> None:
    store = _store(tmp_path, max_age_days=1)
    transaction = uuid.uuid4()
    first = _save_aged(store, timedelta(days=3))
    store.enforce_retention_blocking(now=NOW)
    assert not first.exists()
    again = store.save("1", transaction, "AH", b"\xff\xd8new", at=NOW - timedelta(days=3))
    assert again.read_bytes() == b"\xff\xd8new"


async def test_run_retention_passes_until_cancelled(tmp_path: Path) -> None:
    store = _store(tmp_path, max_age_days=1)
    old = _save_aged(store, timedelta(days=400))
    task = asyncio.create_task(run_retention(store, every_s=3600), name="image retention")
    for _ in range(200):
        if not old.exists():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not old.exists()
