"""SQLite metadata: images, tags, layers, containers.

WAL mode and a busy timeout let several lamina processes read and write at
once; every change is one transaction, so a crash (even SIGKILL) leaves either
the whole change or none of it.  Files on disk are written *before* the row that
makes them visible, and removed *after* the row is gone.
"""

from __future__ import annotations

import os
import sys


def _import_sqlite():
    """The C module itself: the sqlite3 package adds only datetime adapters (unused
    here), and importing datetime and collections for them costs every command ms.

    CPython's _sqlite3 (3.11-3.12) imports functools at module init only to keep
    `functools.lru_cache` for its per-connection statement cache; functools pulls in
    collections, operator, reprlib, types... (~3 ms, an eighth of `lamina ps`).  When
    nothing has imported functools yet, and no other thread can be importing, the init
    gets a stand-in module whose lru_cache is functools' own, minus its Python wrapper:
    the same C `_lru_cache_wrapper`.  The stand-in leaves sys.modules at once, so a later
    `import functools` anywhere in the process loads the real module."""
    if "functools" in sys.modules or "threading" in sys.modules:
        import _sqlite3

        return _sqlite3
    from _functools import _lru_cache_wrapper

    def lru_cache(maxsize=128, typed=False):
        # cache_info's type: a plain tuple (functools' is a namedtuple); sqlite never asks
        return lambda function: _lru_cache_wrapper(function, maxsize, typed, lambda *info: info)

    stand_in = type(sys)("functools")
    stand_in.lru_cache = lru_cache
    sys.modules["functools"] = stand_in
    try:
        import _sqlite3
    except AttributeError:  # a CPython whose init wants more of functools: it gets the real one
        del sys.modules["functools"]
        import _sqlite3
    finally:
        if sys.modules.get("functools") is stand_in:
            del sys.modules["functools"]
    return _sqlite3


try:
    sqlite3 = _import_sqlite()
except ImportError:  # pragma: no cover - an interpreter whose sqlite3 is built otherwise
    import sqlite3

