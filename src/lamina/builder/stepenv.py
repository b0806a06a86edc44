"""What a build step gets: the step environment.

A step (steps.py, copystep.py, mounts.py) needs the store and its handles
(`system`: images, content, layers, snapshotter, runtime), the build request, the
log, the step cache and a few services over them: expanding words in the stage's
scope, resolving an image by name, the lazily opened context, the cache lookup
around making an image.  It does not get the Builder: stage order, step numbering,
ONBUILD triggers and the unused-ARG warning stay in executor.py.
"""

from __future__ import annotations

import secrets

from lamina.builder.cache import BuildCache, step_key
from lamina.builder.log import BuildLog
from lamina.builder.shell import ShellError, ShellLex
from lamina.builder.state import BuildRequest, StageState
from lamina.digest import Digest
from lamina.errors import BuildError, LaminaError


def _stderr_notice(text: str) -> None:
    """docker's `Unable to find image` line before a pull: on stderr, as its CLI prints it."""
    import sys

    sys.stderr.write(text + "\n")
    sys.stderr.flush()


class StepEnv:
    def __init__(self, system, request: BuildRequest, log: BuildLog) -> None:
        self.system = system
        self.req = request
        self.log = log
        self.cache = BuildCache(system)
        self.filename = request.dockerfile_name
        self.lex = ShellLex("\\")         # the Dockerfile's escape token, once parsed
        self.plan = None                   # stages.Plan, once planned
        self.stage_images: dict[int, Digest | None] = {}
        self.used_args: set[str] = set()
        self._context = None
        self.images: list[str] = []        # every step image, for the build memo
        self.lookups: dict[str, str] = {}  # image names resolved -> ids, for the build memo
        self.memoizable = True             # False once a step depends on something outside (a URL)
        from lamina.builder.explain import Explainer

        # why each step hit or missed (build --explain-cache, build explain)
        self.explain = Explainer(system.db, request.context_dir, request.dockerfile_name, no_cache=request.no_cache)
        self.remote = None                 # remotecache.RemoteCache with --cache-from/--cache-to
        if request.cache_from or request.cache_to:
            from lamina.builder.remotecache import RemoteCache

            self.remote = RemoteCache(system, request.cache_from, request.cache_to, request.cache_ttl, log.warning)
        self.sources = None                # cachesources.CacheSources with the classic cachefrom images
        if request.cache_images is not None:  # given, even if none was found: then nothing hits
            from lamina.builder.cachesources import CacheSources

            self.sources = CacheSources(system, request.cache_images)

    def image(self, name: str, line: int, *, what: str, pull: bool = False) -> Digest:
        """A local image by name (pulled when missing or with --pull)."""
        from lamina.errors import InvalidReference, NoSuchImage

        try:
            if not pull:
                found = self.system.images.resolve(name).id
                self.lookups[name] = str(found)
                return found
        except InvalidReference as e:
            raise BuildError(f"{self.filename}:{line}: {what}: invalid reference {name!r}: {e}") from None
        except NoSuchImage:
            pass
        # transfer.pull's functions, which the engine's ensure_image also calls: the
        # engine runs the builder, the builder does not reach back up into the engine.
        try:
            from lamina.reference import parse
            from lamina.transfer.progress import for_stream
            from lamina.transfer.pull import pull_if_missing, pull_image

            if pull:
                progress = for_stream(self.log.out, quiet=self.log.quiet)
                return pull_image(self.system, parse(name), progress=progress).image_id
            found = pull_if_missing(self.system, name, progress=for_stream(self.log.out),
                                    notice=_stderr_notice).id
            self.lookups[name] = str(found)
            return found
        except LaminaError as e:
            if isinstance(e, (InvalidReference,)):
                raise BuildError(f"{self.filename}:{line}: {what}: invalid reference {name!r}") from None
            raise BuildError(f"{self.filename}:{line}: {what}: no stage or image named {name!r} "
                             f"(not found locally and not pulled: {e})") from None

    def expand(self, state: StageState, word: str, line: int) -> str:
        try:
            exp = self.lex.expand(word, state.scope())
        except ShellError as e:
            raise e.at(self.filename, line) from None
        self.used_args |= exp.matched & set(state.args)
        return exp.result

    def expand_words(self, state: StageState, word: str, line: int) -> list[str]:
        try:
            return self.lex.process_words(word, state.scope())
        except ShellError as e:
            raise e.at(self.filename, line) from None

    @property
    def context(self):
        if self._context is None:
            from lamina.builder.context import BuildContext

            self._context = BuildContext(self.req.context_dir, self.req.ignore)
        return self._context

    def cached_or(self, state: StageState, key, make, *, meta: bool = False, source: tuple | None = None) -> Digest:
        """The step's image from the cache, or `make()`'s (an `Image`, recorded under `key`).
        `key` may be a callable, evaluated after make(): there is no lookup then.
        `source` = (created_by, config) of the step, for the classic cachefrom images."""
        parent = str(state.image_id or "scratch")
        if not (self.req.no_cache or callable(key)):
            # with a shared cache, steps after a rebuilt one are probed too: a step that
            # missed may make the same image again (SOURCE_DATE_EPOCH, an ARG only a later
            # RUN reads), and the steps after it can still hit
            hit = self.lookup(state, key, source) if not state.busted or self.remote is not None else None
            if hit is not None:
                state.busted = False
                self.explain.hit(parent, key, str(hit))
                state.move_to(hit)
                self.images.append(str(hit))
                self.log.result(hit, cached=True)
                self._shared(key, hit, parent)
                return hit
        self.explain.miss(parent, None if callable(key) else key, state.busted)
        state.busted = True
        if meta:  # classic prints a container for metadata commits too
            cid = secrets.token_hex(32)
            self.log.running_in(cid)
            image = make()
            self.log.removing(cid)
        else:
            image = make()
        made_key = key() if callable(key) else key
        self.cache.put(made_key, image.id)
        self.explain.made(parent, made_key, str(image.id))
        state.move_to(image)  # the value just made: its config is not read back
        self.images.append(str(image.id))
        self.log.result(image.id, cached=False)
        self._shared(made_key, image.id, parent)
        return image.id

    def lookup(self, state: StageState, key: str, source: tuple | None = None) -> Digest | None:
        """The step image under `key`: the local cache's, else one a --cache-from store has
        (a registry's or a layout's), else one the classic cachefrom images have (`source`:
        the step's created_by and config; with those images, a local hit must be theirs)."""
        hit = self.cache.get(key)
        if hit is not None and self.sources is not None and not self.sources.owns(hit):
            hit = None
        if hit is None:
            hit = self._remote_hit(key, str(state.image_id or "scratch"))
        if hit is None and self.sources is not None and source is not None:
            hit = self.sources.find(state.image, *source)
            if hit is not None:
                self.cache.put(key, hit)
        return hit

    def _remote_hit(self, key: str, parent: str) -> Digest | None:
        if self.remote is None:
            return None
        hit = self.remote.fetch(key, parent)
        if hit is not None:
            self.cache.put(key, hit)  # the local cache has it now: the next build needs no registry
        return hit

    def _shared(self, key: str, image_id: Digest, parent: str) -> None:
        if self.remote is not None:  # for --cache-to, written once the build succeeded
            text = self.explain.steps[-1]["text"] if self.explain.steps else ""
            self.remote.note(key, image_id, parent, text)

    def key(self, state: StageState, *parts) -> str:
        if self.req.epoch is not None:  # its images record the epoch: not another build's step
            parts += (f"SOURCE_DATE_EPOCH={self.req.epoch}",)
        if state.image_id is None:  # FROM scratch for another platform (builder/platforms.py): its own key
            from lamina.builder.platforms import scratch_key

            return step_key(scratch_key(state.config), *parts)
        return step_key(str(state.image_id), *parts)

    _image = image  # mounts.py's name for it
