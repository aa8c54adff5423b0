"""The clerk kiosk web application: lane board, trouble queue, transactions, actions, history.

Pages are rendered on the server (Jinja2, autoescaped); the board updates itself over
server-sent events. Every route except the login page and the static files needs a session;
every POST needs the session's CSRF token; roles are checked on the server.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from argon2 import PasswordHasher
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from gated.config import SiteConfig
from gated.effects import LaneEffects
from gated.kiosk import views
from gated.kiosk.asgi import EventStream, SecurityHeaders
from gated.kiosk.auth import Authenticator, KioskSession, load_secret
from gated.resolution import ActionRefused, Actor, Outcome, Resolver

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
COOKIE = "gated_kiosk"
# kiosk database reads at once; asyncio's default executor, shared with the lanes, has
# min(32, cores + 4) threads, and the database pool 15 connections
DB_READERS = 2
LOGIN_NONCE_COOKIE = "gated_kiosk_login"
STATIC_FILES = ("kiosk.css", "kiosk.js", "favicon.svg")
PUBLIC_PATHS = frozenset({"/login", *(f"/static/{name}" for name in STATIC_FILES)})
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_ID = 2**63 - 1  # database ids are signed 64-bit; a larger one in a URL exists nowhere


class Counters(Protocol):
    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add to a named counter with labels."""


def _no_count(name: str, amount: float = 1.0, **labels: str) -> None:
    """Counting switched off (no metrics given)."""


class LoginRequired(Exception):
    """No valid session: pages redirect to the login page, the API answers 401."""


class NotFound(Exception):
    """Nothing of that id can exist: a 404 before the database is asked."""


class Forbidden(Exception):
    """A valid session, but not allowed: wrong role or a missing / wrong CSRF token."""


def _format_time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return views.aware(moment).strftime("%Y-%m-%d %H:%M:%S UTC")  # type: ignore[union-attr]


