"""Docker's default seccomp confinement, written into config.json for runc to apply.

We never filter syscalls ourselves: the runtime compiles `linux.seccomp` with
libseccomp and loads it before it execs the container's process (crun may be
handed its own earlier compile of the same section: runtime/seccompcache.py).  This
module only decides what that section says, the way dockerd does (moby profiles/seccomp):

* a profile in Docker's format (default action, `archMap`, syscall rules with
  `includes`/`excludes` on architecture, capability and kernel version);
* `linux_seccomp` resolves it for this host and the container's bounding set
  into the OCI form (moby's setupSeccomp): only the native architecture's entry
  of the arch map, only the rules whose conditions hold.

The default profile is Docker's: everything not listed fails with EPERM; an
allow-list of ordinary syscalls; `personality` only for the personas Docker
allows; `clone` without namespace flags (unless CAP_SYS_ADMIN); `clone3` fails
with ENOSYS so libc falls back to the checkable `clone`; the privileged groups
(mount, unshare, setns, perf_event_open, bpf, ...) only with their capability;
keyctl, add_key and request_key never (the keyrings are not namespaced).  A
custom `--security-opt seccomp=PATH.json` profile in Docker's format goes
through the same resolution.

We follow moby's current default_linux.go.  Against the profile dockerd 20.10
writes, it also allows name_to_handle_at, pkey_* and process_vm_readv/writev,
and refuses AF_VSOCK sockets.
"""

from __future__ import annotations

import errno
import os

from lamina.errors import OptionError, RuntimeFailure

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"

# Allowed for every container (Docker's unconditional list, x86/arm names together:
# runc skips the names libseccomp does not know for the target architectures).
ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl
fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu
getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname
getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create memfd_secret mincore
mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify
mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select
semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg
sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer
setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync
sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit
umask uname unlink unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid
waitpid write writev
"""

# Allowed only when the container's bounding set holds the capability.
BY_CAPABILITY = (
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_ADMIN", "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
                      "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname "
                      "sethostname setns syslog umount umount2 unshare"),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# Architecture-only syscalls, by Docker's (libseccomp's) native arch names.
BY_ARCH = (
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "x86"), "modify_ldt"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"),
)

# The native architecture and the ones its kernel also runs (archMap).
ARCH_MAP = (
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
)
# uname -m -> (Docker's native arch name, SCMP arch of the arch map)
NATIVE = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64")}

# personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, both, and the query.
PERSONAS = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
ACTIONS = frozenset({"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                     "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"})
AF_VSOCK = 40


def _rule(names: str, action: str = ALLOW, **extra) -> dict:
    return {"names": names.split(), "action": action, **extra}


def _arg(index: int, value: int, op: str) -> dict:
    return {"index": index, "value": value, "op": op}  # valueTwo: 0 when absent (MASKED_EQ's comparand)


def default_profile() -> dict:
    """Docker's default profile, in Docker's profile format."""
    rules = [
        _rule(ALLOWED),
        # Unprivileged ptrace is only safe from kernel 4.8 on (seccomp bypass before it).
        _rule("process_vm_readv process_vm_writev ptrace", includes={"minKernel": "4.8"}),
        _rule("socket", args=[_arg(0, AF_VSOCK, "SCMP_CMP_NE")]),
        *(_rule("personality", args=[_arg(0, value, "SCMP_CMP_EQ")]) for value in PERSONAS),
        *(_rule(names, includes={"arches": list(arches)}) for arches, names in BY_ARCH),
        *(_rule(names, includes={"caps": [cap]}) for cap, names in BY_CAPABILITY),
        # Without CAP_SYS_ADMIN: threads and forks, no new namespaces.
        _rule("clone", args=[_arg(0, CLONE_NAMESPACES, "SCMP_CMP_MASKED_EQ")],
              excludes={"caps": ["CAP_SYS_ADMIN"]}),
        # clone3 passes its flags in memory, where seccomp cannot look: ENOSYS makes
        # glibc fall back to clone, whose flags the rule above checks.
        _rule("clone3", ERRNO, errnoRet=errno.ENOSYS, excludes={"caps": ["CAP_SYS_ADMIN"]}),
    ]
    return {"defaultAction": ERRNO, "defaultErrnoRet": errno.EPERM, "archMap": list(ARCH_MAP), "syscalls": rules}


def linux_seccomp(option: str, capabilities) -> dict | None:
    """config.json's `linux.seccomp` for a --security-opt seccomp value ("default",
    "unconfined", or a profile's JSON text), or None for no filter."""
    if option == "unconfined":
        return None
    if option == "default":
        return _default_for(tuple(capabilities))
    import json  # a custom profile only: json imports re, off the default start path

    try:
        profile = json.loads(option)
    except ValueError as e:
        raise RuntimeFailure(f"decoding seccomp profile failed: {e}") from None
    return resolve(profile, capabilities)


_DEFAULTS: dict = {}  # a dict, not functools.lru_cache: functools costs ~2 ms of every run's start


def _default_for(capabilities: tuple[str, ...]) -> dict | None:
    # One dict per capability set, shared by every spec built in this process:
    # config.json only serialises it, nothing may modify it.
    found = _DEFAULTS.get(capabilities)
    if found is None:
        if len(_DEFAULTS) >= 8:  # bounded, as the lru_cache was, for a long-lived API server
            _DEFAULTS.clear()
        found = _DEFAULTS[capabilities] = resolve(default_profile(), capabilities)
    return found


