"""Why a step hit or missed the build cache (`build --explain-cache`, `build explain`).

Every cache entry the build makes is recorded with the inputs of its key
(`build_inputs`): the parent image, the step's instruction text after expansion
(without content hashes), the ARG values the key covers, and a digest per
context file a COPY/ADD read (the tarsum-like entry record of builder/cache.py).
A miss is compared with the nearest earlier entry: first one made on the same
parent at the same step position, else on the same parent, else at the same
position; the first input that differs, in that order (parent, instruction, ARG
value, context file), is the reason.  A hit names the build and image that made
the entry.  Each build's step list is kept in `build_records` (the last ones).
"""

from __future__ import annotations

import json
import time

from lamina.store.db import transaction

KEEP_BUILDS = 20
KEEP_INPUTS = 20000


class Explainer:
    def __init__(self, db, context_dir: str, dockerfile_name: str, *, no_cache: bool = False) -> None:
        self._db = db
        self._where = f"{context_dir}:{dockerfile_name}"
        self._no_cache = no_cache
        self.steps: list[dict] = []
        self._step: tuple[int, int, str] = (0, 0, "")
        self._notes: dict = {}
        with transaction(db) as tx:
            cur = tx.execute("INSERT INTO build_records(created, context, dockerfile, image_id, steps) "
                             "VALUES (?,?,?,NULL,'[]')", (time.time(), context_dir, dockerfile_name))
            self.build_id = cur.lastrowid

    # -- what the executor and the steps tell
    def begin(self, number: int, total: int, text: str) -> None:
        self._step = (number, total, text)
        self._notes = {}
        self.steps.append({"step": number, "total": total, "text": text, "result": "-", "reason": "",
                           "kind": "", "image": None})

    def note(self, *, instruction: str | None = None, args: dict | None = None, files: dict | None = None) -> None:
        """The inputs of the step's key that the cache key itself hashes away."""
        if instruction is not None:
            self._notes["instruction"] = instruction
        if args is not None:
            self._notes["args"] = {k: v for k, v in args.items()}
        if files is not None:
            self._notes["files"] = files

    def _inputs(self, parent: str) -> dict:
        return {"parent": parent, "position": f"{self._where}#{self._step[0]}",
                "instruction": self._notes.get("instruction", self._step[2]),
                "args": self._notes.get("args", {}), "files": self._notes.get("files", {})}

    def _current(self) -> dict:
        row = self.steps[-1] if self.steps else None
        if row is None or row["result"] != "-":  # an ONBUILD trigger: a row of its own
            number, total, text = self._step
            row = {"step": number, "total": total, "text": text, "result": "-", "reason": "", "kind": "",
                   "image": None}
            self.steps.append(row)
        return row

    # -- the cache's answers
    def hit(self, parent: str, key: str, image_id: str) -> None:
        row = self._current()
        made = self._db.execute("SELECT build, created FROM build_inputs WHERE key=?", (key,)).fetchone()
        by = f"build #{made[0]}" if made else "an earlier build"
        row.update(result="HIT", image=image_id, kind="hit", reason=f"made by {by} as {image_id[7:19]}")

    def miss(self, parent: str, key: str | None, busted: bool) -> None:
        row = self._current()
        if self._no_cache:
            row.update(result="MISS", kind="no-cache", reason="--no-cache")
            return
        if busted:
            row.update(result="MISS", kind="parent", reason="parent image changed: the step before was rebuilt")
            return
        gone = key is not None and self._db.execute("SELECT image_id FROM build_inputs WHERE key=?",
                                                     (key,)).fetchone()
        if gone:
            row.update(result="MISS", kind="removed", reason=f"the image it made before ({gone[0][7:19]}) was removed")
            return
        kind, reason = self._compare(self._inputs(parent))
        row.update(result="MISS", kind=kind, reason=reason)

    def made(self, parent: str, key: str, image_id: str) -> None:
        inputs = self._inputs(parent)
        self.steps[-1]["image"] = image_id
        with transaction(self._db) as tx:
            tx.execute("INSERT OR REPLACE INTO build_inputs(key, image_id, parent, position, instruction, args, "
                       "files, build, created) VALUES (?,?,?,?,?,?,?,?,?)",
                       (key, image_id, parent, inputs["position"], inputs["instruction"],
                        json.dumps(inputs["args"], sort_keys=True), json.dumps(inputs["files"], sort_keys=True),
                        self.build_id, time.time()))

    def finish(self, image_id: str | None) -> None:
        with transaction(self._db) as tx:
            tx.execute("UPDATE build_records SET image_id=?, steps=? WHERE id=?",
                       (image_id, json.dumps(self.steps), self.build_id))
            tx.execute("DELETE FROM build_records WHERE id <= ?", (self.build_id - KEEP_BUILDS,))
            tx.execute("DELETE FROM build_inputs WHERE rowid IN (SELECT rowid FROM build_inputs "
                       "ORDER BY created DESC LIMIT -1 OFFSET ?)", (KEEP_INPUTS,))

    # -- the comparison
    def _earlier(self, inputs: dict):
        cols = "parent, instruction, args, files, build"
        q = self._db.execute
        for where, params in (("parent=? AND position=?", (inputs["parent"], inputs["position"])),
                              ("parent=? AND instruction=?", (inputs["parent"], inputs["instruction"])),
                              ("parent=?", (inputs["parent"],)),
                              ("position=?", (inputs["position"],))):
            row = q(f"SELECT {cols} FROM build_inputs WHERE {where} AND build != ? ORDER BY created DESC LIMIT 1",
                    (*params, self.build_id)).fetchone()
            if row is not None:
                return row
        return None

    def _compare(self, inputs: dict) -> tuple[str, str]:
        row = self._earlier(inputs)
        if row is None:
            return "new", "no earlier build made this step"
        parent, instruction, args, files, build = row[0], row[1], json.loads(row[2]), json.loads(row[3]), row[4]
        if parent != inputs["parent"]:
            return "parent", f"parent image changed: {_short(parent)} -> {_short(inputs['parent'])} (build #{build})"
        if instruction != inputs["instruction"]:
            old, new = _excerpt(instruction, inputs["instruction"])
            return "instruction", f"instruction changed: {old!r} -> {new!r} (build #{build})"
        now = inputs["args"]
        for name in sorted(set(args) | set(now)):
            if args.get(name) != now.get(name):
                return "arg", f"ARG {name} changed: {_shown(args.get(name))} -> {_shown(now.get(name))}"
        now_files = inputs["files"]
        for path in sorted(set(files) | set(now_files)):
            if files.get(path) != now_files.get(path):
                what = "added" if path not in files else "removed" if path not in now_files else "changed"
                return "file", f"context file {what}: {path}"
        return "other", "another input of the step changed (its flags, mounts or network)"


