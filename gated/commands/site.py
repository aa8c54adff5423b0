"""What the site's administrative commands share: the configuration, read or reported, and its
database, migrated to the current schema and disposed of at the end."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from gated.config import ConfigError, SiteConfig, load_config

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


def load_or_report(path: str) -> SiteConfig | None:
    """The site configuration, or None after printing why it cannot be used."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


@contextmanager
def site_database(config: SiteConfig) -> Iterator[sessionmaker[Session]]:
    """Sessions on the site's database, brought to the current schema first (a command may
    run before the daemon ever has)."""
    from gated.db import make_engine, session_factory, upgrade

    engine = make_engine(config.database.url)
    try:
        upgrade(engine)
        yield session_factory(engine)
    finally:
        engine.dispose()
