"""The kiosk web application over HTTP (httpx against the ASGI app) with a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gated.config import KioskUser, SiteConfig
from gated.kiosk import KioskServer, create_app
from gated.kiosk.app import COOKIE
from gated.models import AuditLog, ContainerReadRow, GateTransaction, Move, OutboxEvent
from tests.kiosk_seed import FAST_HASHER, PASSWORDS, make_config, make_database, seed_trouble
from tests.test_resolution import RecordingEffects

LANES: list[dict[str, Any]] = [
    {
        "lane": "1",
        "direction": "in",
        "state": "trouble",
        "transaction_id": 1,
        "truck": "E2003412B802011526701234",
        "devices": [{"device": "plc", "up": True}, {"device": "rpm", "up": True}],
    },
    {"lane": "2", "direction": "out", "state": "idle", "devices": {"plc": False, "rpm": True}},
]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Site:
    config: SiteConfig
    sessions: sessionmaker[Session]
    effects: RecordingEffects
    clock: Clock
    app: Any
    tx_id: int


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    config = make_config(tmp_path)
    engine, sessions = make_database(config)
    with sessions() as session, session.begin():
        tx_id = seed_trouble(session, config)
    effects = RecordingEffects()
    clock = Clock()
    app = create_app(config, sessions, effects, lambda: LANES, clock=clock, hasher=FAST_HASHER)
    yield Site(config, sessions, effects, clock, app, tx_id)
    engine.dispose()


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=site.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kiosk.test") as http:
        yield http


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


async def login(
    client: httpx.AsyncClient, username: str, password: str | None = None
) -> httpx.Response:
    form = await client.get("/login")
    return await client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORDS[username] if password is None else password,
            "csrf_token": _csrf(form.text),
            "next": "/",
        },
    )


async def page_token(client: httpx.AsyncClient, path: str = "/") -> str:
    response = await client.get(path)
    assert response.status_code == 200
    return _csrf(response.text)


def _audit(site: Site) -> list[AuditLog]:
    with site.sessions() as session:
        return list(session.scalars(select(AuditLog).order_by(AuditLog.id)))


def _state(site: Site) -> str:
    with site.sessions() as session:
        return session.get_one(GateTransaction, site.tx_id).state


# --- security -------------------------------------------------------------------------------


PAGES = ["/", "/moves", "/history?container=BEAU", "/admin", "/transactions/1",
         "/transactions/1/ticket", "/transactions/1/images/1"]
APIS = ["/api/board", "/api/board/stream", "/api/transactions/1"]


async def test_no_page_or_api_without_login(client: httpx.AsyncClient, site: Site) -> None:
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=")
    for path in APIS:
        assert (await client.get(path)).status_code == 401, path
    for action in ("approve", "refuse", "inspect", "correct", "rerun-ocr", "print"):
        response = await client.post(
            f"/transactions/{site.tx_id}/{action}", data={"reason": "sneaky", "csrf_token": "x"}
        )
        assert response.status_code == 303
    assert site.effects.calls == []
    assert _audit(site) == []
    assert _state(site) == "trouble"


async def test_login_sets_a_strict_http_only_cookie(client: httpx.AsyncClient) -> None:
    response = await login(client, "clerk1")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    board = await client.get("/")
    assert board.status_code == 200
    assert "Content-Security-Policy" in board.headers
    assert board.headers["x-frame-options"] == "DENY"


async def test_wrong_password_and_rate_limit(client: httpx.AsyncClient, site: Site) -> None:
    for _ in range(5):
        response = await login(client, "clerk1", "guess")
        assert response.status_code == 401
        assert "Wrong user name or password" in response.text
    # the right password is refused too while locked
    locked = await login(client, "clerk1")
    assert locked.status_code == 429
    assert COOKIE not in client.cookies
    site.clock.now += 5 * 60 + 1
    assert (await login(client, "clerk1")).status_code == 303


async def test_unknown_users_are_limited_per_address(client: httpx.AsyncClient) -> None:
    for n in range(5):
        assert (await login(client, "clerk1", f"x{n}")).status_code == 401
    assert (await login(client, "super1")).status_code == 429


async def test_login_form_needs_its_csrf_token(client: httpx.AsyncClient) -> None:
    await client.get("/login")
    response = await client.post(
        "/login", data={"username": "clerk1", "password": PASSWORDS["clerk1"], "csrf_token": "x"}
    )
    assert response.status_code == 403
    assert COOKIE not in client.cookies


async def test_session_expires(client: httpx.AsyncClient, site: Site) -> None:
    await login(client, "clerk1")
    assert (await client.get("/")).status_code == 200
    site.clock.now += site.config.kiosk.session_minutes * 60 + 1
    assert (await client.get("/")).status_code == 303
    assert (await client.get("/api/board")).status_code == 401


async def test_forged_and_revoked_sessions_are_refused(client: httpx.AsyncClient) -> None:
    await login(client, "view1")
    cookie = client.cookies[COOKIE]
    payload, signature = cookie.rsplit(".", 1)
    forged = payload.replace("dmlld2Vy", "c3VwZXJ2aXNvcg")  # base64 of viewer -> supervisor
    client.cookies.set(COOKIE, f"{forged}.{signature}")
    assert (await client.get("/admin")).status_code == 303

    client.cookies.set(COOKIE, cookie)
    token = await page_token(client)
    assert (await client.post("/logout", data={"csrf_token": token})).status_code == 303
    client.cookies.set(COOKIE, cookie)  # a copy kept after logout is worthless
    assert (await client.get("/")).status_code == 303


async def test_csrf_rejected_on_actions(client: httpx.AsyncClient, site: Site) -> None:
    await login(client, "clerk1")
    url = f"/transactions/{site.tx_id}/refuse"
    missing = await client.post(url, data={"reason": "no booking"})
    wrong = await client.post(url, data={"reason": "no booking", "csrf_token": "forged"})
    header = await client.post(url, data={"reason": "x"}, headers={"X-CSRF-Token": "forged"})
    for response in (missing, wrong, header):
        assert response.status_code == 403
        assert "expired" in response.text
    assert _audit(site) == []
    assert _state(site) == "trouble"


async def test_viewer_cannot_act(client: httpx.AsyncClient, site: Site) -> None:
    await login(client, "view1")
    page = await client.get(f"/transactions/{site.tx_id}")
    assert page.status_code == 200
    assert "you can look, not act" in page.text
    assert "/approve" not in page.text
    token = _csrf(page.text)
    for action in ("approve", "refuse", "inspect", "correct", "rerun-ocr"):
        response = await client.post(
            f"/transactions/{site.tx_id}/{action}",
            data={"reason": "viewer tries", "container_number": "BEAU2656931", "csrf_token": token},
        )
        assert response.status_code == 403, action
        assert "may not act" in response.text
    assert site.effects.calls == []
    assert _audit(site) == []


async def test_clerk_cannot_open_configuration(client: httpx.AsyncClient) -> None:
    await login(client, "clerk1")
    assert (await client.get("/admin")).status_code == 403
    assert "/admin" not in (await client.get("/")).text


async def test_supervisor_sees_configuration_and_audit(client: httpx.AsyncClient) -> None:
    await login(client, "super1")
    response = await client.get("/admin")
    assert response.status_code == 200
    assert "clerk1" in response.text and "$argon2" not in response.text


async def test_login_never_redirects_off_site(client: httpx.AsyncClient) -> None:
    form = await client.get("/login?next=//evil.example/x")
    assert 'value="/"' in form.text


# --- clerk work -----------------------------------------------------------------------------


async def test_wrong_check_digit_rejected_with_reason(
    client: httpx.AsyncClient, site: Site
) -> None:
    await login(client, "clerk1")
    token = await page_token(client, f"/transactions/{site.tx_id}")
    response = await client.post(
        f"/transactions/{site.tx_id}/correct",
        data={"position": "0", "container_number": "BEAU2656932", "csrf_token": token},
    )
    assert response.status_code == 422
    assert "check digit of BEAU2656932 is wrong: for BEAU265693 it must be 1, not 2" in (
        response.text
    )
    assert 'value="BEAU2656932"' in response.text  # what was typed stays for fixing
    with site.sessions() as session:
        tx = session.get_one(GateTransaction, site.tx_id)
        assert tx.containers[0].container_number is None
    assert [a.action for a in _audit(site)] == ["correct_container_rejected"]


async def test_correct_approve_and_print(client: httpx.AsyncClient, site: Site) -> None:
    await login(client, "clerk1")
    url = f"/transactions/{site.tx_id}"
    token = await page_token(client, url)

    corrected = await client.post(
        f"{url}/correct",
        data={"position": "0", "container_number": "beau 265693-1", "csrf_token": token},
    )
    assert corrected.status_code == 303
    no_reason = await client.post(f"{url}/approve", data={"reason": "", "csrf_token": token})
    assert no_reason.status_code == 422
    assert "a reason is required" in no_reason.text
    approved = await client.post(
        f"{url}/approve", data={"reason": "read on AH image", "csrf_token": token}
    )
    assert approved.status_code == 303
    page = await client.get(url)
    assert "Approved, gate pass G1-000001." in page.text
    assert "BEAU2656931" in page.text
    assert "waiting for TOS" in page.text

    ticket = await client.get(f"{url}/ticket")
    assert ticket.status_code == 200
    assert "G1-000001" in ticket.text and "A1-12-03-2" in ticket.text
    reprint = await client.post(f"{url}/print", data={"csrf_token": token})
    assert reprint.status_code == 303

    assert site.effects.calls == [
        ("open_barrier", ("1", site.tx_id)),
        ("print_tickets", ("1", site.tx_id)),
        ("print_tickets", ("1", site.tx_id)),
    ]
    audit = _audit(site)
    assert [(a.action, a.username, a.role) for a in audit] == [
        ("correct_container", "clerk1", "clerk"),
        ("approve", "clerk1", "clerk"),
        ("print_tickets", "clerk1", "clerk"),
    ]
    assert audit[0].before["containers"][0]["container_number"] is None
    assert audit[0].after["containers"][0]["container_number"] == "BEAU2656931"
    assert audit[1].reason == "read on AH image"
    with site.sessions() as session:
        move = session.scalars(select(Move)).one()
        topics = [e.topic for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]
    assert move.container_number == "BEAU2656931" and move.acked_at is None
    assert topics == ["transactions", "moves", "transactions", "transactions"]

    moves = await client.get("/moves")
    assert "BEAU2656931" in moves.text and "gate in" in moves.text

    # the TOS acknowledges the move: the page says so and the waiting list is empty
    with site.sessions() as session, session.begin():
        session.get_one(Move, move.id).acked_at = datetime.now(UTC)
    assert "TOS acknowledged" in (await client.get(url)).text
    assert "Every move has been acknowledged" in (await client.get("/moves")).text


async def test_lane_failure_is_shown_to_the_clerk(client: httpx.AsyncClient, site: Site) -> None:
    site.effects.fail_barrier = True
    await login(client, "clerk1")
    url = f"/transactions/{site.tx_id}"
    token = await page_token(client, url)
    await client.post(
        f"{url}/correct", data={"position": "0", "container_number": "BEAU2656931",
                                "csrf_token": token}
    )
    await client.post(f"{url}/approve", data={"reason": "read on image", "csrf_token": token})
    page = await client.get(url)
    assert "The lane did not confirm: ConnectionError: lane 1: PLC not connected" in page.text


async def test_transaction_page_shows_the_evidence(client: httpx.AsyncClient, site: Site) -> None:
    await login(client, "view1")
    page = await client.get(f"/transactions/{site.tx_id}")
    html = page.text
    assert html.count('<figure class="shot"') == 3
    assert '<rect x="' in html and 'class="region"' in html
    assert "container number unreadable" in html
    assert "E2003412B802011526701234" in html  # truck tag
    assert "card …2446" in html and "ab" * 32 not in html  # last 4 only, never the hash
    assert "24,350 kg" in html
    assert "APT-0001" in html and "A1-12-03-2" in html
    assert re.search(r'<polyline class="gamma" points="[0-9., ]+"', html)

    image_paths = re.findall(r'src="(/transactions/\d+/images/\d+)"', html)
    image = await client.get(image_paths[0])
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content[:2] == b"\xff\xd8"
    assert (await client.get(f"/transactions/{site.tx_id}/images/999")).status_code == 404


async def test_board_and_queue(client: httpx.AsyncClient, site: Site) -> None:
    with site.sessions() as session, session.begin():
        newer = seed_trouble(session, site.config, lane="2", minutes_ago=1, reason="no appointment")
        older = seed_trouble(session, site.config, lane="1", minutes_ago=9.5)
    await login(client, "view1")
    board = (await client.get("/api/board")).json()
    assert [item["id"] for item in board["queue"]] == [older, site.tx_id, newer]
    assert board["queue"][2]["reasons"] == ["no appointment"]
    assert board["lanes"][1]["devices"] == [
        {"device": "plc", "up": False, "detail": ""},
        {"device": "rpm", "up": True, "detail": ""},
    ]
    html = (await client.get("/")).text
    assert html.index(f"/transactions/{older}") < html.index(f"/transactions/{newer}")
    # waiting since the decision (8 s after arrival): 9 min 22 s
    assert "Lane 2" in html and "9 min" in html


async def test_history_search(client: httpx.AsyncClient, site: Site) -> None:
    with site.sessions() as session, session.begin():
        other = seed_trouble(session, site.config, lane="2", read="TGHU7870036", truck_epc="E2FF")
    await login(client, "view1")
    by_container = (await client.get("/history?container=tghu787")).text
    assert f"/transactions/{other}" in by_container
    assert f'/transactions/{site.tx_id}"' not in by_container
    by_truck = (await client.get("/history?truck=E2FF")).text
    assert f"/transactions/{other}" in by_truck
    today = date.today().isoformat()
    by_day = (await client.get(f"/history?from={today}&to={today}")).text
    assert "2 transactions" in by_day
    assert "0 transactions" in (await client.get("/history?from=2001-01-01&to=2001-01-02")).text


async def test_board_stream_sends_the_board(site: Site) -> None:
    """The server-sent events stream, called as ASGI: one board event, then it ends when the
    kiosk stops (as it does when `gated run` shuts down)."""
    transport = httpx.ASGITransport(app=site.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kiosk.test") as http:
        await login(http, "view1")
        cookie = http.cookies[COOKIE]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await site.app.state.kiosk.stopping.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if b"event: board" in message.get("body", b""):
            site.app.state.kiosk.stopping.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/board/stream", "raw_path": b"/api/board/stream",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("kiosk.test", 80),
        "headers": [(b"host", b"kiosk.test"), (b"cookie", f"{COOKIE}={cookie}".encode())],
    }
    await site.app(scope, receive, send)
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    event = next(block for block in body.split("\n\n") if block.startswith("event: board"))
    data = json.loads(event.split("data: ", 1)[1])
    assert [lane["lane"] for lane in data["lanes"]] == ["1", "2"]
    assert data["queue"][0]["id"] == site.tx_id


async def test_server_stops_cleanly_with_a_board_stream_open(site: Site) -> None:
    """Cancelling `KioskServer.run()` (as `gated run` does on shutdown) ends open streams at
    once, also when the kiosk is mounted in another app (as `gated run` does beside /metrics)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/", app=site.app)])
    server = KioskServer(outer, "127.0.0.1", 0, grace_s=30)
    task = asyncio.create_task(server.run(), name="kiosk under test")
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base) as http:
        await login(http, "view1")
        async with http.stream("GET", "/api/board/stream") as stream:
            lines = stream.aiter_lines()
            async for line in lines:
                if line.startswith("event: board"):
                    break
            task.cancel()
            # the stream ends well before the 30 s grace: the kiosk was told to stop
            async with asyncio.timeout(10):
                rest = [line async for line in lines]
    assert all(not line.startswith("event: board") for line in rest)
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(10):
            await task
    assert not server.started or task.done()


