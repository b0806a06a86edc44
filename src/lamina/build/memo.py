"""Whole-build memo: replaying a fully cached build without re-deriving every step.

A rebuild whose inputs did not change — Dockerfile text, flags, build args, the
context's files (by path, size, mode, mtime, ctime and inode: a stat walk, no
reads), and the images its FROM / --from names resolve to — ends in the same
images as last time, every step a cache hit.  The memo stores the ids of those
images and the log a fully cached build prints, so the CLI can check the ids
still exist, print the log and tag, without loading the Dockerfile parser or
the executor.  Anything different, or any image gone, is a miss and the normal
build (with the per-step cache) runs.  Never used with --no-cache or --pull,
nor recorded for builds that download (ADD of a URL).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

from lamina.store.db import transaction

_TABLE = ("CREATE TABLE IF NOT EXISTS build_memo (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
          "created REAL NOT NULL)")


def request_key(*, dockerfile: str, name: str, build_args: dict, target, labels: dict, network: str,
                secrets: dict, ignore_text: str | None) -> str:
    data = json.dumps([dockerfile, name, sorted(build_args.items()), target, sorted(labels.items()), network,
                       sorted(secrets), ignore_text], separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


def fingerprint(root: str) -> str:
    """Stat-only digest of the whole context tree (never follows links)."""
    h = hashlib.sha256()
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            h.update(b"?" + rel.encode("utf-8", "surrogateescape"))
            continue
        for e in entries:
            st = e.stat(follow_symlinks=False)
            path = f"{rel}/{e.name}" if rel else e.name
            h.update(f"{path}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n"
                     .encode("utf-8", "surrogateescape"))
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
    return h.hexdigest()


def lookup(system, key: str, context_fp: str) -> dict | None:
    """The memo for `key` if it still holds: same context, same base images, all images present."""
    import sqlite3

    try:
        row = system.db.execute("SELECT value FROM build_memo WHERE key=?", (key,)).fetchone()
    except sqlite3.OperationalError:  # no memo table yet
        return None
    if row is None:
        return None
    memo = json.loads(row[0])
    if memo.get("fingerprint") != context_fp:
        return None
    from lamina.errors import LaminaError

    for name, image_id in memo.get("lookups", {}).items():
        try:
            if str(system.images.resolve(name).id) != image_id:
                return None
        except LaminaError:
            return None
    ids = memo.get("images", [])
    if ids:
        marks = ",".join("?" * len(ids))
        found = system.db.execute(f"SELECT COUNT(*) FROM images WHERE id IN ({marks})", ids).fetchone()[0]
        if found != len(set(ids)):
            return None
    return memo


def record(system, key: str, context_fp: str, *, final: str, images: list[str], lookups: dict,
           transcript: list[str], sending: str | None) -> None:
    memo = {"fingerprint": context_fp, "final": final, "images": sorted(set(images)),
            "lookups": lookups, "log": transcript, "sending": sending}
    with transaction(system.db) as db:
        db.execute(_TABLE)
        db.execute("INSERT OR REPLACE INTO build_memo(key, value, created) VALUES (?,?,?)",
                   (key, json.dumps(memo), time.time()))
