"""The kiosk against a hostile browser: no login, forged sessions and CSRF tokens, path tricks
in image and static URLs, huge and odd form fields, absurd ids. Each gets a clear refusal
(never a 500), and nothing changes at the lane or in the database.

Once failing here and fixed in 6e6c686: a symlink out of the image directory was served, ids
beyond 64 bits and NUL bytes in image paths gave a 500, Arabic-Indic digits in a container
number gave a 500, and a reason of NUL bytes counted as a reason."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from gated.kiosk.app import COOKIE
from gated.models import ContainerReadRow
from tests.test_kiosk import Site, _audit, _state, client, login, page_token, site  # noqa: F401

ACTIONS = ("approve", "refuse", "inspect", "correct", "rerun-ocr", "print")


def _unchanged(site: Site) -> None:  # noqa: F811
    assert site.effects.calls == []
    assert _state(site) == "trouble"
    # a refused correction is audited by design; nothing else may be
    assert all(a.action.endswith("_rejected") for a in _audit(site)), [
        a.action for a in _audit(site)
    ]


COOKIES = ["", "x", "A" * 8000, "null", "eyJhbGciOiJub25lIn0.e30.", "1|2|3|4|5", "%00%ff"]


async def test_garbage_session_cookie_is_a_login_page(
    client: httpx.AsyncClient, site: Site  # noqa: F811
) -> None:
    for cookie in COOKIES:
        client.cookies.set(COOKIE, cookie)
        page = await client.get("/transactions/1")
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
        assert (await client.get("/api/board")).status_code == 401
        for action in ACTIONS:
            response = await client.post(
                f"/transactions/{site.tx_id}/{action}", data={"reason": "x", "csrf_token": "x"}
            )
            assert response.status_code == 303, (cookie[:20], action)
    _unchanged(site)


async def test_forged_csrf_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, site: Site  # noqa: F811
) -> None:
    await login(client, "clerk1")
    for token, action in [(t, a) for t in ("", "forged", "A" * 5000, None) for a in ACTIONS]:
        data = {"reason": "looks fine", "container_number": "MSCU1234565", "position": "0"}
        if token is not None:
            data["csrf_token"] = token
        response = await client.post(f"/transactions/{site.tx_id}/{action}", data=data)
        assert response.status_code == 403, action
        header = await client.post(
            f"/transactions/{site.tx_id}/{action}", data=data,
            headers={"X-CSRF-Token": token or "nope"},
        )
        assert header.status_code == 403, action
    _unchanged(site)


async def test_another_sessions_csrf_token_is_refused(
    client: httpx.AsyncClient, site: Site  # noqa: F811
) -> None:
    await login(client, "clerk1")
    foreign = await page_token(client)
    await client.post("/logout", data={"csrf_token": foreign})
    client.cookies.clear()
    await login(client, "clerk1")
    response = await client.post(
        f"/transactions/{site.tx_id}/approve", data={"reason": "x", "csrf_token": foreign}
    )
    assert response.status_code == 403
    _unchanged(site)


PATH_TRICKS = [
        "/static/..%2F..%2Fconfig.py",
        "/static/%2e%2e/app.py",
        "/static/..\\..\\app.py",
        "/static/app.py",
        "/static/%00.css",
        "/static/" + "a" * 5000 + ".css",
        "/transactions/1/images/..%2F..%2Fetc%2Fpasswd",
        "/transactions/1/images/-1",
        "/transactions/1/images/1e3",
        "/transactions/-5",
        "/transactions/%00",
]


async def test_path_tricks_are_refused_cleanly(client: httpx.AsyncClient) -> None:  # noqa: F811
    await login(client, "view1")
    for path in PATH_TRICKS:
        response = await client.get(path)
        assert response.status_code in (404, 422), (path, response.status_code)
        assert b"root:" not in response.content and b"import " not in response.content


async def test_image_row_pointing_outside_is_not_served(
    client: httpx.AsyncClient, site: Site, tmp_path: Path  # noqa: F811
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:secret")
    ids = []
    with site.sessions() as session, session.begin():
        for image_path in (str(secret), "../secret.txt", "a/../../secret.txt", ""):
            read = ContainerReadRow(transaction_id=site.tx_id, camera="X", image_path=image_path)
            session.add(read)
            session.flush()
            ids.append(read.id)
    await login(client, "view1")
    for read_id in ids:
        response = await client.get(f"/transactions/{site.tx_id}/images/{read_id}")
        assert response.status_code == 404, read_id
        assert b"secret" not in response.content


async def test_symlink_out_of_the_image_directory_is_not_served(
    client: httpx.AsyncClient, site: Site, tmp_path: Path  # noqa: F811
) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("root:x:0:0:secret")
    directory = site.config.images.directory
    os.makedirs(directory, exist_ok=True)
    os.symlink(secret, os.path.join(directory, "cam.jpg"))
    with site.sessions() as session, session.begin():
        read = ContainerReadRow(transaction_id=site.tx_id, camera="X", image_path="cam.jpg")
        session.add(read)
        session.flush()
        read_id = read.id
    await login(client, "view1")
    response = await client.get(f"/transactions/{site.tx_id}/images/{read_id}")
    assert b"secret" not in response.content
    assert response.status_code == 404


ODD_FIELDS = [
        ("approve", {"reason": "x" * 1_000_000}),
        ("refuse", {"reason": "   "}),
        ("correct", {"position": "9" * 5000, "container_number": "MSCU1234565"}),
        ("correct", {"position": "99999999999999999999", "container_number": "MSCU1234565"}),
        ("correct", {"position": "-1", "container_number": "MSCU1234565"}),
        ("correct", {"position": "0", "container_number": "M" * 200_000}),
        ("correct", {"position": "0", "container_number": "<script>alert(1)</script>"}),
]


async def test_odd_form_fields_are_refused_not_crashed(
    client: httpx.AsyncClient, site: Site  # noqa: F811
) -> None:
    await login(client, "clerk1")
    token = await page_token(client, f"/transactions/{site.tx_id}")
    for action, fields in ODD_FIELDS:
        response = await client.post(
            f"/transactions/{site.tx_id}/{action}", data={**fields, "csrf_token": token}
        )
        assert response.status_code == 422, (action, list(fields), response.status_code)
        assert b"<script>alert(1)</script>" not in response.content
    _unchanged(site)


async def test_unknown_action_and_transaction(
    client: httpx.AsyncClient, site: Site  # noqa: F811
) -> None:
    await login(client, "clerk1")
    token = await page_token(client)
    for path in (f"/transactions/{site.tx_id}/launch", f"/transactions/{site.tx_id}/..%2Fapprove",
                 "/transactions/424242/approve"):
        response = await client.post(path, data={"reason": "x", "csrf_token": token})
        assert response.status_code in (404, 422), (path, response.status_code)
    _unchanged(site)


async def test_login_with_huge_and_odd_fields(client: httpx.AsyncClient) -> None:  # noqa: F811
    form = await client.get("/login")
    assert form.status_code == 200
    for username, password in (("a" * 100_000, "b" * 100_000), ("\x00", "\x00"),
                               ("clerk1\r\nSet-Cookie: x=1", "x"), ("", "")):
        response = await client.post(
            "/login", data={"username": username, "password": password, "csrf_token": "bad"}
        )
        assert response.status_code == 403
        assert "set-cookie: x=1" not in str(response.headers).lower()


@pytest.mark.parametrize(
    "path",
    [
        "/transactions/99999999999999999999999",
        "/api/transactions/99999999999999999999999",
        "/transactions/1/images/99999999999999999999999",
    ],
)
async def test_id_beyond_64_bits_is_a_404(client: httpx.AsyncClient, path: str) -> None:  # noqa: F811
    await login(client, "view1")
    response = await client.get(path)
    assert response.status_code == 404


async def test_image_path_with_a_nul_byte_is_a_404(
    client: httpx.AsyncClient, site: Site  # noqa: F811
) -> None:
    with site.sessions() as session, session.begin():
        read = ContainerReadRow(transaction_id=site.tx_id, camera="X", image_path="\x00x.jpg")
        session.add(read)
        session.flush()
        read_id = read.id
    await login(client, "view1")
    response = await client.get(f"/transactions/{site.tx_id}/images/{read_id}")
    assert response.status_code == 404


async def test_container_number_with_non_ascii_digits_is_refused(
    client: httpx.AsyncClient, site: Site  # noqa: F811
) -> None:
    await login(client, "clerk1")
    token = await page_token(client, f"/transactions/{site.tx_id}")
    number = "MSCU" + "\u0661\u0662\u0663\u0664\u0665\u0666\u0667"
    response = await client.post(
        f"/transactions/{site.tx_id}/correct",
        data={"position": "0", "container_number": number, "csrf_token": token},
    )
    assert response.status_code == 422
    _unchanged(site)


async def test_reason_of_control_characters_is_no_reason(
    client: httpx.AsyncClient, site: Site  # noqa: F811
) -> None:
    await login(client, "clerk1")
    token = await page_token(client, f"/transactions/{site.tx_id}")
    response = await client.post(
        f"/transactions/{site.tx_id}/refuse", data={"reason": "\x00" * 10, "csrf_token": token}
    )
    assert response.status_code == 422
    _unchanged(site)
