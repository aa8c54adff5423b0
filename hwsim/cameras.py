"""Simulated IP cameras: one small HTTP/1.1 server on loopback for every camera of every lane.

`GET /lane/<lane>/<camera>/snapshot.jpg` answers one JPEG, `GET /lane/<lane>/<camera>/stream.mjpg`
a multipart MJPEG stream, as gate cameras do. The world simulator sets what each lane's cameras
see with `set_scene` (the truck now in the portal) and breaks cameras with `set_fault`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import struct
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from gated.config import CameraConfig
from hwsim.images import PhotoFolder, encode_jpeg, random_spec, render, render_empty

_LOGGER = logging.getLogger(__name__)

BOUNDARY = "gatedframe"


class CameraFault(enum.StrEnum):
    DOWN = "down"  # the connection is reset without an answer, like a camera off the network
    UNAVAILABLE = "unavailable"  # HTTP 503, like a camera that is up but cannot take a picture
    REFUSED = "refused"  # connections refused: the camera's own port closed (camera_ports=True)
    CORRUPT = "corrupt"  # a truncated JPEG with damaged bytes
    SLOW = "slow"  # the answer comes after `slow_delay_s`


@dataclass(frozen=True)
class SceneContainer:
    container_number: str
    size_type: str = "22G1"


@dataclass(frozen=True)
class Scene:
    """The truck in the portal: its containers front to back (none: chassis or bobtail)."""

    containers: tuple[SceneContainer, ...] = ()
    chassis: bool = True
    seed: int = 0
    unreadable: bool = False  # markings painted over or too damaged to read: a clerk's case


@dataclass(frozen=True)
class SimCamera:
    name: str
    view: str
    sees: Literal["front", "rear"]


DEFAULT_CAMERAS = (
    SimCamera("AH", "front_end_wall_from_above", "front"),
    SimCamera("AS", "door_end_from_above", "rear"),
    SimCamera("LF", "end_wall_oblique_side_camera", "front"),
    SimCamera("RF", "end_wall_oblique_side_camera", "front"),
    SimCamera("LB", "end_wall_oblique_side_camera", "rear"),
)


class CameraSimulator:
    """Every lane's cameras behind one loopback HTTP server; pictures rendered once per scene."""

    def __init__(
        self,
        lanes: Iterable[str],
        cameras: Sequence[SimCamera] = DEFAULT_CAMERAS,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        photos: PhotoFolder | None = None,
        difficulty: float = 0.5,
        stream_fps: float = 5.0,
        slow_delay_s: float = 10.0,
        render_workers: int = 2,
        camera_ports: bool = False,
    ) -> None:
        """`camera_ports`: every camera also listens on a port of its own, as separate IP
        cameras do, and its URLs use that port; only then can a camera refuse connections."""
        self.lanes = tuple(lanes)
        self.cameras = {camera.name: camera for camera in cameras}
        self.host = host
        self._port = port
        self.photos = photos
        self.difficulty = difficulty
        self.stream_fps = stream_fps
        self.slow_delay_s = slow_delay_s
        self._render_workers = render_workers
        self._scenes: dict[str, Scene | None] = {lane: None for lane in self.lanes}
        self._versions: Counter[str] = Counter()
        self._faults: dict[tuple[str, str], CameraFault] = {}
        self._frames: dict[tuple[str, str], tuple[int, Future[bytes]]] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._camera_ports = camera_ports
        self._camera_servers: dict[tuple[str, str], asyncio.Server] = {}
        self._ports: dict[tuple[str, str], int] = {}
        self._reopening: set[asyncio.Task[None]] = set()
        self._executor: ThreadPoolExecutor | None = None
        self.requests: Counter[tuple[str, str, str]] = Counter()

    # --- control from the world simulator --------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("camera simulator not started")
        return int(self._server.sockets[0].getsockname()[1])

    def camera_port(self, lane: str, camera: str) -> int:
        """The port this camera answers on (the shared port unless camera_ports)."""
        return self._ports.get((lane, camera)) or self.port

    def snapshot_url(self, lane: str, camera: str) -> str:
        port = self.camera_port(lane, camera)
        return f"http://{self.host}:{port}/lane/{lane}/{camera}/snapshot.jpg"

    def stream_url(self, lane: str, camera: str) -> str:
        port = self.camera_port(lane, camera)
        return f"http://{self.host}:{port}/lane/{lane}/{camera}/stream.mjpg"

    def camera_configs(
        self, lane: str, *, streams: bool = False, timeout_s: float = 2.0
    ) -> list[CameraConfig]:
        """The daemon's configuration of this lane's cameras."""
        return [
            CameraConfig(
                name=name,
                snapshot_url=self.snapshot_url(lane, name),
                stream_url=self.stream_url(lane, name) if streams else None,
                timeout_s=timeout_s,
            )
            for name in self.cameras
        ]

    def set_scene(self, lane: str, scene: Scene | None) -> None:
        """What the lane's cameras see from now on; None is an empty portal."""
        if lane not in self._scenes:
            raise KeyError(f"unknown lane {lane!r}")
        self._scenes[lane] = scene
        self._versions[lane] += 1
        if self._executor is not None:
            for camera in self.cameras:
                self._frame_future(lane, camera)  # start rendering before the first request

    async def rendered(self, lane: str) -> None:
        """Wait until every camera of the lane has its picture of the current scene ready."""
        await asyncio.gather(
            *(asyncio.wrap_future(self._frame_future(lane, camera)) for camera in self.cameras)
        )

    def set_fault(self, lane: str, camera: str, fault: CameraFault | None) -> None:
        """Break one camera (or repair it with None)."""
        if lane not in self._scenes or camera not in self.cameras:
            raise KeyError(f"unknown camera {lane}/{camera}")
        if fault is CameraFault.REFUSED and not self._camera_ports:
            raise ValueError("a camera can refuse connections only with camera_ports=True")
        key = (lane, camera)
        if fault is None:
            self._faults.pop(key, None)
        else:
            self._faults[key] = fault
        server = self._camera_servers.get(key)
        if fault is CameraFault.REFUSED and server is not None:
            server.close()  # stop listening; connections already open go on
            del self._camera_servers[key]
        elif (
            fault is not CameraFault.REFUSED and server is None and key in self._ports
            and self._server is not None  # not after stop()
        ):
            task = asyncio.get_running_loop().create_task(
                self._listen(key), name=f"hwsim camera {lane}/{camera} listen again"
            )
            self._reopening.add(task)
            task.add_done_callback(self._reopening.discard)
        _LOGGER.info("lane %s: simulated camera %s fault %s", lane, camera, fault or "cleared")

    async def listening(self) -> None:
        """Wait until cameras repaired from REFUSED listen on their ports again."""
        await asyncio.gather(*self._reopening)

    def visible_container(self, lane: str, camera: str) -> str | None:
        """The container number this camera has in view now (the truth), if any."""
        scene = self._scenes[lane]
        if scene is None or not scene.containers:
            return None
        seen = scene.containers[0] if self.cameras[camera].sees == "front" else scene.containers[-1]
        return seen.container_number

    # --- pictures ------------------------------------------------------------------------------

    def picture(self, lane: str, camera: str) -> bytes:
        """The JPEG the camera shows for the lane's current scene (rendered here, blocking)."""
        sim_camera = self.cameras[camera]
        scene = self._scenes[lane]
        seed = zlib.crc32(f"{lane}/{camera}/{scene.seed if scene else 0}".encode())
        if scene is None or not scene.containers:
            chassis = scene is not None and scene.chassis
            return encode_jpeg(render_empty(sim_camera.view, seed, chassis=chassis))
        seen = scene.containers[0] if sim_camera.sees == "front" else scene.containers[-1]
        if self.photos is not None and not scene.unreadable:
            photo = self.photos.pick(seen.container_number, camera, seed)
            if photo is not None:
                return photo.path.read_bytes()
        spec = random_spec(
            seed,
            container_number=seen.container_number,
            size_type=seen.size_type,
            view=sim_camera.view,
            camera=camera,
            difficulty=self.difficulty,
            legible=not scene.unreadable,
        )
        return encode_jpeg(render(spec).image)

    def _frame_future(self, lane: str, camera: str) -> Future[bytes]:
        assert self._executor is not None
        version = self._versions[lane]
        cached = self._frames.get((lane, camera))
        if cached is not None and cached[0] == version:
            return cached[1]
        future = self._executor.submit(self.picture, lane, camera)
        self._frames[(lane, camera)] = (version, future)
        return future

    async def _jpeg(self, lane: str, camera: str) -> bytes:
        jpeg = await asyncio.wrap_future(self._frame_future(lane, camera))
        if self._faults.get((lane, camera)) is CameraFault.CORRUPT:
            return corrupt_jpeg(jpeg)
        return jpeg

    # --- the server ------------------------------------------------------------------------------

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self._render_workers, thread_name_prefix="hwsim-camera-render"
        )
        self._server = await asyncio.start_server(self._accept, self.host, self._port)
        if self._camera_ports:
            for lane in self.lanes:
                for camera in self.cameras:
                    await self._listen((lane, camera))
        _LOGGER.info(
            "simulated cameras for lanes %s on http://%s:%d/lane/<lane>/<camera>/snapshot.jpg",
            ", ".join(self.lanes), self.host, self.port,
        )

    async def _listen(self, key: tuple[str, str]) -> None:
        """Open (or reopen, on the same port) one camera's own listening socket."""
        server = await asyncio.start_server(
            self._accept, self.host, self._ports.get(key, 0)
        )
        self._camera_servers[key] = server
        self._ports[key] = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await asyncio.gather(*self._reopening, return_exceptions=True)
        for server in self._camera_servers.values():
            server.close()
        for server in self._camera_servers.values():
            await server.wait_closed()
        self._camera_servers.clear()
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._frames.clear()

    async def __aenter__(self) -> CameraSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # our own named task per connection, so that stop() can cancel and await each one
        task = asyncio.get_running_loop().create_task(
            self._serve(reader, writer), name=f"hwsim-camera-connection-{id(writer):x}"
        )
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; True when the connection stays open for another."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(request_line) != 3 or request_line[0] != "GET":
            await _respond(writer, 400, b"only GET is served\n")
            return False
        target, version = request_line[1], request_line[2]
        keep_alive = version == "HTTP/1.1" and b"connection: close" not in head.lower()
        parts = [unquote(part) for part in target.split("?", 1)[0].split("/")]
        if (
            len(parts) != 5 or parts[1] != "lane" or parts[2] not in self._scenes
            or parts[3] not in self.cameras or parts[4] not in ("snapshot.jpg", "stream.mjpg")
        ):
            await _respond(writer, 404, b"no such camera\n", keep_alive)
            return keep_alive
        lane, camera, kind = parts[2], parts[3], parts[4]
        self.requests[(lane, camera, kind)] += 1

        fault = self._faults.get((lane, camera))
        if fault in (CameraFault.DOWN, CameraFault.REFUSED):
            _reset(writer)  # REFUSED reaches here only through the shared port
            return False
        if fault is CameraFault.UNAVAILABLE:
            await _respond(writer, 503, b"camera unavailable\n", keep_alive)
            return keep_alive
        if fault is CameraFault.SLOW:
            await asyncio.sleep(self.slow_delay_s)
        if kind == "stream.mjpg":
            await self._stream(lane, camera, writer)
            return False
        jpeg = await self._jpeg(lane, camera)
        await _respond(writer, 200, jpeg, keep_alive, content_type="image/jpeg")
        return keep_alive

    async def _stream(self, lane: str, camera: str, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\n"
            + f"Content-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n".encode()
            + b"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
        )
        while True:
            fault = self._faults.get((lane, camera))
            if fault is CameraFault.DOWN:
                _reset(writer)
                return
            if fault is not CameraFault.UNAVAILABLE:
                jpeg = await self._jpeg(lane, camera)
                writer.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                await writer.drain()
            await asyncio.sleep(1 / self.stream_fps)


def corrupt_jpeg(jpeg: bytes) -> bytes:
    """A JPEG as a failing camera or a broken link delivers it: damaged header, cut short."""
    damaged = bytearray(jpeg[: max(64, len(jpeg) * 3 // 5)])
    for offset in range(20, min(len(damaged), 600), 7):
        damaged[offset] ^= 0x5A
    return bytes(damaged)


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    keep_alive: bool = False,
    content_type: str = "text/plain",
) -> None:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset, so the client sees the camera drop rather than a clean end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
