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

from dataclasses import dataclass

from lamina.builder import instructions as I
from lamina.builder.log import BuildLog
from lamina.builder.shell import ShellLex
from lamina.builder.stages import PROXY_ARGS, Plan, plan, platform_args
from lamina.builder.state import BuildRequest, StageState
from lamina.builder.stepenv import StepEnv
from lamina.digest import Digest
from lamina.errors import BuildError, RunFailed  # noqa: F401 - RunFailed: its old home

BUILTIN_ARGS = frozenset({"BUILDKIT_INLINE_CACHE", "BUILDKIT_MULTI_PLATFORM", "BUILDKIT_SANDBOX_HOSTNAME",
                          "BUILDKIT_CONTEXT_KEEP_GIT_DIR", "BUILDKIT_CACHE_MOUNT_NS", "BUILDKIT_BUILD_NAME",
                          "BUILDKIT_SYNTAX", "SOURCE_DATE_EPOCH"}) | PROXY_ARGS


@dataclass(frozen=True)
class BuildResult:
    image_id: Digest
    stage_images: tuple


class Builder:
    def __init__(self, system, request: BuildRequest, log: BuildLog) -> None:
        self.system = system
        self.req = request
        self.log = log
        self.filename = request.dockerfile_name
        self.env = StepEnv(system, request, log)
        self._stage_args: dict[int, dict] = {}

    # What the build memo records (engine.build): see StepEnv.
    @property
    def images(self) -> list[str]:
        return self.env.images

    @property
    def lookups(self) -> dict[str, str]:
        return self.env.lookups

    @property
    def memoizable(self) -> bool:
        return self.env.memoizable

    # ------------------------------------------------------------------ entry
    def build(self) -> BuildResult:
        # step blobs and layers exist before the images that use them: keep them from sweeps
        with self.system.lease("build"):
            result = None
            try:
                result = self._build()
            finally:
                self.env.explain.finish(str(result.image_id) if result is not None else None)
            return result

    def _build(self) -> BuildResult:
        from lamina.builder.instructions import parse_stages
        from lamina.builder.parser import parse

        result = parse(self.req.dockerfile, self.filename)
        env = self.env
        env.lex = ShellLex(result.escape)
        stages, global_args = parse_stages(result)
        env.plan = p = plan(stages, global_args, self.req.build_args, self.req.target, env.lex, self.filename,
                            platform=self.req.platform)
        env.used_args |= set(p.global_args)
        self._preflight(p)
        if len(p.order) > 2:  # two stages or more besides the target: maybe independent ones
            from lamina.builder.parallel import prebuild, wanted

            ahead = wanted(self, p)
            if ahead:
                prebuild(self, p, ahead)
        total = len(p.global_lines) + sum(1 + len(p.stages[i].commands) for i in p.order)
        total += 1 if self.req.labels else 0
        self.step_no, self.total = 0, total
        for arg in p.global_lines:
            self._step_line(arg.original)
        for i in p.order:
            env.stage_images[i] = self._build_stage(p, i)
        final = env.stage_images[p.target]
        if final is None:
            raise BuildError("the target stage has no image to tag (FROM scratch without instructions)")
        self._warn_unused()
        return BuildResult(final, tuple(env.stage_images.items()))

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
                        self.env.image(ref.image, cmd.line, what=f"COPY --from={name}")
                elif isinstance(cmd, (I.Copy, I.Add)):
                    self._check_sources(cmd)

    def _check_sources(self, cmd) -> None:
        """Context sources that can be judged before expansion: a path out of the
        context, a missing file, globs that match nothing."""
        from lamina.builder.copystep import check_sources

        check_sources(self.env, cmd)

    # ------------------------------------------------------------------ stages
    def _build_stage(self, p: Plan, i: int) -> Digest | None:
        from lamina.builder import steps

        st_def = p.stages[i]
        base = p.bases[i]
        self._step_line(st_def.from_.original)
        args: dict[str, str | None] = {}
        from lamina.builder.platforms import stage_platform

        platform = stage_platform(self.env, st_def)  # FROM --platform, else --platform's (None: not asked)
        if base.stage is not None:
            image_id = self.env.stage_images[base.stage]
            args = dict(self._stage_args.get(base.stage, {}))
        elif base.image.lower() == "scratch":
            image_id = None
        elif platform is not None:
            from lamina.builder.platforms import base_image

            image_id = base_image(self.env, base.image, st_def.start_line, platform)
        else:
            image_id = self.env.image(base.image, st_def.start_line, what="FROM", pull=self.req.pull)
        state = StageState(self.system, i, st_def.name, image_id, args)
        if image_id is None and platform is not None:  # FROM scratch for another platform: its config says so
            from lamina.builder.platforms import scratch_for

            state.move_to(scratch_for(platform))
        self.log.base(image_id)
        if image_id is not None or st_def.commands:
            state.seed_path()
        triggers = list(state.cfg.get("OnBuild") or [])
        if triggers:
            state.cfg["OnBuild"] = None
            self.log.triggers(len(triggers))
            for text in triggers:
                steps.dispatch(self.env, state, self._trigger(text, st_def.start_line), trigger=True)
        for cmd in st_def.commands:
            self._step_line(cmd.original)
            steps.dispatch(self.env, state, cmd)
        if i == p.target and self.req.labels:
            self._step_line("LABEL " + " ".join(f"{k}={v}" for k, v in sorted(self.req.labels.items())))
            steps.label_step(self.env, state, sorted(self.req.labels.items()))
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
        self.env.explain.begin(self.step_no, self.total, text)

    def _warn_unused(self) -> None:
        unused = sorted(set(self.req.build_args) - self.env.used_args - BUILTIN_ARGS - set(platform_args()))
        if unused:
            self.log.warning(f"One or more build-args [{' '.join(unused)}] were not consumed")