SCHEMA_VERSION = 10  # 2: build_memo; 3: leases; 4: addresses; 5: container_runs; 6: networks; 7: ports; 8: build_inputs, build_records; 9: volumes, volume_mounts; 10: image_indexes

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
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,            -- in-flight work that sweeps must not touch (store/leases.py)
    pid INTEGER NOT NULL,           -- the process holding it...
    started TEXT,                   -- ...and its start time, so a reused pid does not keep it alive
    what TEXT NOT NULL,             -- e.g. "pull docker.io/library/busybox:latest"
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS lease_refs (
    lease TEXT NOT NULL,
    kind TEXT NOT NULL,             -- blob | layer
    key TEXT NOT NULL,              -- digest | chain id
    PRIMARY KEY (lease, kind, key)
);
CREATE TABLE IF NOT EXISTS addresses (
    network TEXT NOT NULL,          -- "bridge" (user-defined networks later)
    address TEXT NOT NULL,          -- IPv4 on that network (network/ipam.py)
    container_id TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,     -- the lamina process that attached it (gone: reclaimable)
    created REAL NOT NULL,
    PRIMARY KEY (network, address),
    UNIQUE (network, container_id)
);
CREATE TABLE IF NOT EXISTS container_runs (
    id TEXT PRIMARY KEY,            -- a container kept by a monitor (run -d, start): lamina/monitor.py
    monitor_pid INTEGER,            -- the monitor (restart policy, logs, exit code)
    init_pid INTEGER,               -- the container's init on the host (inspect's State.Pid)
    restart_count INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,  -- a user's stop/kill/rm -f: no restart
    oom_killed INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,            -- user-defined networks (network/registry.py); 64 hex as docker's
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,           -- "bridge"
    subnet TEXT NOT NULL,           -- IPv4 CIDR, picked or given
    gateway TEXT NOT NULL,
    ipam TEXT NOT NULL,             -- IPAM.Config as inspect shows it (JSON: what was given)
    internal INTEGER NOT NULL,
    labels TEXT NOT NULL,           -- JSON object
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS network_endpoints (
    network_id TEXT NOT NULL,       -- a container's membership of a user network (run --network, connect)
    container_id TEXT NOT NULL,
    aliases TEXT NOT NULL,          -- JSON list (--network-alias, connect --alias)
    PRIMARY KEY (network_id, container_id)
);
CREATE TABLE IF NOT EXISTS ports (
    proto TEXT NOT NULL,            -- a published port (network/portmap.py): tcp, udp, sctp
    host_ip TEXT NOT NULL,          -- "0.0.0.0": every host address
    host_port INTEGER NOT NULL,
    container_id TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    address TEXT NOT NULL,          -- the container's bridge address its rules lead to
    bridge TEXT NOT NULL,           -- the host interface of that network (lamina0, lm-<id12>)
    owner_pid INTEGER NOT NULL,     -- the lamina process holding the port (gone: reclaimable)
    PRIMARY KEY (proto, host_ip, host_port)
);
CREATE INDEX IF NOT EXISTS ports_by_container ON ports(container_id);
CREATE TABLE IF NOT EXISTS build_inputs (
    key TEXT PRIMARY KEY,           -- a build_cache key and what went into it (builder/explain.py)
    image_id TEXT NOT NULL,
    parent TEXT NOT NULL,           -- parent image id, or "scratch"
    position TEXT NOT NULL,         -- context dir:Dockerfile#step number
    instruction TEXT NOT NULL,      -- the step's text after expansion, without content hashes
    args TEXT NOT NULL,             -- JSON {name: value}: the ARG values the key covers
    files TEXT NOT NULL,            -- JSON {context path: entry digest}: what COPY/ADD read
    build INTEGER NOT NULL,         -- the build_records id that made it
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS build_inputs_by_parent ON build_inputs(parent);
CREATE INDEX IF NOT EXISTS build_inputs_by_position ON build_inputs(position);
CREATE TABLE IF NOT EXISTS build_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- one build's steps, HIT/MISS and why (`build explain`)
    created REAL NOT NULL,
    context TEXT NOT NULL,
    dockerfile TEXT NOT NULL,
    image_id TEXT,                  -- NULL: failed or still running
    steps TEXT NOT NULL             -- JSON list of {step, total, text, result, kind, reason, image}
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,          -- a local volume (store/volumes.py): volumes/<name>/_data
    driver TEXT NOT NULL,           -- "local"
    labels TEXT NOT NULL,           -- JSON object
    options TEXT NOT NULL,          -- JSON object: the driver's -o options
    anonymous INTEGER NOT NULL,     -- made for a container without a name (rm -v, --rm remove it)
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS volume_mounts (
    container_id TEXT NOT NULL,     -- a container's volume mount (in use while the container exists)
    destination TEXT NOT NULL,
    volume TEXT NOT NULL,
    mode TEXT NOT NULL,             -- inspect's Mounts Mode ("z", "ro", "nocopy", "")
    rw INTEGER NOT NULL,
    copy INTEGER NOT NULL,          -- 1: copy the image's content into the volume while it is empty
    anonymous INTEGER NOT NULL,     -- docker's MountPoint.Named false
    PRIMARY KEY (container_id, destination)
);
CREATE INDEX IF NOT EXISTS volume_mounts_by_volume ON volume_mounts(volume);
CREATE TABLE IF NOT EXISTS image_indexes (
    name TEXT PRIMARY KEY,          -- a tag whose image is one member of a multi-platform build
    digest TEXT NOT NULL            -- the OCI index blob naming every member's manifest
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
"""


BUSY_TIMEOUT = 60.0  # seconds a writer waits for another command's transaction


def connect(path: str) -> sqlite3.Connection:
    try:
        return _connect(path)
    except sqlite3.Error as e:
        raise store_error(e, path) from None


def _connect(path: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so writers queue
    # on the busy timeout instead of failing with "database is locked" mid-way.
    # `timeout` is SQLite's busy handler itself (what PRAGMA busy_timeout sets).
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    # The schema's version and the journal mode in one statement: every command opens
    # the store, and a read verb's whole run is a few ms.
    schema = mode = None
    try:
        schema, mode = conn.execute(
            "SELECT (SELECT v FROM meta WHERE k='schema'), (SELECT journal_mode FROM pragma_journal_mode)").fetchone()
    except sqlite3.OperationalError:  # a new store: no meta table yet
        pass
    if mode != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    if schema is None or int(schema) < SCHEMA_VERSION:
        # One script, one transaction: concurrent first runs and upgrades of an older
        # store are harmless (every statement is IF NOT EXISTS).
        conn.executescript(
            "BEGIN IMMEDIATE;" + SCHEMA
            + f"INSERT OR REPLACE INTO meta VALUES ('schema', '{SCHEMA_VERSION}'); COMMIT;"
        )
    return conn


class transaction:
    """`with transaction(conn) as db:` one change, all or nothing.  SQLite's own
    failures (locked past the busy timeout, a read-only or full disk) become one
    StoreError naming the store.  A class rather than a @contextmanager: contextlib
    is an import every command would pay for."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise store_error(e, _path(conn)) from None
        return conn

    def __exit__(self, exc_type, e, tb) -> bool:
        conn = self._conn
        if e is not None:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolled back already (e.g. after a disk I/O error)
            if isinstance(e, sqlite3.OperationalError):
                raise store_error(e, _path(conn)) from None
            return False  # the body's exception goes on
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as err:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise store_error(err, _path(conn)) from None
        return False


def store_error(e: sqlite3.Error, path: str):
    from lamina.errors import StoreError

    text = str(e)
    if "locked" in text or "busy" in text:
        text = f"database is locked: another lamina command held it for more than {BUSY_TIMEOUT:g} s"
    elif _read_only(os.path.dirname(path)):
        text = f"the store is on a read-only file system ({text})"
    elif "readonly" in text:
        text = f"the store is read-only ({text})"
    return StoreError(f"store database {path}: {text}")


def _read_only(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _path(conn: sqlite3.Connection) -> str:
    try:
        return conn.execute("PRAGMA database_list").fetchone()[2]
    except sqlite3.Error:
        return "(unknown)"


def pid_alive(pid: int) -> bool:
    """Is the process that owns a record (an unpack, a running container) still there?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead, though kill(0) finds it: its parent may be slow to reap (or,
    # as a VM's or container's pid 1, never reap) a killed lamina.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
