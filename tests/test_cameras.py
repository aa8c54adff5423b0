"""Capture from the simulated IP cameras over real HTTP on loopback: snapshots, MJPEG streams,
and cameras that are down, broken, slow or unavailable."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import cv2
import httpx
import pytest

from gated.cameras import CameraError, CameraSet, CapturedImage, check_jpeg
from gated.config import CameraConfig, ImageStoreConfig
from gated.domain import DeviceHealth
from gated.image_store import ImageStore
from gated.ports import CapturedImage as CapturedImagePort
from hwsim.cameras import CameraFault, CameraSimulator, Scene, SceneContainer, SimCamera
from hwsim.images import PhotoFolder

FRONT = "TGHU7870036"
REAR = "CSQU3054383"
CAMERAS = (
    SimCamera("AH", "front_end_wall_from_above", "front"),
    SimCamera("AS", "door_end_from_above", "rear"),
)


@pytest.fixture
async def sim() -> AsyncIterator[CameraSimulator]:
    simulator = CameraSimulator(
        ["1", "2"], CAMERAS, difficulty=0.0, stream_fps=20.0, slow_delay_s=30.0
    )
    await simulator.start()
    simulator.set_scene(
        "1", Scene((SceneContainer(FRONT, "22G1"), SceneContainer(REAR, "22G1")), seed=7)
    )
    # pictures rendered before the tests start, so that a busy machine cannot turn a slow
    # render into a camera timeout
    await simulator.rendered("1")
    await simulator.rendered("2")
    yield simulator
    await simulator.stop()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(ImageStoreConfig(directory=str(tmp_path / "images")))


def _picture_shape(path: str | None) -> tuple[int, ...]:
    picture = cv2.imread(path or "")
    assert picture is not None, f"{path} does not decode"
    return tuple(picture.shape)


def _same_bytes(first: str | None, second: str | None) -> bool:
    return Path(first or "").read_bytes() == Path(second or "").read_bytes()


def _by_camera(images: Sequence[CapturedImagePort]) -> dict[str, CapturedImage]:
    return {image.camera: image for image in images if isinstance(image, CapturedImage)}


async def test_snapshots_of_every_camera_are_stored_with_the_transaction(
    sim: CameraSimulator, store: ImageStore, tmp_path: Path
) -> None:
    health: list[DeviceHealth] = []
    transaction = str(uuid.uuid4())
    async with CameraSet("1", sim.camera_configs("1"), store, health.append) as cameras:
        images = _by_camera(await cameras.capture(transaction))

    assert set(images) == {"AH", "AS"}
    for name, image in images.items():
        assert image.error is None and image.path is not None
        assert image.source == "snapshot"
        path = Path(image.path)
        assert path.name == f"{name}.jpg" and path.parent.name == transaction
        assert path.is_relative_to(tmp_path / "images")
        assert _picture_shape(image.path) == (1080, 1920, 3)
    # the pictures are of the truck's containers: front and rear cameras see different ones
    assert sim.visible_container("1", "AH") == FRONT
    assert sim.visible_container("1", "AS") == REAR
    assert not _same_bytes(images["AH"].path, images["AS"].path)
    assert sorted((h.device, h.up) for h in health) == [("camera AH", True), ("camera AS", True)]


async def test_a_frame_is_grabbed_from_the_mjpeg_stream(
    sim: CameraSimulator, store: ImageStore
) -> None:
    configs = sim.camera_configs("1", streams=True, timeout_s=5.0)
    async with CameraSet("1", configs, store) as cameras:
        images = _by_camera(await cameras.capture(uuid.uuid4()))
    for image in images.values():
        assert image.error is None and image.source == "stream"
        assert _picture_shape(image.path) == (1080, 1920, 3)
    assert sim.requests[("1", "AH", "stream.mjpg")] == 1
    assert sim.requests[("1", "AH", "snapshot.jpg")] == 0


async def test_a_broken_stream_falls_back_to_the_snapshot(
    sim: CameraSimulator, store: ImageStore
) -> None:
    base = sim.camera_configs("1", timeout_s=5.0)
    broken_stream = [
        base[0].model_copy(update={"stream_url": f"http://127.0.0.1:{sim.port}/nothing"}),
        base[1],
    ]
    async with CameraSet("1", broken_stream, store) as cameras:
        images = _by_camera(await cameras.capture(uuid.uuid4()))
    assert images["AH"].error is None and images["AH"].source == "snapshot"
    assert images["AS"].error is None


async def test_a_camera_down_fails_alone_and_reports_once(
    sim: CameraSimulator, store: ImageStore
) -> None:
    health: list[DeviceHealth] = []
    sim.set_fault("1", "AH", CameraFault.DOWN)
    async with CameraSet("1", sim.camera_configs("1"), store, health.append) as cameras:
        first = _by_camera(await cameras.capture(uuid.uuid4()))
        second = _by_camera(await cameras.capture(uuid.uuid4()))
        sim.set_fault("1", "AH", None)
        third = _by_camera(await cameras.capture(uuid.uuid4()))

    for images in (first, second):
        assert images["AH"].path is None
        assert images["AH"].error == "snapshot: connection dropped by the camera"
        assert images["AS"].error is None and images["AS"].path is not None
    assert third["AH"].error is None
    assert cameras.errors["AH"] == 2 and cameras.errors["AS"] == 0
    ah = [(h.up, h.detail) for h in health if h.device == "camera AH"]
    assert ah == [(False, "snapshot: connection dropped by the camera"), (True, "")]


async def test_a_camera_that_refuses_connections(store: ImageStore) -> None:
    # nothing listens on this port: the camera is off the network
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = CameraConfig(name="RF", snapshot_url=f"http://127.0.0.1:{port}/x.jpg", timeout_s=1)
    async with CameraSet("2", [config], store) as cameras:
        [image] = await cameras.capture(uuid.uuid4())
    assert image.error == "snapshot: cannot connect (refused or unreachable)"


async def test_corrupted_jpeg_is_refused_with_a_clear_error(
    sim: CameraSimulator, store: ImageStore
) -> None:
    sim.set_fault("1", "AS", CameraFault.CORRUPT)
    async with CameraSet("1", sim.camera_configs("1"), store) as cameras:
        images = _by_camera(await cameras.capture(uuid.uuid4()))
    assert images["AS"].path is None
    assert (images["AS"].error or "").startswith("corrupt JPEG")
    assert images["AH"].error is None


async def test_slow_and_unavailable_cameras_do_not_hold_up_the_others(
    sim: CameraSimulator, store: ImageStore
) -> None:
    sim.set_fault("1", "AH", CameraFault.SLOW)
    sim.set_fault("1", "AS", CameraFault.UNAVAILABLE)
    configs = sim.camera_configs("1", timeout_s=0.5)
    async with CameraSet("1", configs, store) as cameras:
        images = _by_camera(await cameras.capture(uuid.uuid4()))
    assert images["AH"].error == "snapshot: no answer within 0.5 s"
    assert images["AS"].error == "snapshot: HTTP 503"


async def test_lanes_are_independent_and_an_empty_portal_has_pictures_too(
    sim: CameraSimulator, store: ImageStore
) -> None:
    sim.set_fault("1", "AH", CameraFault.DOWN)
    async with CameraSet("2", sim.camera_configs("2"), store) as cameras:
        images = await cameras.capture(uuid.uuid4())
    assert all(image.error is None for image in images)
    assert sim.visible_container("2", "AH") is None


async def test_unknown_camera_path_is_not_found(sim: CameraSimulator) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{sim.port}/lane/9/AH/snapshot.jpg")
    assert response.status_code == 404


def test_check_jpeg_says_what_is_wrong() -> None:
    with pytest.raises(CameraError, match="not a JPEG"):
        check_jpeg(b"<html>login</html>")
    with pytest.raises(CameraError, match="truncated"):
        check_jpeg(b"\xff\xd8" + b"\x00" * 100)
    with pytest.raises(CameraError, match="does not decode"):
        check_jpeg(b"\xff\xd8" + b"\x11" * 100 + b"\xff\xd9")


async def test_with_a_photo_folder_the_cameras_show_real_photos(
    shared_data: Path, store: ImageStore
) -> None:
    folder = PhotoFolder(shared_data / "real_containers")
    number = folder.photos[0].container_number
    simulator = CameraSimulator(["1"], CAMERAS, photos=folder)
    await simulator.start()
    try:
        simulator.set_scene("1", Scene((SceneContainer(number),), seed=1))
        await simulator.rendered("1")
        async with CameraSet("1", simulator.camera_configs("1"), store) as cameras:
            images = _by_camera(await cameras.capture(uuid.uuid4()))
    finally:
        await simulator.stop()
    photos_of_it = [str(p.path) for p in folder.photos if p.container_number == number]
    for image in images.values():
        assert image.error is None
        # every camera served a real photo of that very container
        assert any(_same_bytes(image.path, photo) for photo in photos_of_it)


async def test_corrupted_stream_frames_are_not_stored(
    sim: CameraSimulator, store: ImageStore
) -> None:
    sim.set_fault("1", "AH", CameraFault.CORRUPT)
    configs = sim.camera_configs("1", streams=True, timeout_s=1.0)
    async with CameraSet("1", configs, store) as cameras:
        images = _by_camera(await cameras.capture(uuid.uuid4()))
    # the stream gives no decodable frame, the snapshot fallback is refused as corrupt
    assert images["AH"].path is None
    assert (images["AH"].error or "").startswith("corrupt JPEG")
    assert sim.requests[("1", "AH", "stream.mjpg")] == 1
    assert images["AS"].error is None and images["AS"].source == "stream"


async def test_an_unexpected_failure_costs_the_picture_not_the_capture(
    sim: CameraSimulator, tmp_path: Path
) -> None:
    class BrokenStore(ImageStore):
        def save(self, *args: object, **kwargs: object) -> Path:
            raise RuntimeError("disk gremlin")

    broken = BrokenStore(ImageStoreConfig(directory=str(tmp_path / "broken")))
    async with CameraSet("1", sim.camera_configs("1"), broken) as cameras:
        images = await cameras.capture(uuid.uuid4())
    assert [image.path for image in images] == [None, None]
    assert all("disk gremlin" in (image.error or "") for image in images)


async def test_a_camera_with_its_own_port_refuses_connections_then_recovers(
    store: ImageStore,
) -> None:
    health: list[DeviceHealth] = []
    simulator = CameraSimulator(["1"], CAMERAS, difficulty=0.0, camera_ports=True)
    await simulator.start()
    try:
        await simulator.rendered("1")
        configs = simulator.camera_configs("1", timeout_s=5.0)
        assert simulator.camera_port("1", "AH") != simulator.camera_port("1", "AS")
        async with CameraSet("1", configs, store, health.append) as cameras:
            simulator.set_fault("1", "AH", CameraFault.REFUSED)
            refused = _by_camera(await cameras.capture(uuid.uuid4()))
            simulator.set_fault("1", "AH", None)
            await simulator.listening()
            recovered = _by_camera(await cameras.capture(uuid.uuid4()))
    finally:
        await simulator.stop()
    assert refused["AH"].error == "snapshot: cannot connect (refused or unreachable)"
    assert refused["AS"].error is None
    assert recovered["AH"].error is None
    assert [(h.up, h.detail) for h in health if h.device == "camera AH"] == [
        (False, "snapshot: cannot connect (refused or unreachable)"), (True, ""),
    ]


async def test_refusing_needs_camera_ports(sim: CameraSimulator) -> None:
    with pytest.raises(ValueError, match="camera_ports"):
        sim.set_fault("1", "AH", CameraFault.REFUSED)
