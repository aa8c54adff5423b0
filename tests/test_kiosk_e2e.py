"""End to end in headless Chromium: a clerk resolves an unreadable container.

The kiosk runs in uvicorn on a loopback port, on a real SQLite file. The only fake is the lane
(`LaneEffects`), which records what the clerk's decision asked of it and moves the lane board
on, as the lane runner would. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gated.kiosk import KioskServer, create_app
from gated.models import Move, OutboxEvent
from tests.kiosk_seed import FAST_HASHER, PASSWORDS, make_config, make_database, seed_trouble
from tests.test_resolution import RecordingEffects

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="chromium not installed")

ALL_UP = ["camera AH", "camera LF", "camera RF", "rfid", "rpm", "plc", "card reader", "printer"]


def _devices(down: dict[str, str] | None = None) -> list[dict[str, Any]]:
    down = down or {}
    return [{"device": d, "up": d not in down, "detail": down.get(d, "")} for d in ALL_UP]


class LaneBoard:
    """What the lane runner would report; the fake lane moves it on when the barrier opens."""

    def __init__(self, trouble_id: int, inspection_id: int) -> None:
        self.lanes: list[dict[str, Any]] = [
            {"lane": "1", "direction": "in", "state": "trouble", "transaction_id": trouble_id,
             "truck": "E2003412B802011526701234", "devices": _devices()},
            {"lane": "2", "direction": "out", "state": "identifying", "transaction_id": None,
             "truck": "E2003412B80201152670A7C1", "containers": ["CMAU4112805"],
             "devices": _devices()},
            {"lane": "3", "direction": "in", "state": "idle", "transaction_id": None,
             "truck": None, "devices": _devices({"printer": "paper out"})},
            {"lane": "4", "direction": "out", "state": "inspection",
             "transaction_id": inspection_id, "truck": "E20034120000000000000B7F",
             "devices": _devices()},
        ]

    def __call__(self) -> list[dict[str, Any]]:
        return [dict(lane) for lane in self.lanes]


class LaneFake(RecordingEffects):
    def __init__(self, board: LaneBoard) -> None:
        super().__init__()
        self.board = board

    async def open_barrier(self, lane: str, transaction_id: int) -> None:
        await super().open_barrier(lane, transaction_id)
        for row in self.board.lanes:
            if row["lane"] == lane:
                row["state"] = "leaving"


@pytest.fixture
async def kiosk(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    config = make_config(tmp_path, lanes=4)
    engine, sessions = make_database(config)
    # synthetic pictures: the screenshots may be published (docs/images), the real photos not
    seed: dict[str, Any] = {"photo_source": "synthetic"}
    with sessions() as session, session.begin():
        seed_trouble(
            session, config, lane="3", truck_epc="E200AA", minutes_ago=11, read="MSKU6011672",
            reason="no appointment for MSKU6011672", **seed,
        )
        trouble_id = seed_trouble(session, config, lane="1", minutes_ago=4, **seed)
        inspection_id = seed_trouble(
            session, config, lane="4", truck_epc="E200BB", minutes_ago=2, read="TGHU7870036",
            reason="gamma alarm at the portal", rpm_alarm=True, state="inspection", **seed,
        )
    board = LaneBoard(trouble_id, inspection_id)
    effects = LaneFake(board)
    app = create_app(config, sessions, effects, board, hasher=FAST_HASHER, board_interval_s=0.3)
    server = KioskServer(app, "127.0.0.1", 0, grace_s=2)
    task = asyncio.create_task(server.run(), name="kiosk under test")
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started and server.port
    yield {
        "url": f"http://127.0.0.1:{server.port}",
        "sessions": sessions,
        "effects": effects,
        "trouble_id": trouble_id,
    }
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    engine.dispose()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_clerk_resolves_unreadable_container(
    kiosk: dict[str, Any], browser: Any, repo_root: Path
) -> None:
    artifacts = repo_root / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    page = await context.new_page()
    failed_requests: list[str] = []
    # requests cut short by leaving a page (the board stream, lazy images) are not failures;
    # anything else that fails or answers with an error (but the refused number, 422) is
    def request_failed(request: Any) -> None:
        if request.failure != "net::ERR_ABORTED":
            failed_requests.append(f"{request.url} {request.failure}")

    def response(answer: Any) -> None:
        if answer.status >= 400 and answer.status != 422:
            failed_requests.append(f"{answer.url} {answer.status}")

    page.on("response", response)
    # a script error or a Content-Security-Policy violation shows up as a console error
    console_errors: list[str] = []
    page.on(
        "console",
        lambda message: console_errors.append(message.text) if message.type == "error" else None,
    )
    page.on("requestfailed", request_failed)
    base = kiosk["url"]
    tx = kiosk["trouble_id"]

    # not logged in: the board sends the clerk to the login page
    await page.goto(f"{base}/")
    assert "/login" in page.url
    await page.fill("input[name=username]", "clerk1")
    await page.fill("input[name=password]", PASSWORDS["clerk1"])
    await page.click("button[type=submit]")
    await page.wait_for_selector("[data-lanes] .lane")
    await page.wait_for_selector("[data-live]:text('live')")

    # the queue, oldest first, with the reasons
    items = page.locator("[data-queue] .queue-item")
    assert await items.count() == 3
    assert "no appointment" in await items.nth(0).inner_text()
    assert "container number unreadable" in await items.nth(1).inner_text()
    await page.screenshot(path=str(artifacts / "kiosk-board.png"))

    # the transaction: every camera image loaded, regions drawn
    await items.nth(1).click()
    await page.wait_for_url(f"{base}/transactions/{tx}")
    # (no wait_for_function: its polling evaluates strings, which the page's CSP forbids)
    images = await page.locator("figure.shot img").all()
    assert len(images) == 3
    for image in images:
        width = await image.evaluate(
            "i => i.complete ? i.naturalWidth : new Promise(done => {"
            " i.onload = () => done(i.naturalWidth); i.onerror = () => done(0); })"
        )
        assert width == 1920
    assert await page.locator("svg.overlay rect.region").count() >= 2
    await page.screenshot(path=str(artifacts / "kiosk-transaction.png"), full_page=True)

    # a wrong check digit: the page says so while typing, the server refuses it
    number = page.locator("input[name=container_number]")
    await number.fill("BEAU2656932")
    hint = page.locator("[data-iso6346-hint]")
    assert await hint.inner_text() == "check digit should be 1, not 2"
    await page.click("form.correct button[type=submit]")
    error = page.locator("[data-action-error]")
    assert "must be 1, not 2" in await error.inner_text()

    # the right number, then approve with a reason
    await page.locator("input[name=container_number]").fill("BEAU 265693 1")
    assert await hint.inner_text() == "check digit 1 is right"
    await page.click("form.correct button[type=submit]")
    await page.wait_for_selector(".flash-ok:text('Container set to BEAU2656931')")
    await page.click("button.chip:text('Read on image')")
    await page.click("button[data-action=approve]")
    await page.wait_for_selector(".flash-ok:text('Approved, gate pass G1-000001')")
    assert await page.locator(".state-badge").inner_text() == "APPROVED"

    assert kiosk["effects"].calls[:2] == [
        ("open_barrier", ("1", tx)),
        ("print_tickets", ("1", tx)),
    ]
    with kiosk["sessions"]() as session:
        move = session.scalars(select(Move).where(Move.transaction_id == tx)).one()
        events = session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == "moves")
        ).all()
    assert move.container_number == "BEAU2656931" and move.acked_at is None
    payloads = [json.loads(e.payload) for e in events]
    assert [(p["event_id"], p["move"]["container_number"]) for p in payloads] == [
        (move.event_id, "BEAU2656931")
    ]

    # the printable gate pass, the move waiting for the TOS, the history
    await page.click("a:text('Printable page')")
    await page.wait_for_selector(".ticket .yard:text('A1-12-03-2')")
    await page.screenshot(path=str(artifacts / "kiosk-ticket.png"))
    await page.click("nav a:text('TOS moves')")
    await page.wait_for_selector("td:text('BEAU2656931')")
    await page.screenshot(path=str(artifacts / "kiosk-moves.png"))
    await page.click("nav a:text('History')")
    await page.fill("input[name=container]", "beau265")
    await page.click("form.search button[type=submit]")
    await page.wait_for_selector("td:text('BEAU2656931')")
    assert await page.locator("table tbody tr").count() == 1
    await page.screenshot(path=str(artifacts / "kiosk-history.png"))

    # back on the board the lane has moved on (live) and the queue is one shorter
    await page.goto(f"{base}/")
    await page.wait_for_selector(".lane.state-leaving")
    assert await page.locator("[data-queue] .queue-item").count() == 2
    assert failed_requests == []
    # the refused number answered 422, which Chromium logs as a failed resource load
    assert [e for e in console_errors if "422" not in e] == []
    await context.close()


async def test_touch_screen_layout(kiosk: dict[str, Any], browser: Any, repo_root: Path) -> None:
    """On a 1024 x 768 touch screen: one column, nothing wider than the screen, big targets."""
    context = await browser.new_context(viewport={"width": 1024, "height": 768}, has_touch=True)
    page = await context.new_page()
    await page.goto(f"{kiosk['url']}/login")
    await page.fill("input[name=username]", "super1")
    await page.fill("input[name=password]", PASSWORDS["super1"])
    await page.tap("button[type=submit]")
    await page.wait_for_selector("[data-queue] .queue-item")
    await page.tap("[data-queue] .queue-item >> nth=1")
    await page.wait_for_selector("button[data-action=approve]")

    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for selector in ("button[data-action=approve]", "button[data-action=refuse]",
                     "input[name=container_number]", "button.chip", "nav a"):
        box = await page.locator(selector).first.bounding_box()
        assert box is not None and box["height"] >= 44, selector
    await page.screenshot(
        path=str(repo_root / "test-artifacts" / "kiosk-transaction-touch.png"), full_page=True
    )

    # the supervisor's page: users and the audit log
    await page.tap("nav a:text('Admin')")
    await page.wait_for_selector("td:text('clerk1')")
    await page.screenshot(path=str(repo_root / "test-artifacts" / "kiosk-admin.png"))
    await context.close()
