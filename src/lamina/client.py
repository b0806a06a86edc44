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

There is no daemon: `containers.run` runs the container in this process's
foreground, with its stdout/stderr captured, and returns when it exits.
"""

from __future__ import annotations

import os
import sys

from lamina import store_root
from lamina.errors import ContainerError, UsageError

_DIFF_KINDS = {"C": 0, "A": 1, "D": 2}  # the Engine API's change kinds


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


class Model:
    """An object with the Engine API's document as `.attrs`, like docker-py's models."""

    def __init__(self, client: Client, attrs: dict) -> None:
        self.client = client
        self.attrs = attrs

    @property
    def id(self) -> str:
        return self.attrs["Id"]

    def __eq__(self, other) -> bool:
        return isinstance(other, self.__class__) and self.id == other.id

    def __hash__(self) -> int:
        return hash(f"{self.__class__.__name__}:{self.id}")

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__}: {self.short_id}>"


class Image(Model):
    @property
    def short_id(self) -> str:
        return self.id[:19]  # sha256: + 12, as docker-py

    @property
    def tags(self) -> list[str]:
        return [t for t in self.attrs.get("RepoTags") or [] if t != "<none>:<none>"]

    @property
    def labels(self) -> dict:
        return (self.attrs.get("Config") or {}).get("Labels") or {}

    def reload(self) -> None:
        from lamina.engine.images import inspect_image

        self.attrs = inspect_image(self.client.system, self.id)

    def history(self) -> list[dict]:
        """GET /images/{id}/history: newest first, Id `<missing>` for entries no local image has."""
        from lamina.engine.images import history

        return [{"Id": ident, "Created": int(created or 0), "CreatedBy": by, "Size": size, "Comment": comment,
                 "Tags": self.tags if ident == self.id else None}
                for ident, created, by, size, comment in history(self.client.system, self.id)]

    def tag(self, repository: str, tag: str | None = None) -> bool:
        from lamina.engine.images import tag as tag_image

        tag_image(self.client.system, self.id, f"{repository}:{tag}" if tag else repository)
        self.reload()
        return True


class ImageCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, name: str) -> Image:
        """The image `name` (tag, ID or digest); lamina.errors.NoSuchImage if there is none."""
        from lamina.engine.images import inspect_image

        return Image(self.client, inspect_image(self.client.system, name))

    def list(self, name: str | None = None, all: bool = False) -> list[Image]:
        """The images `docker images` lists (each once), newest first."""
        from lamina.engine.images import inspect_image, list_images

        system = self.client.system
        seen: dict[str, Image] = {}
        for *_, rec in list_images(system, repository=name, all=all):
            if str(rec.id) not in seen:
                seen[str(rec.id)] = Image(self.client, inspect_image(system, rec))
        return list(seen.values())

    def build(self, *, path: str, tag=None, dockerfile: str | None = None, buildargs: dict | None = None,
              nocache: bool = False, pull: bool = False, labels: dict | None = None, target: str | None = None,
              network_mode: str | None = None, quiet: bool = False, secrets=()):
        """Build the context directory `path`; (Image, iterator of the log's event dicts)
        like docker-py.  A failed build raises lamina.errors.BuildError (RunFailed for a RUN
        that exited non-zero) with the log so far as its `build_log`."""
        from lamina.engine import build as engine
        from lamina.engine.events import Events

        tags = (tag,) if isinstance(tag, str) else tuple(tag or ())
        options = engine.BuildOptions(
            path=path, dockerfile=dockerfile, tags=tags, build_args=dict(buildargs or {}), target=target,
            no_cache=nocache, pull=pull, quiet=quiet, labels=dict(labels or {}),
            network=network_mode or "default", secrets=tuple(secrets))
        outcome, fp = engine.probe(options, self.client.root)
        if outcome is not None:
            events = [] if quiet else [{"stream": line + "\n"} for line in outcome.replay]
        else:
            events = []
            sink = Events(events.append)
            try:
                outcome = engine.build(self.client.system, options, out=sink, fingerprint=fp)
            except Exception as e:
                sink.close()
                e.build_log = events  # docker-py's BuildError.build_log
                raise
            sink.close()
        events.append({"aux": {"ID": outcome.image_id}})
        if not quiet:
            events.append({"stream": f"Successfully built {outcome.image_id[7:19]}\n"})
            events += [{"stream": f"Successfully tagged {name}\n"} for name in outcome.tags]
        return self.get(outcome.image_id), iter(events)

    def pull(self, repository: str, tag: str | None = None, *, platform: str | None = None,
             stream: bool = False):
        """Pull `repository[:tag]` (default tag latest); the Image.  With `stream`, an
        iterator of docker's progress events instead, whose `.result` is the Image at the end."""
        from lamina.engine import images as engine

        ref = f"{repository}:{tag}" if tag and "@" not in repository else repository

        def work(sink):
            result = engine.pull(self.client.system, ref, progress=sink, platform=platform)
            return self.get(str(result.image_id))

        return self._long(work, stream)

    def push(self, repository: str, tag: str | None = None, *, compression: str = "gzip",
             stream: bool = False):
        """Push a local image; the list of progress events (an iterator of them with `stream`)."""
        from lamina.engine import images as engine

        ref = f"{repository}:{tag}" if tag else repository
        work = lambda sink: engine.push(self.client.system, ref, progress=sink, compression=compression)  # noqa: E731
        if stream:
            return self._long(work, True)
        from lamina.engine.events import collect

        return collect(work)[1]

    @staticmethod
    def _long(work, stream: bool):
        if stream:
            from lamina.engine.events import run_with_events

            return run_with_events(work)
        from lamina.engine.events import collect

        return collect(work)[0]

    def remove(self, image: str, force: bool = False, noprune: bool = False) -> list[dict]:
        """DELETE /images/{name}: [{"Untagged": …}, {"Deleted": …}]."""
        from lamina.engine.images import remove

        lines = remove(self.client.system, image, force=force, prune=not noprune)
        return [dict([line.split(": ", 1)]) for line in lines]

    def load(self, data) -> list[Image]:
        """`docker load` of a docker-archive or OCI-layout tar (bytes or a binary file)."""
        import io

        from lamina.engine.images import load
        from lamina.transfer.progress import QuietProgress

        stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        loaded = load(self.client.system, stream, progress=QuietProgress())
        return [self.get(str(item.image_id)) for item in loaded]


class Container(Model):
    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return self.attrs["Name"].lstrip("/")

    @property
    def status(self) -> str:
        return self.attrs["State"]["Status"]

    @property
    def labels(self) -> dict:
        return self.attrs["Config"].get("Labels") or {}

    @property
    def image(self) -> Image:
        return self.client.images.get(self.attrs["Image"])

    def reload(self) -> None:
        from lamina.engine.containers import inspect_container

        self.attrs = inspect_container(self.client.system, self.id)

    def start(self) -> None:
        """Run it to its end (there is no daemon to keep it); output goes to this process's
        stdout/stderr.  Its exit code is then `wait()["StatusCode"]`."""
        from lamina.engine.containers import get_container, start

        start(self.client.system, get_container(self.client.system, self.id))
        if not self._removed():
            self.reload()

    def wait(self) -> dict:
        self.reload()
        return {"StatusCode": self.attrs["State"]["ExitCode"], "Error": None}

    def diff(self) -> list[dict]:
        """GET /containers/{id}/changes: [{"Path": …, "Kind": 0 changed | 1 added | 2 deleted}]."""
        from lamina.engine.containers import diff

        return [{"Path": c.path, "Kind": _DIFF_KINDS[c.kind]} for c in diff(self.client.system, self.id)]

    def commit(self, repository: str | None = None, tag: str | None = None, message: str | None = None,
               author: str | None = None, changes=None) -> Image:
        """A new image of the container's changes, tagged `repository[:tag]` when given."""
        from lamina.engine.containers import commit

        if isinstance(changes, str):
            changes = [changes]
        name = f"{repository}:{tag}" if repository and tag else repository
        image_id = commit(self.client.system, self.id, repository=name, author=author or "",
                          message=message or "", changes=changes or ())
        return self.client.images.get(str(image_id))

    def export(self, chunk_size: int = 2 << 20):
        """Its filesystem as a tar, in chunks (docker-py's generator)."""
        import tempfile

        from lamina.engine.containers import export

        with tempfile.TemporaryFile(dir=self.client.system.tmp_dir) as f:
            export(self.client.system, self.id, f)
            f.seek(0)
            while chunk := f.read(chunk_size):
                yield chunk

    def remove(self, force: bool = False, v: bool = False) -> None:
        from lamina.engine.containers import remove

        remove(self.client.system, self.id, force=force)

    def _removed(self) -> bool:
        from lamina.errors import NoSuchContainer

        try:
            self.client.system.containers.get(self.id)
            return False
        except NoSuchContainer:
            return True


class ContainerCollection:
    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, container_id: str) -> Container:
        """The container named or IDed `container_id`; lamina.errors.NoSuchContainer if none."""
        from lamina.engine.containers import inspect_container

        return Container(self.client, inspect_container(self.client.system, container_id))

    def list(self, all: bool = False) -> list[Container]:
        from lamina.engine.containers import inspect_container, list_containers

        system = self.client.system
        return [Container(self.client, inspect_container(system, r)) for r in list_containers(system, all=all)]

    def create(self, image: str, command=None, **kwargs) -> Container:
        """A created container (docker-py's keywords: environment, working_dir, user,
        entrypoint, name, hostname, network_mode, volumes, labels, auto_remove, tty, stdin_open)."""
        from lamina.engine import containers as engine

        system = self.client.system
        record = engine.image_for_run(system, image)
        rec = engine.create(system, record, image, _run_options(command, **kwargs))
        return self.get(rec.id)

    def run(self, image: str, command=None, *, remove: bool = False, stdout: bool = True, stderr: bool = False,
            detach: bool = False, **kwargs) -> bytes:
        """Run a container to its end; what it wrote to stdout (and/or stderr) as bytes, as
        docker-py returns it.  A non-zero exit raises lamina.errors.ContainerError with the
        exit status and the container's stderr."""
        if detach:
            raise UsageError("detached mode is not supported yet: lamina has no daemon to keep the container")
        from lamina.engine import containers as engine

        system = self.client.system
        record = engine.image_for_run(system, image)
        rec = engine.create(system, record, image, _run_options(command, auto_remove=remove, **kwargs))
        code, out, err = _captured(lambda: engine.run(system, rec))
        if code != 0:
            raise ContainerError(rec.id, code, command, image, err)
        return (out if stdout else b"") + (err if stderr else b"")


