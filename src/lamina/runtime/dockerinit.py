"""`run --init`: docker's init (tini, which docker ships as docker-init) as PID 1.

As dockerd does, the host's init binary is bind-mounted read-only at
/sbin/docker-init and put before the container's arguments (`docker-init --
CMD...`); the recorded Path/Args stay the command's.  The binary must work in
any image, so the static build is preferred (Debian's tini package has both).
"""

from __future__ import annotations

import os

from lamina.errors import RuntimeFailure

INIT_PATH = "/sbin/docker-init"
_CANDIDATES = ("/usr/bin/tini-static", "/usr/libexec/docker/docker-init", "/usr/bin/docker-init", "/usr/bin/tini")


def with_init(args: tuple[str, ...], binds: tuple) -> tuple[tuple[str, ...], tuple]:
    """(args, binds) of a container started with --init."""
    from lamina.runtime.specmounts import BindMount

    return (INIT_PATH, "--", *args), (*binds, BindMount(init_binary(), INIT_PATH, True))


def init_binary() -> str:
    for path in _CANDIDATES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    # dockerd's text when its init-path is missing
    raise RuntimeFailure('exec: "docker-init": executable file not found in $PATH (install tini)')
