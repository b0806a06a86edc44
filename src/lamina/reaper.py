"""`python -m lamina.reaper ROOT RUNTIME CONTAINER_ID [--rm]`: reap after a dead front.

What a foreground container's watchdog (runtime/watchdog.py) execs when the
front died without saying it was done: a fresh interpreter that takes the
container down with `recovery.reap` (the cleanup `rm -f` and the next command's
recovery use too) and removes it if it was `run --rm`.  It lives here, above the
runtime, because reaping goes through the store, the network and the lifecycle;
the watchdog itself only knows the command line to exec, which lamina/runner.py
gives it by name (an import would close a cycle: runner <- lifecycle <- here).
"""

from __future__ import annotations

import sys


def main(args: list[str]) -> int:
    from lamina.errors import LaminaError, NoSuchContainer
    from lamina.lifecycle import remove
    from lamina.recovery import reap
    from lamina.system import System

    root, runtime, container_id = args[:3]
    system = System(root, runtime=runtime)
    try:
        rec = system.containers.get(container_id)
        reap(system, rec)
        if "--rm" in args[3:]:
            remove(system, system.containers.get(container_id), force=True)
    except NoSuchContainer:  # removed meanwhile (`rm -f`), or the record is lost: no process may stay
        system.runtime.destroy(container_id)
        system.snapshotter.unmount(system.containers.path(container_id))
        return 0
    except LaminaError:
        return 1  # the record still names us, now dead: the next command reaps it again
    finally:
        system.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