def _excerpt(old: str, new: str, context: int = 16) -> tuple[str, str]:
    """The two texts around their first difference (a long RUN line stays readable)."""
    i = 0
    while i < min(len(old), len(new)) and old[i] == new[i]:
        i += 1
    j = 0
    while j < min(len(old), len(new)) - i and old[-1 - j] == new[-1 - j]:
        j += 1
    start = max(0, i - context)

    def cut(text: str) -> str:
        end = min(len(text), len(text) - j + context)
        return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")

    return cut(old), cut(new)


def _short(image: str) -> str:
    return image[7:19] if image.startswith("sha256:") else image


def _shown(value) -> str:
    return "(unset)" if value is None else repr(value)


def last_record(db, build: int | None = None) -> dict | None:
    """A build's record ({"id", "created", "context", "dockerfile", "image", "steps"}); the last by default."""
    cols = "id, created, context, dockerfile, image_id, steps"
    if build is None:
        row = db.execute(f"SELECT {cols} FROM build_records ORDER BY id DESC LIMIT 1").fetchone()
    else:
        row = db.execute(f"SELECT {cols} FROM build_records WHERE id=?", (build,)).fetchone()
    if row is None:
        return None
    return {"id": row[0], "created": row[1], "context": row[2], "dockerfile": row[3], "image": row[4],
            "steps": json.loads(row[5])}