async def test_images_only_from_the_image_directory(client: httpx.AsyncClient, site: Site) -> None:
    directory = Path(site.config.images.directory)
    secret = str(directory / ".." / "kiosk.secret")
    (directory / "link.jpg").symlink_to(Path(site.config.kiosk.secret_file))
    read_ids = []
    with site.sessions() as session, session.begin():
        for path in (secret, "link.jpg", "\x00x.jpg"):  # up and out, a symlink out, a NUL
            read = ContainerReadRow(transaction_id=site.tx_id, camera="X", image_path=path)
            session.add(read)
            session.flush()
            read_ids.append(read.id)
    await login(client, "view1")
    for read_id in read_ids:
        response = await client.get(f"/transactions/{site.tx_id}/images/{read_id}")
        assert response.status_code == 404
        assert b"image not available" in response.content
    assert (await client.get(f"/transactions/{site.tx_id}")).status_code == 200
    # the read of another transaction is not served under this one
    other = await client.get(f"/transactions/{site.tx_id + 1}/images/1")
    assert other.status_code == 404


async def test_board_stream_ends_when_the_session_expires(site: Site) -> None:
    transport = httpx.ASGITransport(app=site.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kiosk.test") as http:
        await login(http, "view1")
        cookie = http.cookies[COOKIE]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never leaves on its own
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if b"event: board" in message.get("body", b""):
            site.clock.now += site.config.kiosk.session_minutes * 60 + 1

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/board/stream", "raw_path": b"/api/board/stream",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("kiosk.test", 80),
        "headers": [(b"host", b"kiosk.test"), (b"cookie", f"{COOKIE}={cookie}".encode())],
    }
    await site.app(scope, receive, send)  # returns: the stream ended by itself
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    assert body.index("event: board") < body.index("event: logout")
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}

    # and an expired cookie does not open a stream at all
    sent.clear()
    await site.app(scope, receive, send)
    assert sent[0]["status"] == 401


