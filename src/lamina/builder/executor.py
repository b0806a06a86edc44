"""Executing a Dockerfile: stages, steps, the cache, the classic log.

The classic model (moby's builder/dockerfile): every step runs on the previous
step's image and commits a new, untagged image whose parent is that image.  RUN
runs a container; COPY/ADD/WORKDIR write into a mounted container rootfs;
metadata instructions only derive a new config (no container, no mount).  Each
step is first looked up in the cache by a key over its parent image and its
normalised content; the first miss in a stage rebuilds the rest of it.  A fully
cached build therefore touches only SQLite and config blobs.

Semantics follow BuildKit where the two builders differ (skipped stages,
WORKDIR owned by USER, --chmod, RUN --mount), the log follows the classic builder.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from lamina.builder import instructions as I
from lamina.builder.cache import BuildCache, step_key
from lamina.builder.log import BuildLog
from lamina.builder.shell import ShellError, ShellLex
from lamina.builder.stages import PROXY_ARGS, Plan, plan, platform_args
from lamina.builder.state import BuildRequest, StageState
from lamina.digest import Digest
from lamina.errors import BuildError, LaminaError

BUILTIN_ARGS = frozenset({"BUILDKIT_INLINE_CACHE", "BUILDKIT_MULTI_PLATFORM", "BUILDKIT_SANDBOX_HOSTNAME",
                          "BUILDKIT_CONTEXT_KEEP_GIT_DIR", "BUILDKIT_CACHE_MOUNT_NS", "BUILDKIT_BUILD_NAME",
                          "BUILDKIT_SYNTAX", "SOURCE_DATE_EPOCH"}) | PROXY_ARGS


class RunFailed(BuildError):
    """A RUN step exited non-zero; `lamina build` exits with the same code (docker CLI)."""

    def __init__(self, command: str, code: int) -> None:
        super().__init__(f"The command '{command}' returned a non-zero code: {code}")
        self.exit_code = code or 1


@dataclass(frozen=True)
class BuildResult:
    image_id: Digest
    stage_images: tuple


class Builder:
    def __init__(self, system, request: BuildRequest, log: BuildLog) -> None:
        self.system = system
        self.req = request
        self.log = log
        self.cache = BuildCache(system)
        self.filename = request.dockerfile_name
        self.stage_images: dict[int, Digest | None] = {}
        self.used_args: set[str] = set()
        self.lex = ShellLex("\\")
        self._context = None
        self._stage_args: dict[int, dict] = {}
        self.images: list[str] = []        # every step image, for the build memo
        self.lookups: dict[str, str] = {}  # image names resolved -> ids, for the build memo
        self.memoizable = True             # False once a step depends on something outside (a URL)

    # ------------------------------------------------------------------ entry
    def build(self) -> BuildResult:
        # step blobs and layers exist before the images that use them: keep them from sweeps
        with self.system.lease("build"):
            return self._build()

    def _build(self) -> BuildResult:
        from lamina.builder.instructions import parse_stages
        from lamina.builder.parser import parse

        result = parse(self.req.dockerfile, self.filename)
        self.lex = ShellLex(result.escape)
        stages, global_args = parse_stages(result)
        self.plan = p = plan(stages, global_args, self.req.build_args, self.req.target, self.lex, self.filename)
        self.used_args |= set(p.global_args)
        self._preflight(p)
        total = len(p.global_lines) + sum(1 + len(p.stages[i].commands) for i in p.order)
        total += 1 if self.req.labels else 0
        self.step_no, self.total = 0, total
        for arg in p.global_lines:
            self._step_line(arg.original)
        for i in p.order:
            self.stage_images[i] = self._build_stage(p, i)
        final = self.stage_images[p.target]
        if final is None:
            raise BuildError("the target stage has no image to tag (FROM scratch without instructions)")
        self._warn_unused()
        return BuildResult(final, tuple(self.stage_images.items()))

    def _preflight(self, p: Plan) -> None:
        """Everything that can be checked before a step runs: images named by FROM and
        --from exist (or can be pulled), --from names a stage or an image."""
        from lamina.builder.stages import resolve_ref

        for i in p.order:
            st = p.stages[i]
            for cmd in st.commands:
                name = cmd.from_ if isinstance(cmd, I.Copy) else None
                if name:
                    ref = resolve_ref(name, list(p.stages), allow_index=True, before=None)
                    if ref.stage is None:
                        self._image(ref.image, cmd.line, what=f"COPY --from={name}")
                elif isinstance(cmd, (I.Copy, I.Add)):
                    self._check_sources(cmd)

    def _check_sources(self, cmd) -> None:
        """Context sources that can be judged before expansion: a path out of the
        context, a missing file, globs that match nothing."""
        from lamina.builder.copystep import check_sources

        check_sources(self, cmd)

    # ------------------------------------------------------------------ stages
    def _build_stage(self, p: Plan, i: int) -> Digest | None:
        from lamina.builder import steps

        st_def = p.stages[i]
        base = p.bases[i]
        self._step_line(st_def.from_.original)
        args: dict[str, str | None] = {}
        if base.stage is not None:
            image_id = self.stage_images[base.stage]
            args = dict(self._stage_args.get(base.stage, {}))
        elif base.image.lower() == "scratch":
            image_id = None
        else:
            image_id = self._image(base.image, st_def.start_line, what="FROM", pull=self.req.pull)
        state = StageState(self.system, i, st_def.name, image_id, args)
        self.log.base(image_id)
        if image_id is not None or st_def.commands:
            state.seed_path()
        triggers = list(state.cfg.get("OnBuild") or [])
        if triggers:
            state.cfg["OnBuild"] = None
            self.log.triggers(len(triggers))
            for text in triggers:
                steps.dispatch(self, state, self._trigger(text, st_def.start_line), trigger=True)
        for cmd in st_def.commands:
            self._step_line(cmd.original)
            steps.dispatch(self, state, cmd)
        if i == p.target and self.req.labels:
            self._step_line("LABEL " + " ".join(f"{k}={v}" for k, v in sorted(self.req.labels.items())))
            steps.label_step(self, state, sorted(self.req.labels.items()))
        self._stage_args[i] = state.args
        return state.image_id

    def _trigger(self, text: str, line: int) -> I.Instruction:
        from lamina.builder.instructions import parse_instruction
        from lamina.builder.parser import parse

        result = parse(text + "\n", self.filename)
        if len(result.nodes) != 1:
            raise BuildError(f"{self.filename}:{line}: invalid ONBUILD trigger {text!r}")
        node = result.nodes[0]
        if node.keyword in ("onbuild", "from", "maintainer"):
            raise BuildError(f"{self.filename}:{line}: {node.keyword.upper()} isn't allowed as an ONBUILD trigger")
        from dataclasses import replace

        ins = parse_instruction(node, filename=self.filename, escape=result.escape)
        return replace(ins, node=replace(node, start_line=line, end_line=line))

    # ------------------------------------------------------------------ helpers
    def _step_line(self, text: str) -> None:
        self.step_no += 1
        self.log.step(self.step_no, self.total, text)

    def _image(self, name: str, line: int, *, what: str, pull: bool = False) -> Digest:
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
        try:
            from lamina.cli.commands.registry import ensure_image

            if pull:
                from lamina.reference import parse
                from lamina.transfer.progress import for_stream
                from lamina.transfer.pull import Puller

                result = Puller(self.system, for_stream(self.log.out, quiet=self.log.quiet)).pull(parse(name))
                return result.image_id
            found = ensure_image(self.system, name, out=self.log.out).id
            self.lookups[name] = str(found)
            return found
        except LaminaError as e:
            if isinstance(e, (InvalidReference,)):
                raise BuildError(f"{self.filename}:{line}: {what}: invalid reference {name!r}") from None
            raise BuildError(f"{self.filename}:{line}: {what}: no stage or image named {name!r} "
                             f"(not found locally and not pulled: {e})") from None
        except ImportError:
            raise BuildError(f"{self.filename}:{line}: {what}: no stage or image named {name!r}") from None

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
        """The step's image from the cache, or `make()`'s (recorded under `key`).
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
            image_id = make()
            self.log.removing(cid)
        else:
            image_id = make()
        self.cache.put(key() if callable(key) else key, image_id)
        state.move_to(image_id)
        self.images.append(str(image_id))
        self.log.result(image_id, cached=False)
        return image_id

    def key(self, state: StageState, *parts) -> str:
        return step_key(str(state.image_id or "scratch"), *parts)

    def _warn_unused(self) -> None:
        unused = sorted(set(self.req.build_args) - self.used_args - BUILTIN_ARGS - set(platform_args()))
        if unused:
            self.log.warning(f"One or more build-args [{' '.join(unused)}] were not consumed")

