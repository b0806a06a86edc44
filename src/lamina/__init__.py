"""lamina: a daemonless, Docker-compatible container engine.

`import lamina` stays cheap (the CLI imports this package first on every verb):
the Python API (`lamina.Client`, `lamina.errors`) is loaded on first use.
"""

import os

__version__ = "0.1.0"
DEFAULT_ROOT = "/var/lib/lamina"  # as /var/lib/docker; LAMINA_ROOT or --root / Client(root=) override it


RUN_ROOT = "/run/lamina"  # runtime state (network namespaces, the API socket): tmpfs, gone at reboot
# Set by lamina.userns.enter in the namespace it makes (and inherited by the monitor and
# every helper): its value is the invoking user's uid.  Euid is 0 inside, so this, not
# geteuid, tells a rootless lamina from root's.
ROOTLESS_ENV = "_LAMINA_ROOTLESS_UID"


_in_userns: list[bool] = []


def rootless() -> bool:
    """Does this process run for an ordinary user (in the user namespace lamina made)?
    The variable alone is not trusted: root's lamina started with it in its environment
    (sudo -E) is in the initial namespace, whose map is the whole id range."""
    if ROOTLESS_ENV not in os.environ:
        return False
    if not _in_userns:
        try:
            with open("/proc/self/uid_map") as f:
                _in_userns.append(f.read().split() != ["0", "0", "4294967295"])
        except OSError:
            _in_userns.append(False)
    return _in_userns[0]


def default_root() -> str:
    """Root's /var/lib/lamina; an ordinary user's $XDG_DATA_HOME/lamina (~/.local/share/lamina)."""
    if not rootless():
        return DEFAULT_ROOT
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "lamina")


def runtime_root() -> str:
    """Root's /run/lamina; an ordinary user's $XDG_RUNTIME_DIR/lamina (lamina.userns makes sure it is set)."""
    if not rootless() or not os.environ.get("XDG_RUNTIME_DIR"):
        return RUN_ROOT
    return os.path.join(os.environ["XDG_RUNTIME_DIR"], "lamina")


def runtime_state_root(store: str) -> str:
    """Where the OCI runtime keeps its state (`runc --root`): root's `<store>/runtime`; a
    rootless store's under $XDG_RUNTIME_DIR/lamina (tmpfs, not the home's disk), one per store."""
    if not rootless():
        return os.path.join(store, "runtime")
    import hashlib

    return os.path.join(runtime_root(), "runtime-" + hashlib.sha256(store.encode()).hexdigest()[:12])


def store_root(root: str | None = None) -> str:
    """The absolute store root: the argument, else $LAMINA_ROOT, else default_root()."""
    return os.path.abspath(root or os.environ.get("LAMINA_ROOT") or default_root())


def __getattr__(name: str):
    # PEP 562: the client and its errors are imported only when a program asks for them.
    if name in ("Client", "Image", "Container"):
        from lamina import client

        return getattr(client, name)
    if name in ("LaminaError", "NotFound", "ContainerError", "errors"):
        from lamina import errors

        return errors if name == "errors" else getattr(errors, name)
    raise AttributeError(f"module 'lamina' has no attribute {name!r}")


__all__ = ["__version__", "Client", "Container", "ContainerError", "DEFAULT_ROOT", "Image", "LaminaError", "NotFound", "default_root", "rootless",
           "runtime_root", "store_root"]