def resolve(profile: dict, capabilities, *, machine: str | None = None, kernel: tuple[int, int] | None = None):
    """A Docker-format profile as the OCI `linux.seccomp` for this host and these
    (bounding) capabilities; None when it names no action and no syscall (Docker:
    seccomp disabled).  Raises RuntimeFailure for a malformed profile."""
    if not isinstance(profile, dict):
        raise RuntimeFailure("seccomp profile: not a JSON object")
    try:
        return _resolve(profile, capabilities, machine or os.uname().machine, kernel or _kernel_version())
    except (AttributeError, TypeError) as e:  # a list where an object belongs, and the like
        raise RuntimeFailure(f"seccomp profile: malformed: {e}") from None


def _resolve(profile: dict, capabilities, machine: str, kernel: tuple[int, int]) -> dict | None:
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    if profile.get("architectures") and profile.get("archMap"):
        raise RuntimeFailure("seccomp profile: 'architectures' and 'archMap' were both specified, use one")
    native, scmp_arch = NATIVE.get(machine, (machine, ""))
    out: dict = {"defaultAction": _action(profile.get("defaultAction") or ERRNO)}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if profile.get(key) is not None:
            out[key] = profile[key]
    arches = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == scmp_arch:
            arches = [scmp_arch, *(entry.get("subArchitectures") or [])]
    if arches:
        out["architectures"] = arches
    caps = set(capabilities)
    syscalls = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise RuntimeFailure("seccomp profile: a syscalls entry is not an object")
        if not _applies(rule, native, caps, kernel):
            continue
        if rule.get("name") and rule.get("names"):
            raise RuntimeFailure("seccomp profile: 'name' and 'names' were both specified in a syscalls entry")
        names = [rule["name"]] if rule.get("name") else list(rule.get("names") or [])
        entry = {"names": names, "action": _action(rule.get("action"))}
        for key in ("errnoRet", "args"):
            if rule.get(key) is not None:
                entry[key] = rule[key]
        syscalls.append(entry)
    if syscalls:
        out["syscalls"] = syscalls
    return out


def _action(action) -> str:
    if action not in ACTIONS:
        raise RuntimeFailure(f"seccomp profile: unknown action {action!r}")
    return action


def _applies(rule: dict, native: str, caps: set, kernel: tuple[int, int]) -> bool:
    """moby's includes/excludes: excluded when any excluded arch/cap matches or
    the kernel is at least minKernel; included when every included condition holds."""
    exc = rule.get("excludes") or {}
    inc = rule.get("includes") or {}
    if native in (exc.get("arches") or []) or caps & set(exc.get("caps") or []):
        return False
    if exc.get("minKernel") and kernel >= _parse_kernel(exc["minKernel"]):
        return False
    if inc.get("arches") and native not in inc["arches"]:
        return False
    if not set(inc.get("caps") or []) <= caps:
        return False
    if inc.get("minKernel") and kernel < _parse_kernel(inc["minKernel"]):
        return False
    return True


def _parse_kernel(text: str) -> tuple[int, int]:
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor.split("-")[0])
    except ValueError:
        raise RuntimeFailure(f"seccomp profile: invalid kernel version {text!r}") from None


def _kernel_version() -> tuple[int, int]:
    return _parse_kernel(os.uname().release)  # one uname per call: cheaper than importing functools


# ---------------------------------------------------------------- --security-opt


def security_options(values) -> list[str]:
    """docker's --security-opt values as HostConfig.SecurityOpt records them: a
    seccomp profile file is read and stored as its compact JSON.  A bad value is
    refused as docker's CLI refuses it, before any request (OptionError: exit 125); the
    other options (no-new-privileges, label, apparmor, systempaths) are recorded as
    given, checked as dockerd checks them by runtime/capabilities.py."""
    out = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep:
            key, sep, val = value.partition(":")  # docker still accepts the old `seccomp:unconfined`
        if key != "seccomp" or not sep or not val:
            from lamina.runtime.capabilities import cli_security_opt

            cli_security_opt(value)
            out.append(value)
            continue
        if val not in ("unconfined", "builtin"):
            import json

            try:
                with open(val, "rb") as f:
                    profile = json.load(f)
            except OSError as e:
                reason = (e.strerror or str(e)).lower()  # Go's words: `open f: no such file or directory`
                raise OptionError(f"opening seccomp profile ({val}) failed: open {val}: {reason}") from None
            except ValueError as e:
                raise OptionError(f"compacting json for seccomp profile ({val}) failed: {e}") from None
            try:
                resolve(profile, ())
            except RuntimeFailure as e:
                raise OptionError(f"seccomp profile ({val}): {e}") from None
            val = json.dumps(profile, separators=(",", ":"))
        out.append(f"seccomp={val}")
    return out


def seccomp_option(security_opt) -> str:
    """The seccomp value recorded in HostConfig.SecurityOpt ("default" when none)."""
    for value in security_opt or ():
        if value.startswith("seccomp="):
            value = value[len("seccomp="):]
            return "default" if value == "builtin" else value  # docker's name of its default
    return "default"
