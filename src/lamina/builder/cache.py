"""The build cache: step key -> image id, in the store's `build_cache` table.

A key is sha256 over a canonical JSON list: the parent image id, the step's
normalised text (after substitution; for RUN the classic `|N K=V` args prefix and
the argv), the in-scope build args, and whatever content the step reads — the
content hash of COPY/ADD sources, heredoc bodies, mount specs.  The parent image
id covers the whole config so far (Env, User, WorkingDir, Shell, Healthcheck,
OnBuild...), because every step commits an image (the classic model), which
keeps crafted HEALTHCHECK/ONBUILD changes from hitting a stale entry
(CVE-2024-24557).

Content hashes are tarsum-like: per entry a header record (relative name, type,
permission bits, size, link target) followed by the sha256 of the data.  mtime,
atime and owner are left out: they never reach the image (COPY sets 0:0 unless
--chown), so a fresh checkout still hits the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

from lamina.digest import Digest
from lamina.store.db import transaction

_CHUNK = 1 << 20


def step_key(*parts) -> str:
    data = json.dumps(parts, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


class BuildCache:
    def __init__(self, system) -> None:
        self._system = system
        self._db = system.db

    def get(self, key: str) -> Digest | None:
        row = self._db.execute("SELECT image_id FROM build_cache WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        image_id = Digest(row[0])
        # An entry whose image was removed (rmi, prune) is a miss, not an error.
        return image_id if self._system.images.exists(image_id) else None

    def put(self, key: str, image_id: Digest) -> None:
        with transaction(self._db) as db:
            db.execute("INSERT OR REPLACE INTO build_cache(key, image_id, created) VALUES (?,?,?)",
                       (key, str(image_id), time.time()))


# --------------------------------------------------------------------- content hashes


def entry_record(rel: str, st: os.stat_result, link: str = "") -> bytes:
    """The header part of one entry's hash (no mtime, no owner)."""
    kind = stat.S_IFMT(st.st_mode)
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return f"{rel}\0{kind:o}\0{stat.S_IMODE(st.st_mode):o}\0{size}\0{link}\n".encode("utf-8", "surrogateescape")


class ContentHasher:
    """Accumulates entry records and data digests into one source hash.  With `files`
    (a dict), each entry's own digest is also kept under `prefix/rel`, so that a cache
    miss can name the first context file whose content differs (builder/explain.py)."""

    def __init__(self, files: dict | None = None, prefix: str = "") -> None:
        self._h = hashlib.sha256()
        self.count = 0
        self._files = files
        self._prefix = prefix

    def add(self, rel: str, st: os.stat_result, *, link: str = "", data_digest: str = "") -> None:
        record = entry_record(rel, st, link)
        self._h.update(record)
        if data_digest:
            self._h.update(data_digest.encode() + b"\n")
        if self._files is not None:
            path = f"{self._prefix}/{rel}" if rel and self._prefix else rel or self._prefix
            self._files[path] = hashlib.sha256(record[len(rel.encode("utf-8", "surrogateescape")):]
                                               + data_digest.encode()).hexdigest()[:32]
        self.count += 1

    def add_bytes(self, name: str, data: bytes) -> None:
        self._h.update(f"{name}\0inline\0{len(data)}\n".encode("utf-8", "surrogateescape"))
        self._h.update(hashlib.sha256(data).hexdigest().encode() + b"\n")
        self.count += 1

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def hash_sources(context, sources, walk=None, files: dict | None = None) -> tuple[str, str]:
    """(classic label, content hash) of matched context sources: `file:<h>`,
    `dir:<h>` or `multi:<h>` as moby's COPY history shows them.  `walk` replaces
    context.walk (COPY --exclude filters it); `files` collects per-entry digests (ContentHasher).  Every entry is hashed as the copy
    (fileops.Writer) hashes it: a regular file's record and data come from one open fd."""
    walk = walk or context.walk
    parts = []
    for src in sources:
        h = ContentHasher(files, src.rel)
        for rel, st in walk(src.follow):
            rel_name = rel[len(src.follow):].lstrip("/")
            if stat.S_ISREG(st.st_mode):
                fd = context.open_file(rel)
                try:
                    st = os.fstat(fd)
                    digest = hashlib.sha256()
                    while chunk := os.read(fd, _CHUNK):
                        digest.update(chunk)
                finally:
                    os.close(fd)
                h.add(rel_name, st, data_digest=digest.hexdigest())
            elif stat.S_ISSOCK(st.st_mode):
                continue  # never copied (as Docker), so never hashed
            else:
                link = context.readlink(rel) if stat.S_ISLNK(st.st_mode) else ""
                h.add(rel_name, st, link=link)
        kind = "dir" if src.is_dir else "file"
        parts.append(f"{kind}:{h.hexdigest()}")
    if len(parts) == 1:
        return parts[0], parts[0]
    joined = hashlib.sha256(",".join(parts).encode()).hexdigest()
    return f"multi:{joined}", f"multi:{joined}"
