"""`iptables-restore --noflush`, waited for until the kernel has committed its
transaction rather than until the program exits.

With iptables' nf_tables back end, the last close of a netfilter netlink socket
after a transaction that deleted rules waits for the deferred destruction of those
rules, an RCU grace period (~10-15 ms here; nft_rcv_nl_event flushes
nf_tables' destroy work on NETLINK_URELEASE).  The rules are out of the ruleset
before that, at the commit, which the kernel announces to the nf_tables multicast
group as NFT_MSG_NEWGEN carrying the committing process's pid.  So we listen to
that group, start iptables-restore, and return when its generation is announced:
`run --rm -p` no longer waits for a grace period, and a port's rules are gone when
it returns.  The listening socket is handed to the child too, so that its last
close (the one that may wait) is the child's, not ours; the child is reaped on a
thread.  Where no announcement comes (iptables-legacy, a pid namespace), the
program's exit is waited for, as before.
"""

from __future__ import annotations

import os
import struct

NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
SOL_NETLINK, NETLINK_ADD_MEMBERSHIP = 270, 1
NEWGEN = (10 << 8) | 15  # NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_NEWGEN
NFTA_GEN_PROC_PID = 2
_HEADER = struct.Struct("=IHHII")
_NFGENMSG = 4


def run(argv: list[str], script: str) -> tuple[int, str]:
    """Run `argv` (an iptables-restore) fed `script`; (0, "") once its commit is
    announced, else (exit code, what it printed) at its exit."""
    from lamina.network.bridge import _batch

    watch = _listen()
    if watch is None:
        return _batch(argv, script)
    from lamina.runtime.process import spawn

    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe()
    pid = None
    try:
        os.write(in_w, script.encode())  # a few lines: well under a pipe's buffer
        os.close(in_w)
        in_w = -1
        os.set_inheritable(watch.fileno(), True)
        pid = spawn(argv, stdin=in_r, stdout=out_w, stderr=out_w, pass_fds=(watch.fileno(),))
        os.close(out_w)
        out_w = -1
        if _committed(watch, pid, out_r, script.count("COMMIT\n")):
            _reap_later(pid)
            return 0, ""
        with open(out_r, "rb", closefd=False) as f:
            output = f.read()
        status = os.waitpid(pid, 0)[1]
        return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
    finally:
        watch.close()  # the child's copy, if it still runs, is the last reference
        for fd in (in_r, in_w, out_w, out_r):
            if fd >= 0:
                os.close(fd)


def _listen():
    """A socket on nf_tables' multicast group, or None where there is none."""
    import _socket

    try:
        sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    except OSError:
        return None
    try:
        sock.bind((0, 0))
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, NFNLGRP_NFTABLES)
    except OSError:
        sock.close()
        return None
    return sock


def _committed(watch, pid: int, out_fd: int, commits: int) -> bool:
    """Wait for `commits` NFT_MSG_NEWGEN of `pid` (one per table the script commits: True)
    or for the child's output to end (False: it failed or exited without announcing; its
    output is still unread then)."""
    import select

    poller = select.poll()
    poller.register(watch.fileno(), select.POLLIN)
    poller.register(out_fd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if watch.fileno() in ready:
            try:
                data = watch.recv(65536)
            except OSError:  # ENOBUFS: announcements were lost, ours perhaps; wait for the exit
                return False
            commits -= _announces(data, pid)
            if commits <= 0:
                return True
        elif out_fd in ready:
            return False


def _announces(data: bytes, pid: int) -> int:
    """How many of the netlink messages in `data` are NEWGENs made by `pid`."""
    found = offset = 0
    while offset + _HEADER.size <= len(data):
        size, kind = _HEADER.unpack_from(data, offset)[:2]
        if size < _HEADER.size:
            break
        if kind == NEWGEN:
            at, end = offset + _HEADER.size + _NFGENMSG, offset + size
            while at + 4 <= end:
                length, attr = struct.unpack_from("=HH", data, at)
                if length < 4:
                    break
                if attr & 0x3FFF == NFTA_GEN_PROC_PID and struct.unpack_from(">I", data, at + 4)[0] == pid:
                    found += 1
                at += (length + 3) & ~3
        offset += (size + 3) & ~3
    return found


def _reap_later(pid: int) -> None:
    """Collect the child's exit on a thread (a long-lived caller must not gather zombies)."""
    import threading

    def reap() -> None:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    threading.Thread(target=reap, name="lamina-restore-reap", daemon=True).start()
