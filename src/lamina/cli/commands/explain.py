"""`build --explain-cache` and `build explain`: a build's steps with HIT/MISS and why
(engine.build.explanation; the record itself is builder/explain.py's)."""

from __future__ import annotations

import sys


def print_last(args) -> int:
    """Print the last build's explanation; `Error` when no build was recorded (exit 1)."""
    from lamina.engine.build import explanation
    from lamina.errors import NotFound
    from lamina.system import System

    system = System(args.root, storage_driver=args.storage_driver, runtime=args.runtime)
    try:
        record = explanation(system)
    finally:
        system.close()
    if record is None:
        raise NotFound("no build recorded yet: run `lamina build` first")
    render(record, sys.stdout)
    return 0


def render(record: dict, out) -> None:
    from lamina.cli import fmt

    state = "built " + record["image"][7:19] if record["image"] else "failed or interrupted"
    out.write(f"Build #{record['id']} ({state}): cache explanation\n")
    rows = [[f"{s['step']}/{s['total']}", s["result"], fmt.ellipsis(s["text"].replace("\n", " "), 40), s["reason"]]
            for s in record["steps"]]
    fmt.table(["STEP", "CACHE", "INSTRUCTION", "WHY"], rows, out=out)
