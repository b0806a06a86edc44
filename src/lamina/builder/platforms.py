"""What `build --platform` changes in a stage: its platform, its base image, scratch's config.

BuildKit's rules: a stage builds for the target platform (--platform's, else the
host's) unless its FROM says `--platform=...` (typically `$BUILDPLATFORM`, expanded
with the global ARGs and the automatic platform ARGs); its base image is the member
of that platform (a local index member, a local image whose config says that
platform, else a pull of that platform).  RUN steps of a foreign stage run under
emulation (runtime/binfmt.py), decided by the stage image's `architecture`.
"""

from __future__ import annotations

from lamina.builder.shell import ShellError
from lamina.builder.stages import platform_args
from lamina.digest import Digest
from lamina.errors import BuildError, LaminaError, NoSuchImage


def stage_platform(env, st_def):
    """The Platform stage `st_def` builds for, or None when nothing asked for one."""
    from lamina.transfer.platforms import parse_platform

    req = env.req
    if st_def.platform:
        scope = {**platform_args(req.platform),
                 **{k: v for k, v in env.plan.global_args.items() if v is not None}}
        try:
            text = env.lex.process_word(st_def.platform, scope)
        except ShellError as e:
            raise e.at(env.filename, st_def.start_line) from None
        try:
            return parse_platform(text)
        except LaminaError as e:  # BuildKit: failed to parse platform ...
            raise BuildError(f"{env.filename}:{st_def.start_line}: failed to parse platform {text}: {e}") from None
    return req.platform


def base_image(env, name: str, line: int, platform) -> Digest:
    """FROM `name` for `platform`: a local member or matching image, else pulled for it."""
    from lamina.transfer.multiplatform import image_for_platform

    system = env.system
    mismatch = None
    try:
        if not env.req.pull:
            found = image_for_platform(system, name, platform).id
            env.lookups[name] = str(found)
            return found
    except NoSuchImage:
        pass
    except LaminaError as e:  # here for another platform only: that one is pulled (and tagged, as `pull --platform`)
        mismatch = e
    from lamina.reference import parse
    from lamina.transfer.progress import for_stream
    from lamina.transfer.pull import pull_image

    try:
        ref = parse(name)
        before = _tagged(system, ref)
        pulled = pull_image(system, ref, progress=for_stream(env.log.out, quiet=env.log.quiet),
                            platform=str(platform)).image_id
        if before is not None and before != pulled:  # as BuildKit, a build's pull leaves the tag alone
            system.images.tag(before, ref)
        return pulled
    except LaminaError as e:
        if mismatch is not None:
            raise BuildError(f"{env.filename}:{line}: FROM: {mismatch} (and not pulled: {e})") from None
        raise BuildError(f"{env.filename}:{line}: FROM: no image named {name!r} for {platform} "
                         f"(not found locally and not pulled: {e})") from None


def _tagged(system, ref) -> Digest | None:
    try:
        return system.images.resolve(ref.name).id if ref.tag else None
    except NoSuchImage:
        return None


def scratch_for(platform):
    from lamina import oci
    from lamina.image import Image

    config = oci.new_config(platform.architecture)
    config["os"] = platform.os
    if platform.variant:
        config["variant"] = platform.variant
    return Image.scratch(config)


def scratch_key(config: dict) -> str:
    """The cache's parent name for scratch: `scratch` on the host's platform (as before
    --platform existed), `scratch@linux/arm64` on another, whose image says arm64."""
    from lamina import oci

    if not oci.foreign_arch(config):
        return "scratch"
    variant = config.get("variant")
    return f"scratch@{config.get('os') or 'linux'}/{config['architecture']}" + (f"/{variant}" if variant else "")
