"""The Python API: docker-py's high-level client, without a daemon.

    import lamina
    client = lamina.Client()                       # the CLI's store (LAMINA_ROOT or /var/lib/lamina)
    image, logs = client.images.build(path=".", tag="app:1")
    out = client.containers.run("app:1", "echo hi", remove=True)   # b"hi\\n"

Objects mirror docker-py's: `Image` (.id, .short_id, .tags, .labels, .attrs,
.history(), .tag()), `Container` (.id, .name, .status, .attrs, .diff(),
.commit(), .export(), .remove()).  Errors are lamina.errors (NoSuchImage and
NoSuchContainer are NotFound; a non-zero `run` raises ContainerError).  Long
work can be iterated as docker-shaped event dicts (`pull(..., stream=True)`,
`push(..., stream=True)`, and build's logs).

Split by concept: `models.py` (the Engine-API-document base), `images.py`
(Image, client.images), `containers.py` (Container, client.containers).

There is no daemon: `containers.run` runs the container in this process's
foreground, with its stdout/stderr captured, and returns when it exits.
"""

from __future__ import annotations

from lamina import store_root
from lamina.client.containers import Container, ContainerCollection
from lamina.client.images import Image, ImageCollection

__all__ = ["Client", "Container", "ContainerCollection", "Image", "ImageCollection"]


class Client:
    """A lamina store opened as a docker-py `DockerClient` would open a daemon."""

    def __init__(self, root: str | None = None, *, storage_driver: str | None = None,
                 runtime: str | None = None) -> None:
        self.root = store_root(root)
        self._storage_driver = storage_driver
        self._runtime = runtime
        self._system = None
        self.images = ImageCollection(self)
        self.containers = ContainerCollection(self)

    @classmethod
    def from_env(cls) -> "Client":
        """docker.from_env()'s counterpart: the store LAMINA_ROOT names (else the default)."""
        return cls()

    @property
    def system(self):
        """The engine's System for this store, opened on first use."""
        if self._system is None:
            from lamina.system import System

            self._system = System(self.root, storage_driver=self._storage_driver, runtime=self._runtime)
        return self._system

    def info(self) -> dict:
        from lamina.engine.system import info

        facts = info(self.system)
        runtime = facts["Runtime"]
        facts["Runtime"] = runtime.name if runtime is not None else None
        return facts

    def version(self) -> dict:
        from lamina.engine.system import version

        facts = version(self.root, self._runtime)
        facts["Runtime"] = facts["Runtime"].name if facts["Runtime"] is not None else None
        return facts

    def close(self) -> None:
        if self._system is not None:
            self._system.close()
            self._system = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<lamina.Client root={self.root!r}>"
