"""Kiosk logins: argon2 passwords, signed expiring session cookies, CSRF tokens, rate limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gated.config import KioskConfig, KioskUser

_LOGGER = logging.getLogger(__name__)

ROLES = ("viewer", "clerk", "supervisor")
# what each role may do; checked on the server for every request, the page only hides buttons
CAN_ACT = frozenset({"clerk", "supervisor"})
CAN_CONFIGURE = frozenset({"supervisor"})

# argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane) rather than argon2-cffi's
# 64 MiB default: a login on the gate daemon must not add 64 MB to a process that holds the
# lanes, and 19 MiB still makes an offline guess cost ~20 ms and 19 MiB of memory.
HASH_MEMORY_KIB = 19 * 1024
HASH_TIME_COST = 2
HASH_PARALLELISM = 1


def password_hasher() -> PasswordHasher:
    """The hasher that new kiosk passwords are hashed with."""
    return PasswordHasher(
        time_cost=HASH_TIME_COST, memory_cost=HASH_MEMORY_KIB, parallelism=HASH_PARALLELISM
    )


def load_secret(path: str | Path) -> bytes:
    """The session signing secret; created (32 random bytes, mode 0600) if the file is missing."""
    secret_path = Path(path)
    if not secret_path.exists():
        secret_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first; read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
            _LOGGER.info("kiosk: created session secret %s", secret_path)
    secret = secret_path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"kiosk secret file {secret_path} holds fewer than 32 characters")
    return secret.encode()


@dataclass(frozen=True)
class KioskSession:
    """A logged-in user, as carried in the signed session cookie."""

    username: str
    role: str
    session_id: str
    csrf_token: str
    expires_at: float

    @property
    def can_act(self) -> bool:
        return self.role in CAN_ACT

    @property
    def can_configure(self) -> bool:
        return self.role in CAN_CONFIGURE


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Checks passwords, issues and verifies session cookies, and limits login attempts.

    A session cookie is `payload.signature` (HMAC-SHA256 over the payload with the site secret).
    It is re-checked on every request against the configured users, so removing a user or
    changing the role ends their sessions; logging out revokes the session id.
    """

    def __init__(
        self,
        config: KioskConfig,
        secret: bytes,
        clock: Callable[[], float],
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._users: dict[str, KioskUser] = {user.username: user for user in config.users}
        self._secret = secret
        self._clock = clock
        self._lifetime_s = config.session_minutes * 60.0
        self._hasher = hasher or password_hasher()
        # a hash to verify against for unknown users, so their replies take as long
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self._revoked: dict[str, float] = {}
        self.limiter = LoginLimiter(
            clock,
            max_failures=config.login_max_failures,
            window_s=config.login_lockout_minutes * 60.0,
        )

    # --- passwords ----------------------------------------------------------------------

    def check_password(self, username: str, password: str) -> KioskUser | None:
        user = self._users.get(username)
        stored = user.password_hash if user else self._dummy_hash
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        return user

    async def check_password_off_loop(self, username: str, password: str) -> KioskUser | None:
        """`check_password` in a short-lived thread: an argon2 check takes tens of milliseconds
        of CPU, which the lanes sharing this event loop should not wait for. The thread ends
        with the check, so nothing is left running."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[KioskUser | None] = loop.create_future()

        def deliver(user: KioskUser | None) -> None:
            if not answer.done():
                answer.set_result(user)

        def check() -> None:
            try:
                user = self.check_password(username, password)
            except Exception:  # a broken hash must not leave the login hanging: fail closed
                _LOGGER.exception("kiosk: password check of %r failed", username)
                user = None
            try:
                loop.call_soon_threadsafe(deliver, user)
            except RuntimeError:
                pass  # the loop closed while hashing: nobody waits for the answer

        threading.Thread(target=check, name="kiosk password check", daemon=True).start()
        return await answer

    # --- sessions -----------------------------------------------------------------------

    def issue(self, user: KioskUser) -> tuple[str, KioskSession]:
        session = KioskSession(
            username=user.username,
            role=user.role,
            session_id=secrets.token_urlsafe(16),
            csrf_token=secrets.token_urlsafe(24),
            expires_at=self._clock() + self._lifetime_s,
        )
        payload = json.dumps(
            {
                "u": session.username,
                "r": session.role,
                "s": session.session_id,
                "c": session.csrf_token,
                "e": session.expires_at,
            },
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{self._sign(payload)}", session

    def verify(self, cookie: str | None) -> KioskSession | None:
        """The session in a cookie, or None when it is forged, expired, revoked or stale."""
        if not cookie or "." not in cookie or len(cookie) > 4096:
            return None
        encoded, signature = cookie.rsplit(".", 1)
        try:
            payload = _unb64(encoded)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(payload)
            session = KioskSession(
                username=str(data["u"]),
                role=str(data["r"]),
                session_id=str(data["s"]),
                csrf_token=str(data["c"]),
                expires_at=float(data["e"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= self._clock() or session.session_id in self._revoked:
            return None
        user = self._users.get(session.username)
        if user is None or user.role != session.role:
            return None
        return session

    def revoke(self, session: KioskSession) -> None:
        now = self._clock()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[session.session_id] = session.expires_at

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._secret, payload, hashlib.sha256).digest())

    # --- CSRF before login --------------------------------------------------------------

    def login_csrf(self, nonce: str) -> str:
        """The token the login form carries, bound to a random pre-login cookie."""
        return self._sign(b"login:" + nonce.encode())

    def check_login_csrf(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(token, self.login_csrf(nonce))


class LoginLimiter:
    """At most `max_failures` failed logins per user name and per client address in a sliding
    window; further attempts are refused without checking the password until it passes."""

    def __init__(self, clock: Callable[[], float], max_failures: int, window_s: float) -> None:
        self._clock = clock
        self._max = max_failures
        self._window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self._window_s
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until a login attempt is allowed again; 0 when it is allowed now."""
        waits = []
        for key in (f"user:{username}", f"addr:{address}"):
            times = self._recent(key)
            if len(times) >= self._max:
                waits.append(times[0] + self._window_s - self._clock())
        return max(waits, default=0.0)

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        for key in (f"user:{username}", f"addr:{address}"):
            self._recent(key).append(now)
        if len(self._failures) > 10000:  # forget idle keys so a flood cannot grow memory
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def succeeded(self, username: str) -> None:
        self._failures.pop(f"user:{username}", None)
