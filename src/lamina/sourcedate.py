"""Reproducible images: SOURCE_DATE_EPOCH, as BuildKit reads it (build, commit, import).

With `SOURCE_DATE_EPOCH=N` (a build-arg, or the environment of `lamina build`,
which passes it on as a build-arg as buildx does) every image the build makes
has `created` and its new history entries' `created` set to N, and every
entry of a new layer has its mtime clamped to N (BuildKit's rewrite-timestamp:
newer times become N, older ones are kept).  The step container's random ID is
not recorded (`container`), so nothing of the build host or the moment is left
in the config: two clean builds of the same Dockerfile and context on two
stores give the same image ID and manifest digest.

The rest of what reproducibility needs is always on in lamina's layer writer
(archive/layertar.py): entries sorted bytewise, numeric owners with empty
user/group names, whole-second mtimes, no atime/ctime, whiteouts with mtime 0;
and push's gzip (transfer/compress.py) writes no mtime or host OS byte and cuts
blocks at fixed offsets, so its output does not depend on the core count.
`--reproducible` therefore only adds a default epoch of 0 (kaniko's
`--reproducible`: 1970-01-01T00:00:00Z) when none is given.  `commit` and
`import` read SOURCE_DATE_EPOCH from the environment for `created` (commit
also clamps its layer's times; import keeps the tar as given, as docker does).
"""

from __future__ import annotations

import os

from lamina.errors import UsageError

NAME = "SOURCE_DATE_EPOCH"


def apply(build_args: dict, environ, reproducible: bool) -> dict:
    """The build-args with SOURCE_DATE_EPOCH filled in from the environment (a
    --build-arg wins) and, with --reproducible, defaulting to 0.  Checked here
    so a bad value is a flag error before anything runs."""
    if NAME not in build_args and environ.get(NAME):
        build_args[NAME] = environ[NAME]
    if reproducible and not build_args.get(NAME):
        build_args[NAME] = "0"
    parse(build_args.get(NAME))
    return build_args


def parse(value: str | None) -> int | None:
    """The epoch in seconds, None when unset or empty (an empty value means unset)."""
    if value is None or value == "":
        return None
    text = value.strip()
    if not text.isdigit():
        raise UsageError(f"invalid SOURCE_DATE_EPOCH: {value!r} (want a number of seconds since 1970)")
    epoch = int(text)
    if epoch > 253402300799:  # past 9999-12-31: no RFC 3339 time
        raise UsageError(f"invalid SOURCE_DATE_EPOCH: {value!r} is out of range")
    return epoch


def from_environment(environ=None) -> int | None:
    """SOURCE_DATE_EPOCH of this process (what `commit` and `import` honour)."""
    return parse((os.environ if environ is None else environ).get(NAME))


def rfc3339(epoch: int) -> str:
    """`created` for an epoch: Go's RFC3339Nano of a whole second (no fraction), as BuildKit writes."""
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
