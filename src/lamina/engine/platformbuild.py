"""`build --platform a[,b...]`: the classic build once per platform, an OCI index of them.

Each platform's build is the ordinary executor with BuildRequest.platform set (its
stages' bases are that platform's, its RUN steps emulated when foreign); the steps
of each are logged after a `[linux/arm64]`-style line when there are several.  With
one platform the result is a plain image, as BuildKit's; with more, the tag names
the host's member (else the first) and stands for the index (store/indexes.py).
The last platform's builder exports the cache: the earlier ones' steps are merged into it.
"""

from __future__ import annotations

from dataclasses import replace


def build_platforms(system, request, log, platforms):
    """(last builder, result whose image_id is the tagged member, raw index bytes or None)."""
    from lamina.builder.executor import Builder, BuildResult
    from lamina.transfer.multiplatform import default_member, make_index

    images, builder, result = [], None, None
    for plat in platforms:
        if len(platforms) > 1 and not request.quiet:
            log.out.write(f"[{plat}]\n")
            log.out.flush()
        before = builder.env.remote if builder is not None else None
        builder = Builder(system, replace(request, platform=plat), log)
        result = builder.build()
        remote = builder.env.remote
        if remote is not None:  # --cache-to: every platform's steps, exported by the last builder
            remote.finals.append(result.image_id)
            if before is not None:
                remote.merge(before)
        images.append(result.image_id)
    if len(platforms) == 1:
        return builder, result, None
    return builder, BuildResult(default_member(system, images), result.stage_images), make_index(system, images)


def parse_platforms(values) -> tuple:
    """--platform's values (repeatable, comma-separated) as Platform values, duplicates once."""
    from lamina.transfer.platforms import parse_platform

    out = []
    for value in values or ():
        for text in str(value).split(","):
            if text.strip():
                plat = parse_platform(text)
                if plat not in out:
                    out.append(plat)
    return tuple(out)
