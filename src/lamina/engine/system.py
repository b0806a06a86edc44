"""System operations: info, version, check, prune.

`info` and `version` return docker-shaped facts (GET /info, GET /version) as
dicts; `check` returns the store's problems and notes; `prune` removes what no
image uses and says how much it reclaimed.
"""

from __future__ import annotations

from lamina import __version__ as VERSION


def info(system) -> dict:
    """GET /info's facts lamina has.  The runtime is optional: when none can be
    found `Runtime` is None and `RuntimeError` says why (still worth showing the rest)."""
    from lamina import rootless
    from lamina.errors import LaminaError

    containers = system.containers.list()
    running = sum(1 for c in containers if c.running)
    facts = {
        "Containers": len(containers), "ContainersRunning": running, "ContainersStopped": len(containers) - running,
        "Images": len(system.images.list()), "ServerVersion": f"lamina {VERSION}",
        "Driver": system.snapshotter.name, "LaminaRootDir": system.root, "Runtime": None, "RuntimeError": None,
        "Rootless": rootless(),  # an ordinary user's lamina, in its user namespace (lamina/userns.py)
    }
    try:
        facts["Runtime"] = system.runtime
    except LaminaError as e:
        facts["RuntimeError"] = str(e)
    return facts


def runtime_without_store(root: str | None = None, runtime: str | None = None):
    """The OCI runtime `run` would use, found without opening the store (its facts are
    cached only where the store already exists); None when there is none."""
    import os

    from lamina import runtime_state_root, store_root
    from lamina.errors import LaminaError
    from lamina.runtime.oci import select_runtime

    try:
        return select_runtime(runtime or os.environ.get("LAMINA_RUNTIME"),
                              state_root=runtime_state_root(store_root(root)))
    except LaminaError:
        return None


def version(root: str | None = None, runtime: str | None = None) -> dict:
    """GET /version's facts: lamina's version, Python's, the platform, the runtime (or None)."""
    import platform

    return {"Version": VERSION, "PythonVersion": platform.python_version(), "Os": "linux",
            "Arch": platform.machine(), "Runtime": runtime_without_store(root, runtime)}


def check(system, *, rehash: bool = True) -> tuple[list[str], list[str]]:
    """Verify every blob, image, layer and container record: (problems, notes)."""
    from lamina.check import check_store

    return check_store(system, rehash=rehash)


def prune(system) -> tuple[list[str], int]:
    """Recover interrupted work, then remove blobs and layers no image uses:
    (the chain IDs of the deleted layers, bytes reclaimed from the content store)."""
    from lamina.gc import sweep
    from lamina.recovery import recover

    recover(system)
    before = sum(system.content.size(d) for d in system.content.walk())
    removed = sweep(system)
    after = sum(system.content.size(d) for d in system.content.walk())
    return removed, before - after
