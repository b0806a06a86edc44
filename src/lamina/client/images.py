"""`client.images` and its `Image` objects (docker-py's ImageCollection and Image)."""

from __future__ import annotations

from lamina.client.models import Model

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.client import Client


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
