"""Running foreign-architecture images: Debian's qemu-user-static through binfmt_misc.

A container of another architecture (`run --platform linux/arm64`, a RUN step of
`build --platform linux/arm64`) runs its binaries through the kernel's binfmt_misc:
the ELF magic of the foreign machine maps to `qemu-<cpu>-static`.  We register the
entry qemu-user-static ships in /usr/lib/binfmt.d (what systemd-binfmt or Debian's
`update-binfmts --enable` would write) when it is absent, mounting binfmt_misc first
when nothing mounted it (no systemd here).  Debian's entries carry the F
(fix-binary) flag: the kernel opens the interpreter at registration, so it works
inside the container's mount namespace where /usr/bin/qemu-* does not exist.
"""

from __future__ import annotations

import os
import sys

from lamina.errors import RuntimeFailure

BINFMT_DIR = "/proc/sys/fs/binfmt_misc"
CONF_DIRS = ("/usr/lib/binfmt.d", "/etc/binfmt.d")

# GOARCH (+ variant) -> qemu's cpu name, as tonistiigi/binfmt maps them
_QEMU_CPU = {"arm64": "aarch64", "arm": "arm", "amd64": "x86_64", "386": "i386", "ppc64le": "ppc64le",
             "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el", "mips64": "mips64",
             "loong64": "loongarch64"}
# what each host runs natively besides its own architecture
_NATIVE = {"amd64": {"amd64", "386"}, "arm64": {"arm64", "arm"}}

_said: set[str] = set()


def qemu_cpu(arch: str) -> str:
    return _QEMU_CPU.get(arch, arch)


def needs_emulation(arch: str) -> bool:
    """True when images of GOARCH `arch` (a config's `architecture`) do not run natively here."""
    from lamina.oci import host_arch

    host = host_arch()
    return bool(arch) and arch not in _NATIVE.get(host, {host})


def ensure(arch: str) -> None:
    """Make binaries of GOARCH `arch` runnable here: a no-op when native or registered."""
    if not needs_emulation(arch):
        return
    cpu = qemu_cpu(arch)
    entry = os.path.join(BINFMT_DIR, f"qemu-{cpu}")
    try:
        _mount_binfmt_misc()
        if _enabled(entry):
            return
        line = _registration(cpu)
        if cpu not in _said:
            _said.add(cpu)
            print(f"registering qemu-{cpu} with binfmt_misc", file=sys.stderr, flush=True)
        if os.path.exists(entry):  # registered but disabled: enable it, as update-binfmts --enable
            _write(entry, "1")
            return
        try:
            _write(os.path.join(BINFMT_DIR, "register"), line)
        except FileExistsError:  # another process registered it in between
            pass
    except OSError as e:
        raise RuntimeFailure(f"cannot register qemu-{cpu} with binfmt_misc to run linux/{arch} binaries: "
                             f"{e.strerror or e}") from None


def _enabled(entry: str) -> bool:
    try:
        with open(entry) as f:
            return f.readline().strip() == "enabled"
    except FileNotFoundError:
        return False


def _mount_binfmt_misc() -> None:
    if os.path.exists(os.path.join(BINFMT_DIR, "register")):
        return
    from lamina.errors import StoreError
    from lamina.snapshot.mount import mount  # the one mount(2) caller

    try:
        mount("binfmt_misc", BINFMT_DIR, "binfmt_misc", "")
    except StoreError as e:
        raise RuntimeFailure(f"cannot mount binfmt_misc on {BINFMT_DIR} to run foreign binaries: {e}") from None


def _registration(cpu: str) -> str:
    """The binfmt_misc line for qemu-`cpu`: the one qemu-user-static installed."""
    for d in CONF_DIRS:
        path = os.path.join(d, f"qemu-{cpu}.conf")
        try:
            with open(path) as f:
                lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith(("#", ";"))]
        except FileNotFoundError:
            continue
        if lines:
            line = lines[0]
            interpreter = line.split(":")[6] if line.count(":") >= 7 else ""
            if interpreter and not os.path.exists(interpreter):
                break
            if not line.split(":")[-1].count("F"):  # fix-binary: the interpreter is opened now, not in
                line += "F"                         # the container, where it does not exist
            return line
    raise RuntimeFailure(f"no emulator for linux/{_arch_of(cpu)}: qemu-{cpu}-static is not installed "
                         f"(apt-get install qemu-user-static)")


def _arch_of(cpu: str) -> str:
    return next((a for a, c in _QEMU_CPU.items() if c == cpu), cpu)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
