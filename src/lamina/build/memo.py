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


def lookup(db, key: str, context_fp: str) -> dict | None:
    """The memo for `key` if it still holds: same context, same base images, all images
    present.  Works on a bare store connection (the CLI's fast path builds no System);
    anything it cannot judge cheaply is a miss, never a wrong hit."""
    import sqlite3

    try:
        row = db.execute("SELECT value FROM build_memo WHERE key=?", (key,)).fetchone()
    except sqlite3.OperationalError:  # no memo table yet
        return None
    if row is None:
        return None
    memo = json.loads(row[0])
    if memo.get("fingerprint") != context_fp:
        return None
    for name, image_id in memo.get("lookups", {}).items():
        if resolve_name(db, name) != image_id:
            return None
    ids = memo.get("images", [])
    if ids:
        marks = ",".join("?" * len(ids))
        found = db.execute(f"SELECT COUNT(*) FROM images WHERE id IN ({marks})", ids).fetchone()[0]
        if found != len(set(ids)):
            return None
    return memo


def resolve_name(db, text: str) -> str | None:
    """The image id a FROM / --from name points at now, by ImageStore.resolve's first
    two rules (full id, then name); a short-id prefix gives None (a miss)."""
    from lamina.errors import LaminaError
    from lamina.reference import looks_like_id, parse

    if looks_like_id(text):
        return "sha256:" + text.removeprefix("sha256:")
    try:
        ref = parse(text)
    except LaminaError:
        return None
    table = "repo_digests" if ref.digest and not ref.tag else "tags"
    row = db.execute(f"SELECT image_id FROM {table} WHERE name=?", (ref.name,)).fetchone()
    return row[0] if row else None


def tag(db, image_id: str, refs) -> None:
    """ImageStore.tag for the fast path: one transaction for all the names."""
    from lamina.errors import InvalidReference

    now = time.time()
    with transaction(db) as tx:
        for ref in refs:
            if ref.digest and not ref.tag:
                raise InvalidReference(f"refusing to create a tag with a digest reference: {ref}")
            tx.execute("INSERT OR REPLACE INTO tags(name, image_id, tagged) VALUES (?,?,?)",
                       (ref.name, image_id, now))


def record(db, key: str, context_fp: str, *, final: str, images: list[str], lookups: dict,
           transcript: list[str], sending: str | None) -> None:
    memo = {"fingerprint": context_fp, "final": final, "images": sorted(set(images)),
            "lookups": lookups, "log": transcript, "sending": sending}
    with transaction(db) as tx:
        tx.execute(_TABLE)
        tx.execute("INSERT OR REPLACE INTO build_memo(key, value, created) VALUES (?,?,?)",
                   (key, json.dumps(memo), time.time()))