def test_image_size_from_headers(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from gated.kiosk.views import image_size

    picture = np.zeros((37, 53, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.jpg"), picture)
    cv2.imwrite(str(tmp_path / "a.png"), picture)
    (tmp_path / "a.txt").write_text("not an image")
    assert image_size(tmp_path / "a.jpg") == (53, 37)
    assert image_size(tmp_path / "a.png") == (53, 37)
    assert image_size(tmp_path / "a.txt") is None
    assert image_size(tmp_path / "missing.jpg") is None


def test_lane_board_accepts_health_objects_and_partial_rows() -> None:
    from gated.domain import DeviceHealth
    from gated.kiosk.views import normalise_lane

    lane = normalise_lane(
        {
            "lane": "7",
            "state": "IDENTIFYING",
            "truck": None,
            "containers": ["MSKU6011672", None],
            "devices": [
                DeviceHealth("7", "plc", False, "no heartbeat"),
                {"device": "rpm", "up": 1},
            ],
        }
    )
    assert lane["state"] == "identifying"
    assert lane["containers"] == ["MSKU6011672", "not read"]
    assert lane["devices"] == [
        {"device": "plc", "up": False, "detail": "no heartbeat"},
        {"device": "rpm", "up": True, "detail": ""},
    ]
    assert lane["devices_down"] == 1
    assert normalise_lane({})["lane"] == "?"


def test_lane_board_from_runners_and_health() -> None:
    from gated.domain import DeviceHealth
    from gated.health import HealthBoard
    from gated.kiosk.board import lane_board
    from gated.kiosk.views import normalise_lane

    class Runner:
        def __init__(self, lane: str, state: str) -> None:
            self.lane, self.state = lane, state

        def board(self) -> dict[str, Any]:
            return {"lane": self.lane, "state": self.state, "transaction_id": None}

    health = HealthBoard()
    health.report(DeviceHealth("1", "plc", True))
    health.report(DeviceHealth("2", "rpm", False, "heartbeat stopped"))
    board = lane_board({"1": Runner("1", "idle"), "2": Runner("2", "trouble")}, health)
    rows = [normalise_lane(row) for row in board()]
    assert [(r["lane"], r["state"], r["devices_down"]) for r in rows] == [
        ("1", "idle", 0),
        ("2", "trouble", 1),
    ]
    assert rows[1]["devices"][0]["detail"] == "heartbeat stopped"


async def test_a_broken_password_hash_fails_closed(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    broken = config.kiosk.model_copy(
        update={"users": [KioskUser(username="clerk1", role="clerk", password_hash="plain")]}
    )
    config = config.model_copy(update={"kiosk": broken})
    engine, sessions = make_database(config)
    app = create_app(config, sessions, RecordingEffects(), list, hasher=FAST_HASHER)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kiosk.test") as http:
        assert (await login(http, "clerk1", "plain")).status_code == 401
        assert COOKIE not in http.cookies
    engine.dispose()


async def test_logins_and_actions_are_counted(tmp_path: Path) -> None:
    from gated.metrics import Metrics

    config = make_config(tmp_path)
    engine, sessions = make_database(config)
    with sessions() as session, session.begin():
        tx_id = seed_trouble(session, config)
    metrics = Metrics()
    app = create_app(
        config, sessions, RecordingEffects(), list, hasher=FAST_HASHER, metrics=metrics
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kiosk.test") as http:
        await login(http, "clerk1", "wrong")
        await login(http, "clerk1")
        token = await page_token(http, f"/transactions/{tx_id}")
        await http.post(f"/transactions/{tx_id}/approve", data={"reason": "x", "csrf_token": "no"})
        await http.post(f"/transactions/{tx_id}/approve", data={"reason": "", "csrf_token": token})
        await http.post(f"/transactions/{tx_id}/rerun-ocr", data={"csrf_token": token})
    engine.dispose()
    assert metrics.counter("gated_kiosk_logins_total", result="wrong_password") == 1
    assert metrics.counter("gated_kiosk_logins_total", result="ok") == 1
    assert metrics.counter("gated_kiosk_csrf_refused_total") == 1
    assert metrics.counter("gated_kiosk_actions_total", action="approve", result="refused") == 1
    assert metrics.counter("gated_kiosk_actions_total", action="rerun-ocr", result="applied") == 1


async def test_ids_that_cannot_exist_are_404(client: httpx.AsyncClient) -> None:
    await login(client, "view1")
    huge = "9" * 23
    for path in (f"/transactions/{huge}", f"/transactions/1/images/{huge}", "/transactions/0"):
        assert (await client.get(path)).status_code == 404, path
    assert (await client.get(f"/api/transactions/{huge}")).json() == {
        "error": f"No transaction {huge}."
    }
