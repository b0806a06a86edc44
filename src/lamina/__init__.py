"""lamina: a daemonless, Docker-compatible container engine.

`import lamina` stays cheap (the CLI imports this package first on every verb):
the Python API (`lamina.Client`, `lamina.errors`) is loaded on first use.
"""

import os

__version__ = "0.1.0"
DEFAULT_ROOT = "/var/lib/lamina"  # as /var/lib/docker; LAMINA_ROOT or --root / Client(root=) override it


def store_root(root: str | None = None) -> str:
    """The absolute store root: the argument, else $LAMINA_ROOT, else DEFAULT_ROOT."""
    return os.path.abspath(root or os.environ.get("LAMINA_ROOT") or DEFAULT_ROOT)


def __getattr__(name: str):
    # PEP 562: the client and its errors are imported only when a program asks for them.
    if name in ("Client", "Image", "Container"):
        from lamina import client

        return getattr(client, name)
    if name in ("LaminaError", "NotFound", "ContainerError", "errors"):
        from lamina import errors

        return errors if name == "errors" else getattr(errors, name)
    raise AttributeError(f"module 'lamina' has no attribute {name!r}")


__all__ = ["__version__", "Client", "Container", "ContainerError", "DEFAULT_ROOT", "Image", "LaminaError", "NotFound", "store_root"]
