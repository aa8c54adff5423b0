"""Capture a lane's gate cameras on the arrival trigger, the way OCR portals do.

Each camera answers an HTTP JPEG snapshot URL; where a video stream URL (MJPEG or RTSP) is
configured, a frame is grabbed from it through OpenCV in a worker thread, with the snapshot as
the fallback. All cameras of a lane are captured at once; a camera that is down gives its own
error and never holds up the others. Pictures go to the image store with the transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import httpx
from PIL import Image, UnidentifiedImageError

from gated.config import CameraConfig
from gated.domain import DeviceHealth, utcnow
from gated.image_store import ImageStore
from gated.ports import CapturedImage as CapturedImagePort

_LOGGER = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 16 * 1024 * 1024
STREAM_JPEG_QUALITY = 92

HealthCallback = Callable[[DeviceHealth], object]


class CameraError(Exception):
    """One camera could not deliver a usable picture; the message says why."""


@dataclass(frozen=True)
class CapturedImage(CapturedImagePort):
    """One camera's result for a transaction: the stored picture's path, or why there is none."""

    source: str = "snapshot"  # "snapshot" or "stream"
    elapsed_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.path is not None


def check_jpeg(data: bytes) -> None:
    """Raise CameraError unless `data` is a complete JPEG that decodes."""
    if not data.startswith(b"\xff\xd8"):
        raise CameraError(f"not a JPEG ({len(data)} bytes, starts {data[:4].hex() or 'empty'})")
    if b"\xff\xd9" not in data[-64:]:
        raise CameraError(f"corrupt JPEG: truncated ({len(data)} bytes, no end marker)")
    # decoding at 1/8 scale is enough to prove the data is sound and costs a few milliseconds;
    # Pillow rather than OpenCV, which would cost the daemon 40 MB for this check alone
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as picture:
            picture.draft("L", (max(1, picture.width // 8), max(1, picture.height // 8)))
            picture.load()
            empty = picture.width == 0 or picture.height == 0
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise CameraError(f"corrupt JPEG: does not decode ({len(data)} bytes): {exc}") from None
    if empty:
        raise CameraError(f"corrupt JPEG: no pixels ({len(data)} bytes)")


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect (refused or unreachable)"
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        return "connection dropped by the camera"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class CameraSet:
    """The cameras of one lane, captured together for one transaction."""

    def __init__(
        self,
        lane: str,
        cameras: list[CameraConfig],
        store: ImageStore,
        on_health: HealthCallback | None = None,
    ) -> None:
        self.lane = lane
        self.cameras = list(cameras)
        self.store = store
        self.on_health = on_health
        self.errors: Counter[str] = Counter()  # failed captures per camera
        self._up: dict[str, bool] = {}
        self._stream_broken: set[str] = set()
        # cameras sit on the gate network: never reach them through a proxy from the environment
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self._executor = ThreadPoolExecutor(
            max_workers=2, thread_name_prefix=f"gated-lane-{lane}-camera"
        )
        # stream reader threads still running, each with a future set when it ends
        self._stream_threads: dict[threading.Thread, asyncio.Future[None]] = {}
        self._closed = False

    async def capture(self, transaction_uuid: str | uuid.UUID) -> list[CapturedImagePort]:
        """Take one picture from every camera now; one result per camera, in config order."""
        if self._closed:
            raise RuntimeError(f"lane {self.lane}: camera set is closed")
        at = utcnow()
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    self._capture_one(camera, str(transaction_uuid), at),
                    name=f"lane {self.lane} camera {camera.name} capture",
                )
                for camera in self.cameras
            ]
        return [task.result() for task in tasks]

    async def aclose(self) -> None:
        """Close connections and wait for stream threads (they end within their timeouts)."""
        self._closed = True
        await self._client.aclose()
        if self._stream_threads:
            longest = max((c.timeout_s for c in self.cameras), default=1.0)
            await asyncio.wait(list(self._stream_threads.values()), timeout=longest * 2 + 2)
        for thread in self._stream_threads:
            thread.join(timeout=0.5)
            if thread.is_alive():
                _LOGGER.error("lane %s: %s did not stop", self.lane, thread.name)
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> CameraSet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- one camera ----------------------------------------------------------------------------

    async def _capture_one(
        self, camera: CameraConfig, transaction: str, at: datetime
    ) -> CapturedImage:
        try:
            return await self._capture_or_fail(camera, transaction, at)
        except Exception as exc:
            # a bug here must cost this camera's picture, not the lane's transaction
            _LOGGER.exception("lane %s: camera %s: capture failed", self.lane, camera.name)
            return CapturedImage(camera=camera.name, path=None, error=f"internal error: {exc!r}")

    async def _capture_or_fail(
        self, camera: CameraConfig, transaction: str, at: datetime
    ) -> CapturedImage:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        source = "snapshot"
        try:
            jpeg: bytes | None = None
            if camera.stream_url:
                jpeg = await self._from_stream(camera)
                source = "stream" if jpeg is not None else "snapshot"
            if jpeg is None:
                jpeg = await self._snapshot(camera)
                await loop.run_in_executor(self._executor, check_jpeg, jpeg)
        except CameraError as exc:
            self.errors[camera.name] += 1
            self._set_health(camera.name, False, str(exc))
            return CapturedImage(
                camera=camera.name, path=None, error=str(exc), source=source,
                elapsed_ms=(time.perf_counter() - started) * 1000,
            )
        self._set_health(camera.name, True, "")

        try:
            path = await loop.run_in_executor(
                self._executor, self.store.save, self.lane, transaction, camera.name, jpeg, at
            )
        except (OSError, ValueError) as exc:
            # the camera worked; the disk did not: not a camera outage
            _LOGGER.error("lane %s: camera %s: cannot store image: %s", self.lane, camera.name, exc)
            return CapturedImage(
                camera=camera.name, path=None, error=f"cannot store image: {exc}", source=source,
                elapsed_ms=(time.perf_counter() - started) * 1000,
            )
        return CapturedImage(
            camera=camera.name, path=str(path), source=source,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    async def _snapshot(self, camera: CameraConfig) -> bytes:
        try:
            async with asyncio.timeout(camera.timeout_s):
                async with self._client.stream(
                    "GET", camera.snapshot_url, timeout=camera.timeout_s
                ) as response:
                    if response.status_code != 200:
                        raise CameraError(f"snapshot: HTTP {response.status_code}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_IMAGE_BYTES:
                            raise CameraError(f"snapshot larger than {MAX_IMAGE_BYTES} bytes")
        except TimeoutError as exc:
            raise CameraError(f"snapshot: no answer within {camera.timeout_s:g} s") from exc
        except httpx.TimeoutException as exc:
            raise CameraError(f"snapshot: no answer within {camera.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise CameraError(f"snapshot: {_describe(exc)}") from exc
        return bytes(body)

    async def _from_stream(self, camera: CameraConfig) -> bytes | None:
        """A frame from the video stream as JPEG, or None (logged once) to use the snapshot."""
        assert camera.stream_url is not None
        try:
            jpeg = await self._grab_stream_frame(camera.name, camera.stream_url, camera.timeout_s)
        except CameraError as exc:
            if camera.name not in self._stream_broken:
                self._stream_broken.add(camera.name)
                _LOGGER.warning(
                    "lane %s: camera %s: stream unusable (%s), using the snapshot URL",
                    self.lane, camera.name, exc,
                )
            return None
        if camera.name in self._stream_broken:
            self._stream_broken.discard(camera.name)
            _LOGGER.info("lane %s: camera %s: stream works again", self.lane, camera.name)
        return jpeg

    async def _grab_stream_frame(self, name: str, url: str, timeout_s: float) -> bytes:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[bytes] = loop.create_future()

        def deliver(value: bytes | BaseException) -> None:
            if result.done():
                return  # the capture gave up waiting
            if isinstance(value, BaseException):
                result.set_exception(value)
            else:
                result.set_result(value)

        def work() -> None:
            try:
                value: bytes | BaseException = _read_one_frame(url, timeout_s)
            except CameraError as exc:
                value = exc
            with contextlib.suppress(RuntimeError):  # the event loop is already closed
                loop.call_soon_threadsafe(deliver, value)
                loop.call_soon_threadsafe(ended, threading.current_thread())

        def ended(thread: threading.Thread) -> None:
            finished = self._stream_threads.pop(thread, None)
            if finished is not None and not finished.done():
                finished.set_result(None)

        thread = threading.Thread(
            target=work, name=f"gated lane {self.lane} camera {name} stream", daemon=True
        )
        self._stream_threads[thread] = loop.create_future()
        thread.start()
        try:
            # OpenCV honours its open and read timeouts; the margin covers encoding. On timeout
            # the future is cancelled and the thread's late answer is dropped by `deliver`.
            async with asyncio.timeout(timeout_s * 2 + 1.0):
                return await result
        except TimeoutError as exc:
            raise CameraError(f"stream: no frame within {timeout_s * 2 + 1.0:g} s") from exc

    def _set_health(self, camera: str, up: bool, detail: str) -> None:
        """Report a camera's change of state once: lost once, recovered once."""
        previous = self._up.get(camera)
        if previous is up:
            return
        self._up[camera] = up
        if up and previous is False:
            _LOGGER.info("lane %s: camera %s recovered", self.lane, camera)
        elif not up:
            _LOGGER.warning("lane %s: camera %s lost: %s", self.lane, camera, detail)
        if self.on_health is not None:
            try:
                self.on_health(
                    DeviceHealth(lane=self.lane, device=f"camera {camera}", up=up, detail=detail)
                )
            except Exception:
                _LOGGER.exception("lane %s: camera %s: health callback failed", self.lane, camera)


def _read_one_frame(url: str, timeout_s: float) -> bytes:
    """Open a video stream, read one frame, close it; blocking, bounded by the timeouts."""
    import cv2  # only sites with stream cameras pay for OpenCV in the daemon

    timeout_ms = max(1, int(timeout_s * 1000))
    capture = cv2.VideoCapture(
        url, cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms],
    )
    try:
        if not capture.isOpened():
            raise CameraError("stream: cannot open")
        ok, frame = capture.read()
        if not ok or frame is None or frame.size == 0:
            raise CameraError("stream: no frame")
    finally:
        capture.release()
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, STREAM_JPEG_QUALITY])
    if not ok:
        raise CameraError("stream: frame could not be encoded")
    return bytes(buffer.tobytes())