def _run_options(command=None, *, environment=None, working_dir=None, user=None, entrypoint=None, name=None,
                 hostname=None, network_mode=None, volumes=None, labels=None, auto_remove=False, tty=False,
                 stdin_open=False):
    """docker-py's container keywords as lifecycle.RunOptions."""
    import shlex

    from lamina.lifecycle import RunOptions, parse_volume

    def words(value):
        if value is None:
            return None
        return tuple(shlex.split(value)) if isinstance(value, str) else tuple(value)

    env = environment or ()
    if isinstance(env, dict):
        env = [f"{k}={v}" for k, v in env.items()]
    if isinstance(volumes, dict):  # docker-py's {host: {"bind": ctr, "mode": "ro"}}
        volumes = [f"{host}:{spec['bind']}:{spec.get('mode', 'rw')}" for host, spec in volumes.items()]
    if isinstance(labels, (list, tuple)):
        labels = dict.fromkeys(labels, "")
    return RunOptions(
        cmd=words(command) or None, entrypoint=words(entrypoint), env=tuple(env), workdir=working_dir,
        user=user, hostname=hostname, network=network_mode or "default",
        binds=tuple(parse_volume(v) for v in volumes or ()), tty=tty, interactive=stdin_open, name=name,
        auto_remove=auto_remove, labels=dict(labels or {}))


def _captured(run) -> tuple[int, bytes, bytes]:
    """Call `run()` with file descriptors 1 and 2 pointing at temporary files (the
    runtime hands the container our own stdout/stderr): (its result, stdout, stderr)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            code = run()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
        out.seek(0)
        err.seek(0)
        return code, out.read(), err.read()
