"""Camera images on disk, filed by day, lane and transaction, with retention by age and size.

Layout: `<directory>/<yyyy>/<mm>/<dd>/<lane>/<transaction-uuid>/<camera>.jpg` (UTC dates), so a
clerk or an auditor finds a transaction's pictures without the database, and a day's pictures
are removed together.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gated.config import ImageStoreConfig
from gated.domain import utcnow

_LOGGER = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(name: str) -> str:
    """A lane or camera name made safe as one path component."""
    cleaned = _UNSAFE.sub("_", name).strip(".")
    if not cleaned:
        raise ValueError(f"name {name!r} cannot be used in an image path")
    return cleaned


@dataclass(frozen=True)
class RetentionReport:
    """What one retention pass did."""

    removed_files: int
    removed_bytes: int
    kept_files: int
    kept_bytes: int
    errors: int = 0


@dataclass(frozen=True)
class _StoredFile:
    path: Path
    mtime: float
    size: int


class ImageStore:
    """Writes images atomically and removes the oldest ones beyond the configured limits."""

    def __init__(self, config: ImageStoreConfig) -> None:
        self.config = config
        # absolute: the stored paths must not depend on the working directory of a later reader
        self.directory = Path(config.directory).resolve()
        self._retention_lock = threading.Lock()
        self.save_errors = 0

    def path_for(
        self, lane: str, transaction_uuid: str | uuid.UUID, camera: str, at: datetime
    ) -> Path:
        day = at.astimezone(UTC)
        transaction = str(uuid.UUID(str(transaction_uuid)))
        return (
            self.directory
            / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
            / safe_name(lane) / transaction / f"{safe_name(camera)}.jpg"
        )

    def save(
        self,
        lane: str,
        transaction_uuid: str | uuid.UUID,
        camera: str,
        jpeg: bytes,
        at: datetime | None = None,
    ) -> Path:
        """Store one camera's JPEG for a transaction; returns its path. Blocking file I/O."""
        if not jpeg:
            self.save_errors += 1
            raise ValueError(f"lane {lane}: camera {camera}: empty image not stored")
        try:
            path = self.path_for(lane, transaction_uuid, camera, at or utcnow())
        except ValueError:
            self.save_errors += 1
            raise
        partial = path.with_name(path.name + ".part")
        for attempt in (1, 2):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial.write_bytes(jpeg)
                os.replace(partial, path)
                return path
            except FileNotFoundError:
                if attempt == 2:  # retention pruned the fresh directory twice: give up
                    self.save_errors += 1
                    raise
            except OSError:
                self.save_errors += 1
                raise
        raise AssertionError("unreachable")

    async def enforce_retention(self, now: datetime | None = None) -> RetentionReport:
        """Remove images older than max_age_days, then the oldest until under max_total_mb."""
        return await asyncio.to_thread(self.enforce_retention_blocking, now)

    def enforce_retention_blocking(self, now: datetime | None = None) -> RetentionReport:
        with self._retention_lock:
            return self._enforce(now or utcnow())

    def _enforce(self, now: datetime) -> RetentionReport:
        files, errors = self._scan()
        cutoff = (now - timedelta(days=self.config.max_age_days)).timestamp()
        limit = int(self.config.max_total_mb * 1024 * 1024)
        files.sort(key=lambda stored: (stored.mtime, str(stored.path)))
        total = sum(stored.size for stored in files)

        removed_files = removed_bytes = 0
        for stored in files:
            if stored.mtime >= cutoff and total <= limit:
                break  # sorted oldest first: everything after is newer and fits
            try:
                stored.path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors += 1
                _LOGGER.warning("image store %s: cannot remove %s: %s", self.directory,
                                stored.path, exc)
                continue
            total -= stored.size
            removed_files += 1
            removed_bytes += stored.size

        if removed_files:
            self._prune_empty_directories()
            _LOGGER.info(
                "image store %s: removed %d images (%.1f MB), %.1f MB kept",
                self.directory, removed_files, removed_bytes / 1048576, total / 1048576,
            )
        return RetentionReport(
            removed_files=removed_files,
            removed_bytes=removed_bytes,
            kept_files=len(files) - removed_files,
            kept_bytes=total,
            errors=errors,
        )

    def _scan(self) -> tuple[list[_StoredFile], int]:
        found: list[_StoredFile] = []
        errors = 0
        if not self.directory.is_dir():
            return found, errors
        for root, _dirs, names in os.walk(self.directory):
            for name in names:
                path = Path(root) / name
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # removed meanwhile
                except OSError:
                    errors += 1
                    continue
                found.append(_StoredFile(path, stat.st_mtime, stat.st_size))
        return found, errors

    def _prune_empty_directories(self) -> None:
        for root, _dirs, _names in os.walk(self.directory, topdown=False):
            if Path(root) == self.directory:
                continue
            try:
                os.rmdir(root)  # fails unless empty (children were removed before the parent)
            except OSError:
                pass


async def run_retention(store: ImageStore, every_s: float = 3600.0) -> None:
    """Enforce retention now and then every `every_s` seconds, until cancelled.

    Meant as one named task of the daemon; a failed pass is logged and retried next time.
    """
    while True:
        try:
            await store.enforce_retention()
        except OSError as exc:
            _LOGGER.error("image store %s: retention pass failed: %s", store.directory, exc)
        await asyncio.sleep(every_s)
