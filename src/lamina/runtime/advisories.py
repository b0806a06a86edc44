"""Known container-escape CVEs of the OCI runtimes, and whether the installed one is fixed.

Upstream version numbers say when a fix shipped, but distributions backport fixes
into old numbers: Debian 12's runc 1.1.5+ds1-1+deb12u1 carries the CVE-2024-21626
fix that upstream first released in 1.1.12.  So for a runtime binary that a Debian
package owns we also read the package's changelog, and a CVE it names counts as
fixed.  This probes processes (dpkg-query) and reads files: callers cache the
answer per binary (runtime/oci.py keeps it beside the version).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess

# runtime -> (CVE, first fixed release of each branch that has one), oldest first.
# A version is vulnerable when it is older than the fix of its own major.minor
# branch, or, in a branch without one, older than every fix.
ADVISORIES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "runc": (
        ("CVE-2019-5736", ("1.0.0-rc7",)),  # a container overwrites the host's runc binary
        ("CVE-2024-21626", ("1.1.12",)),  # a leaked host fd as the working directory
        ("CVE-2025-31133", ("1.2.8", "1.3.3", "1.4.0-rc.3")),  # masked paths swapped for symlinks
        ("CVE-2025-52565", ("1.2.8", "1.3.3", "1.4.0-rc.3")),  # /dev/console bind-mount races
        ("CVE-2025-52881", ("1.2.8", "1.3.3", "1.4.0-rc.3")),  # redirected writes to /proc
    ),
    # crun's CVE-2025-24965 is in its krun handler, only in builds with libkrun.  crun
    # is not open to runc's 2025 trio (its maintainers ran the reproducers), and its
    # CVE-2026-88264/88265 need a container with nothing mounted on /dev: lamina
    # always mounts docker's tmpfs there, or the user's own mount (runtime/specmounts.py).
    "crun": (("CVE-2025-24965", ("1.20",)),),
}
# CVE -> the build feature (as `<runtime> --version` lists it) it needs to apply.
NEEDS_FEATURE = {"CVE-2025-24965": "+LIBKRUN"}
_MAX_CHANGELOG = 16 << 20


def assess(name: str, path: str, version: str) -> dict:
    """{"warning": one line or None, "note": one line or None} for runtime `name`
    at `path` reporting `version`."""
    advisories = ADVISORIES.get(name, ())
    have = version_key(version)
    if have is None or not advisories:
        return {"warning": None, "note": None}
    open_ = [(cve, fixes) for cve, fixes in advisories if _vulnerable(have, fixes)]
    if any(cve in NEEDS_FEATURE for cve, _ in open_):
        built_with = _query([path, "--version"]).split()  # crun: "+SYSTEMD +SELINUX ..."
        open_ = [(cve, fixes) for cve, fixes in open_
                 if cve not in NEEDS_FEATURE or NEEDS_FEATURE[cve] in built_with]
    if not open_:
        return {"warning": None, "note": None}
    package = _debian_package(path)
    backported: list[str] = []
    if package is not None:
        named = _changelog_text(package[0])
        backported = [cve for cve, _ in open_ if cve in named]
    missing = [(cve, fixes) for cve, fixes in open_ if cve not in backported]
    debian = f"Debian's {package[0]} {package[1]}" if package else ""
    if not missing:
        return {"warning": None,
                "note": f"{name} {version} predates upstream's fixes; {debian} backports {', '.join(backported)}"}
    warning = (f"{name} {version} lacks the fixes for container escapes "
               f"{', '.join(cve for cve, _ in missing)} (in {name} {' / '.join(missing[-1][1])})")
    if backported:
        warning += f"; {debian} backports only {', '.join(backported)}"
    elif package:
        warning += f"; {debian} backports none of them"
    return {"warning": warning, "note": None}


def version_key(version: str) -> tuple | None:
    """A sortable key: "1.1.5+ds1" -> (1, 1, 5, (1, 0)); "1.0.0-rc92", "1.4.0-rc.3" and
    Debian's "1.0.0~rc93" are pre-releases, below the release.  None if unknown."""
    head = version.split("+", 1)[0].replace("~", "-")
    core, _, pre = head.partition("-")
    parts = core.split(".")
    if not parts or len(parts) > 4 or not all(p.isdigit() for p in parts):
        return None
    numbers = tuple(int(p) for p in parts) + (0,) * (3 - len(parts))
    if not pre:
        return (*numbers, (1, 0))
    m = re.fullmatch(r"rc\.?(\d+)", pre)
    return (*numbers, (0, int(m.group(1)))) if m else None


def _vulnerable(have: tuple, fixes: tuple[str, ...]) -> bool:
    keys = [k for k in map(version_key, fixes) if k is not None]
    same_branch = [k for k in keys if k[:2] == have[:2]]
    return have < same_branch[0] if same_branch else have < min(keys)


def _debian_package(path: str) -> tuple[str, str] | None:
    """(package, version) of the Debian package that ships `path`, or None."""
    dpkg = shutil.which("dpkg-query")
    if dpkg is None:
        return None
    real = os.path.realpath(path)
    # merged /usr: the package may list /sbin/runc for what is now /usr/sbin/runc
    for candidate in (real, real[4:]) if real.startswith("/usr/") else (real,):
        owner = _query([dpkg, "-S", candidate])
        for line in owner.splitlines():
            package, sep, listed = line.partition(": ")
            if sep and listed == candidate and "diversion" not in package:
                package = package.split(",")[0].split(":")[0].strip()  # "pkg:arch" -> "pkg"
                version = _query([dpkg, "-W", "-f=${Version}", package]).strip()
                return (package, version) if version else None
    return None


def _query(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, timeout=10, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return p.stdout.decode("utf-8", "replace") if p.returncode == 0 else ""


def _changelog_text(package: str) -> str:
    """The package's Debian changelog (the CVE ids its uploads name), or ""."""
    for name in ("changelog.Debian.gz", "changelog.gz"):
        try:
            with gzip.open(os.path.join("/usr/share/doc", package, name), "rb") as f:
                return f.read(_MAX_CHANGELOG).decode("utf-8", "replace")
        except (OSError, EOFError):
            continue
    return ""
