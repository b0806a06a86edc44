"""Capabilities and the security options of a container: --cap-add, --cap-drop,
--privileged and --security-opt, as docker's CLI records them and dockerd applies them.

Recording (`host_config_from`, at create): the CLI's normalisation (upper case, a
`CAP_` prefix, `ALL` kept; de-duplicated and sorted, as the 28 client sends them)
and dockerd's refusals (`invalid CapAdd: unknown capability: "CAP_FOO"`, CapAdd
checked first; `invalid --security-opt 2: …`).  Applying (`effective`, at start):
moby's TweakCapabilities (privileged: all; ALL in CapAdd: all but the dropped; ALL
in CapDrop: only the added; else the defaults minus the dropped plus the added).

Two deliberate differences from dockerd 20.10, both because docker's behaviour
fails or is dated here: "all capabilities" (--privileged, --cap-add ALL) means all
those the kernel knows *and lamina holds* (this VM runs without CAP_SYS_RESOURCE,
and dockerd's privileged container then dies in runc with `unable to apply caps:
operation not permitted`; Podman filters the same way); and CAP_PERFMON, CAP_BPF and
CAP_CHECKPOINT_RESTORE (Linux 5.8/5.9) are known, as in moby >= 23 (20.10's vendored
list predates them and calls them unknown).  A capability named explicitly that
lamina does not hold is refused before runc, in runc's words.
"""

from __future__ import annotations

from lamina.errors import InvalidParameter, OptionError, RuntimeFailure

# By number (linux/capability.h): GetAllCapabilities' order.
ALL_CAPABILITIES = tuple("CAP_" + name for name in """
CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO
SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE""".split())
ALL = "ALL"
GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def normalize(values) -> list[str]:
    """The docker CLI's normalizeCaps: no trimming (` chown` becomes `CAP_ CHOWN`, unknown)."""
    out = set()
    for value in values:
        value = value.upper()
        out.add(value if value == ALL or value.startswith("CAP_") else "CAP_" + value)
    return sorted(out)


def host_config_from(args) -> dict:
    """HostConfig's CapAdd, CapDrop, Privileged, and SecurityOpt/MaskedPaths/ReadonlyPaths
    when --privileged or systempaths=unconfined change them (only the keys flags set):
    the CLI's checks of --security-opt (seccomp.security_options), then dockerd's,
    CapAdd first."""
    from lamina.runtime.seccomp import security_options

    security = security_options(args.security_opt)  # the CLI's refusals come first
    out: dict = {}
    add, drop = normalize(args.cap_add), normalize(args.cap_drop)
    for field, names in (("CapAdd", add), ("CapDrop", drop)):
        for name in names:
            if name != ALL and name not in ALL_CAPABILITIES:
                from lamina.quoting import go_quote

                raise InvalidParameter(f"invalid {field}: unknown capability: {go_quote(name)}")
    for value in args.security_opt:
        check_security_opt(value)
    if add:
        out["CapAdd"] = add
    if drop:
        out["CapDrop"] = drop
    if args.privileged or "systempaths=unconfined" in args.security_opt:
        if "systempaths=unconfined" in security:  # the CLI turns it into empty path lists
            security = [s for s in security if s != "systempaths=unconfined"]
            out.update(MaskedPaths=[], ReadonlyPaths=[])
        if args.privileged:
            out["Privileged"] = True
            security.append("label=disable")  # dockerd adds it (without SELinux nothing else changes)
        out["SecurityOpt"] = security or None
    return out


def check_security_opt(value: str) -> None:
    """dockerd's parseSecurityOpt.  `label=` and `apparmor=` are accepted and, as dockerd
    does on a host without SELinux or AppArmor (this kernel has neither), change nothing."""
    if value in ("no-new-privileges", "disable", "systempaths=unconfined"):  # the last one: the CLI's
        return
    key, sep, val = value.partition("=")
    if not sep:
        key, sep, val = value.partition(":")
    if key in ("label", "apparmor", "seccomp"):
        return
    if key != "no-new-privileges" or val not in GO_BOOLS:
        from lamina.quoting import go_quote

        raise InvalidParameter(f"invalid --security-opt 2: {go_quote(value)}")


def cli_security_opt(value: str) -> None:
    """The CLI's syntax check: a value after `=` or `:`, except for no-new-privileges."""
    key, sep, val = value.partition("=")
    if not sep and key != "no-new-privileges":
        key, sep, val = value.partition(":")
    if (not sep or not val) and key != "no-new-privileges":
        from lamina.quoting import go_quote

        raise OptionError(f"Invalid --security-opt: {go_quote(value)}")


def no_new_privileges(security_opt) -> bool:
    """The last no-new-privileges option wins, as in dockerd's loop."""
    on = False
    for value in security_opt or ():
        if value == "no-new-privileges":
            on = True
        elif value.startswith(("no-new-privileges=", "no-new-privileges:")):
            on = GO_BOOLS.get(value[len("no-new-privileges="):], on)
    return on


def effective(host_config: dict, defaults) -> tuple[str, ...]:
    """The container's bounding set (moby's TweakCapabilities), limited to what we hold."""
    held = held_capabilities()
    every = tuple(c for c in ALL_CAPABILITIES if c in held)
    if host_config.get("Privileged"):
        return every
    add = host_config.get("CapAdd") or []
    drop = host_config.get("CapDrop") or []
    missing = [c for c in add if c != ALL and c not in held]
    if missing:  # runc would fail with this text, after the mounts: say it first, and say why
        raise RuntimeFailure("unable to start container process: unable to apply caps: operation not permitted "
                             f"({', '.join(missing)}: not in lamina's own bounding set)")
    if ALL in add:
        caps = [c for c in every if c not in drop]
    elif ALL in drop:
        caps = list(add)
    else:
        caps = [c for c in defaults if c not in drop] + [c for c in add if c not in defaults]
    return tuple(caps)


def held_capabilities() -> frozenset[str]:
    """Our own bounding set: a container can get no capability beyond it."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return frozenset(c for i, c in enumerate(ALL_CAPABILITIES) if mask >> i & 1)
    except OSError:
        pass
    return frozenset(ALL_CAPABILITIES)
