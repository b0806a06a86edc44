"""`client.containers` and its `Container` objects (docker-py's ContainerCollection and
Container); no daemon: `run` runs the container in this process's foreground."""

from __future__ import annotations

import os
import sys

from lamina.client.images import Image
from lamina.client.models import Model

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.client import Client
from lamina.errors import ContainerError

_DIFF_KINDS = {"C": 0, "A": 1, "D": 2}  # the Engine API's change kinds


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
        """Block until it stops (a detached one too); docker-py's {"StatusCode", "Error"}."""
        from lamina.engine.services import wait

        code = wait(self.client.system, self.id)
        if not self._removed():
            self.reload()
        return {"StatusCode": code, "Error": None}

    def stop(self, timeout: int | None = None) -> None:
        from lamina.engine.services import stop

        stop(self.client.system, self.id, timeout)
        if not self._removed():
            self.reload()

    def kill(self, signal: str | int = "KILL") -> None:
        from lamina.engine.services import kill

        kill(self.client.system, self.id, signal)

    def restart(self, timeout: int | None = None) -> None:
        from lamina.engine.services import restart

        restart(self.client.system, self.id, timeout)
        self.reload()

    def pause(self) -> None:
        from lamina.engine.exec import pause

        pause(self.client.system, self.id)

    def unpause(self) -> None:
        from lamina.engine.exec import unpause

        unpause(self.client.system, self.id)

    def top(self, ps_args: str | None = None) -> dict:
        """GET /containers/{id}/top: {"Titles": [...], "Processes": [[...], ...]}."""
        from lamina.engine.exec import top

        titles, processes = top(self.client.system, self.id, ps_args or "")
        return {"Titles": titles, "Processes": processes}

    def exec_run(self, cmd, stdout: bool = True, stderr: bool = True, stdin: bool = False, tty: bool = False,
                 privileged: bool = False, user: str = "", detach: bool = False, environment=None,
                 workdir: str | None = None):
        """docker-py's exec_run: (exit_code, output) as an ExecResult; with `detach`, (None, b"").
        A process that cannot start gives docker's 126/127 and its text as the output."""
        import shlex

        from lamina.engine.exec import ExecOptions, exec_container
        from lamina.errors import ExecFailed

        env = environment or ()
        if isinstance(env, dict):
            env = [f"{k}={v}" for k, v in env.items()]
        opts = ExecOptions(cmd=tuple(shlex.split(cmd) if isinstance(cmd, str) else cmd), interactive=stdin,
                           tty=tty, detach=detach, user=user or None, workdir=workdir or None, env=tuple(env),
                           privileged=privileged)
        try:
            code, out, err = _captured(lambda: exec_container(self.client.system, self.id, opts))
        except ExecFailed as e:
            return ExecResult(e.exit_code, f"{e}\n".encode())
        if detach:
            return ExecResult(None, b"")
        return ExecResult(code, (out if stdout else b"") + (err if stderr else b""))

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

    def list(self, all: bool = False, filters: dict | None = None, limit: int = -1) -> list[Container]:
        """docker-py's: the running containers, or all; `filters` as dockerd takes them
        ({"status": "exited", "label": ["a=b"]}: engine/containerfilters.py), at most `limit`."""
        from lamina.engine.containers import inspect_container, list_containers

        system = self.client.system
        wanted = {}
        for key, value in (filters or {}).items():  # docker-py's convert_filters
            values = value if isinstance(value, (list, tuple)) else [value]
            wanted[key] = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]
        recs = list_containers(system, all=all, filters=wanted, limit=max(limit, 0))
        return [Container(self.client, inspect_container(system, r)) for r in recs]

    def create(self, image: str, command=None, **kwargs) -> Container:
        """A created container (docker-py's keywords: environment, working_dir, user,
        entrypoint, name, hostname, network_mode, volumes, labels, auto_remove, tty, stdin_open)."""
        from lamina.engine import containers as engine

        system = self.client.system
        record = engine.image_for_run(system, image)
        rec = engine.create(system, record, image, _run_options(command, **kwargs))
        return self.get(rec.id)

    def run(self, image: str, command=None, *, remove: bool = False, stdout: bool = True, stderr: bool = False,
            detach: bool = False, **kwargs):
        """Run a container to its end; what it wrote to stdout (and/or stderr) as bytes, as
        docker-py returns it.  A non-zero exit raises lamina.errors.ContainerError with the
        exit status and the container's stderr.  `detach`: started under its monitor
        (lamina/monitor.py); the Container is returned once it runs."""
        from lamina.engine import containers as engine

        system = self.client.system
        record = engine.image_for_run(system, image)
        rec = engine.create(system, record, image, _run_options(command, auto_remove=remove, **kwargs))
        if detach:
            from lamina.engine.services import start

            start(system, rec)
            return Container(self.client, {"Id": rec.id}) if remove else self.get(rec.id)
        code, out, err = _captured(lambda: engine.run(system, rec))
        if code != 0:
            raise ContainerError(rec.id, code, command, image, err)
        return (out if stdout else b"") + (err if stderr else b"")


class ExecResult(tuple):
    """docker-py's ExecResult: a named pair (exit_code, output)."""

    def __new__(cls, exit_code, output):
        return super().__new__(cls, (exit_code, output))

    exit_code = property(lambda self: self[0])
    output = property(lambda self: self[1])


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