class Kiosk:
    """State shared by the routes: configuration, database, lane effects and the login keeper."""

    def __init__(
        self,
        config: SiteConfig,
        session_factory: Callable[[], Session],
        effects: LaneEffects,
        lane_board: Callable[[], list[dict[str, Any]]],
        clock: Callable[[], float],
        hasher: PasswordHasher | None,
        board_interval_s: float,
    ) -> None:
        self.config = config
        self.sessions = session_factory
        self.lane_board = lane_board
        self.clock = clock
        self.board_interval_s = board_interval_s
        self.auth = Authenticator(
            config.kiosk, load_secret(config.kiosk.secret_file), clock, hasher
        )
        self.resolver = Resolver(config, session_factory, effects)
        self.stopping = asyncio.Event()
        self._readers = asyncio.Semaphore(DB_READERS)
        self.flashes: dict[str, list[tuple[str, str]]] = {}
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _format_time
        self.templates.filters["kg"] = lambda v: "" if v is None else f"{v:,.0f} kg"
        self.static = {
            name: (HERE / "static" / name).read_bytes() for name in STATIC_FILES
        }

    # --- rendering ----------------------------------------------------------------------

    def page(
        self,
        request: Request,
        template: str,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        user: KioskSession | None = getattr(request.state, "user", None)
        flashes = self.flashes.pop(user.session_id, []) if user else []
        html = self.templates.get_template(template).render(
            user=user,
            csrf=user.csrf_token if user else "",
            site=self.config.site_id,
            gate=self.config.gate_id,
            flashes=flashes,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def flash(self, user: KioskSession, kind: str, text: str) -> None:
        self.flashes.setdefault(user.session_id, []).append((kind, text))
        if len(self.flashes) > 1000:  # sessions that never came back
            self.flashes.pop(next(iter(self.flashes)))

    async def read(self, work: Callable[[Session], T]) -> T:
        """Run a database read in a worker thread: the lanes share this event loop, and a
        clerk's history search must not hold up a truck's decision. At most DB_READERS at
        once, so that clerks cannot take every thread and connection the lanes also use."""

        def run() -> T:
            with self.sessions() as session:
                return work(session)

        async with self._readers:
            return await asyncio.to_thread(run)

    async def board_payload(self) -> dict[str, Any]:
        try:
            lanes = [views.normalise_lane(lane) for lane in self.lane_board()]
        except Exception as exc:  # the board must keep working when the runner misbehaves
            _LOGGER.warning("kiosk: lane board unavailable: %s", exc)
            lanes = []
        queue, waiting = await self.read(
            lambda session: (views.trouble_queue(session), views.count_waiting_moves(session))
        )
        return {"lanes": lanes, "queue": queue, "waiting_moves": waiting}


def create_app(
    config: SiteConfig,
    session_factory: Callable[[], Session],
    effects: LaneEffects,
    lane_board: Callable[[], list[dict[str, Any]]],
    *,
    clock: Callable[[], float] = time.time,
    hasher: PasswordHasher | None = None,
    board_interval_s: float = 1.0,
    metrics: Counters | None = None,
) -> FastAPI:
    """The kiosk ASGI app. `lane_board` returns each lane's live state from the lane runner;
    `clock` (seconds) drives session expiry and login limits, so tests can move it; `metrics`
    (e.g. `gated.metrics.Metrics`) counts logins, actions and lane failures for /metrics."""
    count = metrics.inc if metrics is not None else _no_count
    kiosk = Kiosk(config, session_factory, effects, lane_board, clock, hasher, board_interval_s)
    if not config.kiosk.users:
        _LOGGER.warning("kiosk: no users configured, nobody can log in (gated kiosk add-user)")

    async def guard(request: Request) -> None:
        """Every route: a valid session, and on anything but GET the session's CSRF token."""
        if request.url.path in PUBLIC_PATHS:
            return
        for name, what in (("tx_id", "transaction"), ("read_id", "image")):
            value = request.path_params.get(name)
            if value is not None and not (str(value).isdigit() and 0 < int(value) <= MAX_ID):
                raise NotFound(f"No {what} {str(value)[:30]}.")
        user = kiosk.auth.verify(request.cookies.get(COOKIE))
        if user is None:
            raise LoginRequired()
        request.state.user = user
        if request.method in ("GET", "HEAD"):
            return
        token = request.headers.get("x-csrf-token")
        if token is None:
            form = await request.form()
            value = form.get("csrf_token")
            token = value if isinstance(value, str) else None
        if not token or not hmac.compare_digest(token, user.csrf_token):
            _LOGGER.warning(
                "kiosk: CSRF token refused for %s on %s", user.username, request.url.path
            )
            count("gated_kiosk_csrf_refused_total")
            raise Forbidden("The form has expired or did not come from this kiosk. Reload it.")

    app = FastAPI(
        title="gated kiosk",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(guard)],
    )
    app.state.kiosk = kiosk

    app.add_middleware(SecurityHeaders)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, _exc: LoginRequired) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "login required"}, status_code=401)
        target = request.url.path if request.method == "GET" else "/"
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=404)
        return kiosk.page(request, "error.html", status_code=404, message=str(exc))

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": str(exc)}, status_code=403)
        return kiosk.page(request, "error.html", status_code=403, message=str(exc))

    def require(user: KioskSession, allowed: bool, what: str) -> None:
        if not allowed:
            raise Forbidden(f"{user.username} ({user.role}) may not {what}.")

    # --- static files and login ----------------------------------------------------------

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        body = kiosk.static.get(name)
        if body is None:
            return Response("not found", status_code=404)
        media = STATIC_TYPES[Path(name).suffix]
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=300"})

    def login_page(request: Request, error: str = "", status_code: int = 200) -> Response:
        nonce = secrets.token_urlsafe(16)
        response = kiosk.page(
            request,
            "login.html",
            status_code=status_code,
            error=error,
            login_csrf=kiosk.auth.login_csrf(nonce),
            next=_safe_next(request.query_params.get("next")),
        )
        response.set_cookie(
            LOGIN_NONCE_COOKIE, nonce, httponly=True, samesite="strict",
            secure=config.kiosk.cookie_secure, max_age=3600,
        )
        return response

    @app.get("/login")
    async def login_form(request: Request) -> Response:
        return login_page(request)

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        username = str(form.get("username") or "")[:64]
        password = str(form.get("password") or "")[:256]
        address = request.client.host if request.client else "?"
        if not kiosk.auth.check_login_csrf(
            request.cookies.get(LOGIN_NONCE_COOKIE), str(form.get("csrf_token") or "")
        ):
            count("gated_kiosk_logins_total", result="bad_csrf")
            return login_page(request, "The login form expired. Try again.", 403)
        wait = kiosk.auth.limiter.retry_after(username, address)
        if wait > 0:
            count("gated_kiosk_logins_total", result="limited")
            _LOGGER.warning(
                "kiosk: login of %r from %s refused: too many failures", username, address
            )
            return login_page(
                request, f"Too many failed logins. Try again in {int(wait // 60) + 1} min.", 429
            )
        user = await kiosk.auth.check_password_off_loop(username, password)
        if user is None:
            kiosk.auth.limiter.failed(username, address)
            count("gated_kiosk_logins_total", result="wrong_password")
            _LOGGER.info("kiosk: failed login for %r from %s", username, address)
            return login_page(request, "Wrong user name or password.", 401)
        kiosk.auth.limiter.succeeded(username)
        count("gated_kiosk_logins_total", result="ok")
        cookie, session = kiosk.auth.issue(user)
        _LOGGER.info("kiosk: %s (%s) logged in from %s", user.username, user.role, address)
        response = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
        response.set_cookie(
            COOKIE, cookie, httponly=True, samesite="strict", secure=config.kiosk.cookie_secure,
            max_age=int(session.expires_at - kiosk.clock()),
        )
        response.delete_cookie(LOGIN_NONCE_COOKIE)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        user: KioskSession = request.state.user
        kiosk.auth.revoke(user)
        kiosk.flashes.pop(user.session_id, None)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # --- board, queue, moves, history ---------------------------------------------------

    @app.get("/")
    async def board(request: Request) -> Response:
        return kiosk.page(request, "board.html", **await kiosk.board_payload())

    @app.get("/api/board")
    async def board_json() -> Response:
        return JSONResponse(await kiosk.board_payload())

    @app.get("/api/board/stream")
    async def board_stream(request: Request) -> Response:
        cookie = request.cookies.get(COOKIE)

        async def events() -> AsyncIterator[str]:
            last = ""
            quiet = 0.0
            yield f"retry: {int(kiosk.board_interval_s * 2000)}\n\n"
            while not kiosk.stopping.is_set():
                if kiosk.auth.verify(cookie) is None:
                    yield "event: logout\ndata: {}\n\n"
                    return
                text = json.dumps(await kiosk.board_payload(), separators=(",", ":"), default=str)
                if text != last:
                    yield f"event: board\ndata: {text}\n\n"
                    last, quiet = text, 0.0
                elif quiet >= 15.0:
                    yield ": keepalive\n\n"
                    quiet = 0.0
                try:
                    async with asyncio.timeout(kiosk.board_interval_s):
                        await kiosk.stopping.wait()
                except TimeoutError:
                    quiet += kiosk.board_interval_s

        return EventStream(events())

    @app.get("/moves")
    async def moves(request: Request) -> Response:
        rows = await kiosk.read(views.waiting_moves)
        return kiosk.page(request, "moves.html", moves=rows)

    @app.get("/history")
    async def history(request: Request) -> Response:
        params = request.query_params
        container = params.get("container", "")[:16]
        truck = params.get("truck", "")[:64]
        day_from = views.parse_day(params.get("from"))
        day_to = views.parse_day(params.get("to"))
        searched = any((container, truck, day_from, day_to))
        rows = []
        if searched:
            rows = await kiosk.read(
                lambda session: views.history(session, container, truck, day_from, day_to)
            )
        return kiosk.page(
            request,
            "history.html",
            rows=rows,
            searched=searched,
            query={
                "container": container,
                "truck": truck,
                "from": day_from.isoformat() if day_from else "",
                "to": day_to.isoformat() if day_to else "",
            },
        )

    @app.get("/admin")
    async def admin(request: Request) -> Response:
        user: KioskSession = request.state.user
        require(user, user.can_configure, "see or change the configuration")
        entries = await kiosk.read(
            lambda session: [
                {"at": a.at, "username": a.username, "role": a.role, "action": a.action,
                 "transaction_id": a.transaction_id, "reason": a.reason}
                for a in views.recent_audit(session)
            ]
        )
        return kiosk.page(
            request,
            "admin.html",
            audit=entries,
            users=[(u.username, u.role) for u in config.kiosk.users],
            lanes=config.lanes,
        )

    # --- one transaction ------------------------------------------------------------------

    async def transaction_view(tx_id: int) -> dict[str, Any] | None:
        return await kiosk.read(lambda session: views.transaction_view(session, tx_id, config))

    async def transaction_page(
        request: Request, tx_id: int, status_code: int = 200, **extra: Any
    ) -> Response:
        view = await transaction_view(tx_id)
        if view is None:
            return kiosk.page(
                request, "error.html", status_code=404, message=f"No transaction {tx_id}."
            )
        return kiosk.page(request, "transaction.html", status_code=status_code, tx=view, **extra)

    @app.get("/transactions/{tx_id}")
    async def transaction(request: Request, tx_id: int) -> Response:
        return await transaction_page(request, tx_id)

    @app.get("/api/transactions/{tx_id}")
    async def transaction_json(tx_id: int) -> Response:
        view = await transaction_view(tx_id)
        if view is None:
            return JSONResponse({"error": "no such transaction"}, status_code=404)
        return JSONResponse(json.loads(json.dumps(view, default=str)))

    @app.get("/transactions/{tx_id}/images/{read_id}")
    async def image(tx_id: int, read_id: int) -> Response:
        path = await kiosk.read(lambda session: views.image_file(session, config, tx_id, read_id))
        # read in the loop: images are local, and no worker thread is left behind
        try:
            if path is None or path.stat().st_size > MAX_IMAGE_BYTES:
                raise FileNotFoundError
            body = path.read_bytes()
        except (OSError, ValueError):
            return Response("image not available", status_code=404, media_type="text/plain")
        media = "image/png" if body[:4] == b"\x89PNG" else "image/jpeg"
        return Response(body, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/transactions/{tx_id}/ticket")
    async def ticket(request: Request, tx_id: int) -> Response:
        view = await transaction_view(tx_id)
        if view is None or not view["gate_pass_number"]:
            return kiosk.page(
                request, "error.html", status_code=404,
                message=f"Transaction {tx_id} has no gate pass (it has not been let through).",
            )
        return kiosk.page(request, "ticket.html", tx=view)

    @app.post("/transactions/{tx_id}/{action}")
    async def act(request: Request, tx_id: int, action: str) -> Response:
        user: KioskSession = request.state.user
        require(user, user.can_act, "act on transactions")
        form = await request.form()
        actor = Actor(user.username, user.role)
        reason = str(form.get("reason") or "")
        outcome: Outcome
        try:
            if action == "correct":
                try:
                    position = int(str(form.get("position") or "0"))
                except ValueError:
                    raise ActionRefused("the container position is 0 or 1") from None
                number = str(form.get("container_number") or "")
                outcome = await kiosk.resolver.correct_container(
                    actor, tx_id, position, number, reason
                )
            elif action == "rerun-ocr":
                outcome = await kiosk.resolver.rerun_ocr(actor, tx_id)
            elif action == "approve":
                outcome = await kiosk.resolver.approve(actor, tx_id, reason)
            elif action == "refuse":
                outcome = await kiosk.resolver.refuse(actor, tx_id, reason)
            elif action == "inspect":
                outcome = await kiosk.resolver.send_to_inspection(actor, tx_id, reason)
            elif action == "print":
                outcome = await kiosk.resolver.reprint(actor, tx_id)
            else:
                return kiosk.page(request, "error.html", 404, message=f"No action {action}.")
        except ActionRefused as exc:
            count("gated_kiosk_actions_total", action=action, result="refused")
            _LOGGER.info("kiosk: %s: %s on transaction %s refused: %s",
                         user.username, action, tx_id, exc)
            return await transaction_page(
                request, tx_id, status_code=422, error=str(exc), action=action,
                typed={k: str(v) for k, v in form.items() if k != "csrf_token"},
            )
        _LOGGER.info("kiosk: %s: %s on transaction %s", user.username, action, tx_id)
        count("gated_kiosk_actions_total", action=action, result="applied")
        kiosk.flash(user, "ok", outcome.message[:1].upper() + outcome.message[1:] + ".")
        for error in outcome.effect_errors:
            count("gated_kiosk_lane_effect_failures_total", action=action)
            kiosk.flash(user, "error", f"The lane did not confirm: {error}")
        return RedirectResponse(f"/transactions/{tx_id}", status_code=303)

    return app


def _safe_next(target: str | None) -> str:
    """Only local paths after login: never an open redirect to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
