"""Independent stages in parallel: each built at once by its own `lamina build --target`.

The classic executor builds one step at a time in one process: a RUN's output goes
through the process's fds 1/2, its runtime forwards signals from the main thread, and
the store's SQLite connection is one per process.  So stages that do not depend on
each other are built in parallel as separate processes (each its own System, as two
concurrent `lamina build` commands on one store are), at most WORKERS at a time; then
the ordinary build runs and finds every step of them in the cache.  The log stays
readable: each process's log is kept and printed whole, its lines prefixed with its
stage (`[stage builder] Step 2/5 : RUN make`), when it ends; the main build's log
follows in its usual form (`Using cache` for the stages already built).

Only the stages the target needs that no other of them needs (the tops of the stage
graph under the target) are started; each builds its own dependencies.  Not with
--no-cache (nothing would be reused), nor with remote caches, secrets, entitlements
or unnamed stages (a `--target` needs a name): those builds run sequentially.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from lamina.errors import BuildError

WORKERS = min(2, os.cpu_count() or 1)
_OWN_LINES = ("Sending build context", "Successfully built")  # the main build's log says these


def tops(p) -> list[int]:
    """Stages under the target that no other stage under it depends on (transitively)."""
    deps = {i: set(p.deps[i]) for i in p.order}
    closure: dict[int, set[int]] = {}

    def below(i: int) -> set[int]:
        if i not in closure:
            closure[i] = set()
            for d in deps[i]:
                closure[i] |= {d} | below(d)
        return closure[i]

    candidates = [i for i in p.order if i != p.target]
    needed_by_others = set().union(*(below(i) for i in candidates)) if candidates else set()
    return [i for i in candidates if i not in needed_by_others]


def wanted(builder, p) -> list[int]:
    """The stages to build ahead in parallel, or [] for a sequential build."""
    req = builder.req
    if WORKERS < 2 or req.no_cache or req.secrets or req.allow or req.cache_from or req.cache_to \
            or req.cache_images is not None:  # classic cachefrom follows one source image in order
        return []
    if os.environ.get("LAMINA_BUILD_PARALLEL", "1") == "0":
        return []
    chosen = tops(p)
    if len(chosen) < 2 or any(not p.stages[i].name for i in chosen):
        return []
    return chosen


def prebuild(builder, p, stages: list[int]) -> None:
    """Build `stages` (indexes of named stages) concurrently; their logs are printed
    whole, prefixed, in the order they finish; the first failure stops the build."""
    lock = threading.Lock()
    out = builder.log.out

    def one(i: int) -> tuple[int, int, str]:
        name = p.stages[i].name
        proc = subprocess.run(_argv(builder, name), input=builder.req.dockerfile.encode(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        text = proc.stdout.decode("utf-8", "replace")
        if not builder.req.quiet:
            with lock:
                out.write("".join(f"[stage {name}] {line}\n" for line in text.splitlines()
                                  if not line.startswith(_OWN_LINES)))
                out.flush()
        return i, proc.returncode, text

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(one, stages))
    for i, code, text in results:
        if code != 0:
            last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), f"exit status {code}")
            raise BuildError(last[7:] if last.startswith("Error: ") else last)


def _argv(builder, target: str) -> list[str]:
    system, req = builder.system, builder.req
    # the same store, snapshotter and runtime as this build's
    argv = [sys.executable, "-m", "lamina", "--root", system.root, "--storage-driver", system.snapshotter.name,
            "--runtime", system.runtime.path, "build", "-f", "-", "--target", target, "--network", req.network]
    for k, v in req.build_args.items():
        argv += ["--build-arg", f"{k}={v}"]
    if req.pull:
        argv.append("--pull")
    if req.platform is not None:
        argv += ["--platform", str(req.platform)]
    return argv + [req.context_dir]
