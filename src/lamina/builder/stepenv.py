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

    def cached_or(self, state: StageState, key, make, *, meta: bool = False) -> Digest:
        """The step's image from the cache, or `make()`'s (an `Image`, recorded under `key`).
        `key` may be a callable, evaluated after make(): there is no lookup then."""
        if not (self.req.no_cache or state.busted or callable(key)):
            hit = self.cache.get(key)
            if hit is not None:
                state.move_to(hit)
                self.images.append(str(hit))
                self.log.result(hit, cached=True)
                return hit
        state.busted = True
        if meta:  # classic prints a container for metadata commits too
            cid = secrets.token_hex(32)
            self.log.running_in(cid)
            image = make()
            self.log.removing(cid)
        else:
            image = make()
        self.cache.put(key() if callable(key) else key, image.id)
        state.move_to(image)  # the value just made: its config is not read back
        self.images.append(str(image.id))
        self.log.result(image.id, cached=False)
        return image.id

    def key(self, state: StageState, *parts) -> str:
        return step_key(str(state.image_id or "scratch"), *parts)

    _image = image  # mounts.py's name for it
