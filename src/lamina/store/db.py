"""SQLite metadata: images, tags, layers, containers.

WAL mode and a busy timeout let several lamina processes read and write at
once; every change is one transaction, so a crash (even SIGKILL) leaves either
the whole change or none of it.  Files on disk are written *before* the row that
makes them visible, and removed *after* the row is gone.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator

SCHEMA_VERSION = 2  # 2: build_memo

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,            -- sha256 of the exact config bytes
    manifest TEXT NOT NULL,         -- digest of the manifest blob
    parent TEXT,                    -- local parent image id (commit/build), like docker's metadata
    created REAL NOT NULL,          -- config.created as epoch seconds
    size INTEGER NOT NULL,          -- sum of unpacked layer sizes (docker's SIZE column)
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    name TEXT PRIMARY KEY,          -- docker.io/library/ubuntu:latest
    image_id TEXT NOT NULL REFERENCES images(id),
    tagged REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS repo_digests (
    name TEXT NOT NULL,             -- docker.io/library/ubuntu@sha256:...
    image_id TEXT NOT NULL REFERENCES images(id),
    PRIMARY KEY (name, image_id)
);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    parent TEXT,                    -- chain id of the layer below
    dir TEXT NOT NULL,              -- layers/<dir>/diff
    link TEXT NOT NULL,             -- l/<link> -> ../layers/<dir>/diff
    size INTEGER NOT NULL,
    complete INTEGER NOT NULL,      -- 0 while being unpacked
    owner_pid INTEGER               -- the process unpacking it
);
CREATE TABLE IF NOT EXISTS layer_blobs (
    diff_id TEXT NOT NULL,          -- uncompressed digest
    digest TEXT NOT NULL,           -- blob digest in the content store
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (diff_id, digest)
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    image_id TEXT NOT NULL,
    image_ref TEXT NOT NULL,        -- what the user typed, for `ps`
    created REAL NOT NULL,
    config TEXT NOT NULL,           -- JSON: the container's Config (docker shape)
    host_config TEXT NOT NULL,      -- JSON: HostConfig subset
    state TEXT NOT NULL,            -- created | running | exited | removing
    pid INTEGER,                    -- lamina process watching a running container
    exit_code INTEGER,
    started REAL,
    finished REAL,
    driver TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_cache (
    key TEXT PRIMARY KEY,           -- digest of (parent image, normalized step)
    image_id TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS build_memo (
    key TEXT PRIMARY KEY,           -- a whole build request (see build/memo.py)
    value TEXT NOT NULL,            -- JSON: the images it produced and the log it printed
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
"""


def connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so writers queue
    # on the busy timeout instead of failing with "database is locked" mid-way.
    conn = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=60000")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    row = None
    try:
        row = conn.execute("SELECT v FROM meta WHERE k='schema'").fetchone()
    except sqlite3.OperationalError:
        pass
    if row is None or int(row[0]) < SCHEMA_VERSION:
        # One script, one transaction: concurrent first runs and upgrades of an older
        # store are harmless (every statement is IF NOT EXISTS).
        conn.executescript(
            "BEGIN IMMEDIATE;" + SCHEMA
            + f"INSERT OR REPLACE INTO meta VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;"
        )
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def pid_alive(pid: int) -> bool:
    """Is the process that owns a record (an unpack, a running container) still there?"""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
