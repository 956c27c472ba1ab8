"""Storage behind one interface: `open_store(url)` picks the engine from the URL.

sqlite:///abs/path/hub.db, sqlite://rel/hub.db or a bare path   embedded default
postgresql://user@host/db[?schema=NAME]          several workers
"""

from __future__ import annotations

from checkpost.hub.store.base import FAST_KINDS, Store, StoreError, Work


def open_store(url: str, *, migrate: bool = True) -> Store:
    if url.startswith(("postgresql://", "postgres://")):
        from checkpost.hub.store.postgres import PostgresStore

        store: Store = PostgresStore(url)
    else:
        from checkpost.hub.store.sqlite import SqliteStore

        path = url[len("sqlite://") :] if url.startswith("sqlite://") else url
        store = SqliteStore(path)
    if migrate:
        store.migrate()
    return store


__all__ = ["FAST_KINDS", "Store", "StoreError", "Work", "open_store"]
