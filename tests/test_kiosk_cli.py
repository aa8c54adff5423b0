"""`gated kiosk hash-password` and `add-user`: hashes that the kiosk's login accepts."""

from __future__ import annotations

import io

import pytest
import yaml
from argon2 import PasswordHasher

from gated.cli import main
from gated.config import KioskUser


def _run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str, stdin: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hash_password_verifies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        monkeypatch, capsys, "kiosk", "hash-password", "--stdin", stdin="correct horse battery\n"
    )
    assert code == 0
    hashed = out.strip()
    assert hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, "correct horse battery")
    assert "correct horse" not in out


def test_short_password_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(monkeypatch, capsys, "kiosk", "hash-password", "--stdin", stdin="short\n")
    assert code == 1 and out == ""
    assert "at least 10 characters" in err


def test_add_user_prints_a_valid_entry(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        monkeypatch,
        capsys,
        "kiosk",
        "add-user",
        "anna",
        "--role",
        "clerk",
        "--stdin",
        stdin="gate-clerk-anna\n",
    )
    assert code == 0
    entry = yaml.safe_load(out)[0]
    user = KioskUser.model_validate(entry)
    assert (user.username, user.role) == ("anna", "clerk")
    assert PasswordHasher().verify(user.password_hash, "gate-clerk-anna")


def test_add_user_rejects_bad_names(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        monkeypatch,
        capsys,
        "kiosk",
        "add-user",
        "anna smith",
        "--role",
        "clerk",
        "--stdin",
        stdin="gate-clerk-anna\n",
    )
    assert code == 1 and "invalid user" in err
