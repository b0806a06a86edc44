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

VERSION = 2  # of the memo's JSON shape; other versions are misses


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
    try:
        memo = json.loads(row[0])
        if memo.get("v") != VERSION or memo.get("fingerprint") != context_fp:
            return None
        for where, image_id in memo["lookups"].values():
            if resolve_where(db, where) != image_id:
                return None
    except (ValueError, TypeError, KeyError, AttributeError):  # another version's row
        return None
    ids = memo.get("images", [])
    if ids:
        marks = ",".join("?" * len(ids))
        found = db.execute(f"SELECT COUNT(*) FROM images WHERE id IN ({marks})", ids).fetchone()[0]
        if found != len(set(ids)):
            return None
    return memo


def where_of(text: str) -> list:
    """How to find `text` again without parsing it: ["id", id], [table, normalised name],
    or ["none"] (a short-id prefix: never a memo hit).  ImageStore.resolve's rules."""
    from lamina.errors import LaminaError
    from lamina.reference import looks_like_id, parse

    if looks_like_id(text):
        return ["id", "sha256:" + text.removeprefix("sha256:")]
    try:
        ref = parse(text)
    except LaminaError:
        return ["none"]
    return ["repo_digests" if ref.digest and not ref.tag else "tags", ref.name]


def resolve_where(db, where: list) -> str | None:
    if where[0] == "id":
        row = db.execute("SELECT id FROM images WHERE id=?", (where[1],)).fetchone()
    elif where[0] in ("tags", "repo_digests"):
        row = db.execute(f"SELECT image_id FROM {where[0]} WHERE name=?", (where[1],)).fetchone()
    else:
        return None
    return row[0] if row else None


def tag_names(memo: dict, texts) -> list | None:
    """(normalised, familiar) names of `-t` texts this memo has seen (so no parsing);
    None if it has not seen them all."""
    known = memo.get("names", {})
    return [known[t] for t in texts] if all(t in known for t in texts) else None


def tag(db, image_id: str, names: list[str]) -> None:
    """ImageStore.tag for the fast path: one transaction for the (normalised) names that
    do not point at the image yet.  Nothing to change means no write at all, so closing
    the database has no WAL to checkpoint (that is four fdatasyncs)."""
    names = [n for n in names
             if (db.execute("SELECT image_id FROM tags WHERE name=?", (n,)).fetchone() or (None,))[0] != image_id]
    if not names:
        return
    now = time.time()
    with transaction(db) as tx:  # the same rows ImageStore.tag writes, without importing the store
        for name in names:
            tx.execute("INSERT OR REPLACE INTO tags(name, image_id, tagged) VALUES (?,?,?)", (name, image_id, now))


def record(db, key: str, context_fp: str, *, final: str, images: list[str], lookups: dict,
           transcript: list[str], sending: str | None, names: dict) -> None:
    """`lookups`: image name -> id resolved by the build; `names`: `-t` text ->
    (normalised name, familiar name)."""
    memo = {"v": VERSION, "fingerprint": context_fp, "final": final, "images": sorted(set(images)),
            "lookups": {n: [where_of(n), i] for n, i in lookups.items()}, "log": transcript,
            "sending": sending, "names": names}
    with transaction(db) as tx:
        tx.execute("INSERT OR REPLACE INTO build_memo(key, value, created) VALUES (?,?,?)",
                   (key, json.dumps(memo), time.time()))
