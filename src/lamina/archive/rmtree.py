"""Removing a tree on file descriptors: `rm -rf` that never follows a symlink.

A layer, a build stage or a container's directory may hold hostile links and trees
deeper than any recursion limit; shutil.rmtree recurses and follows the path again at
each level.  Here every directory is opened no-follow relative to its parent's fd, at
most _MAX_OPEN_LEVELS at a time, and a subtree deeper than that is moved up and
finished from the top.  Also what `rm` of a container uses: lighter than shutil.
"""

from __future__ import annotations

import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_OPEN_LEVELS = 64


def remove_tree(parent_fd: int, name: str) -> None:
    """`rm -rf name` inside parent_fd: never follows symlinks, no recursion, and at
    most _MAX_OPEN_LEVELS fds however deep the tree (shutil.rmtree recurses and
    fails on the deep trees a hostile layer can build through symlinks)."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    top = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    # (fd, name in its parent, children still to remove)
    stack: list[tuple[int, str, list[tuple[str, bool]]]] = [(top, name, _children(top))]
    try:
        while stack:
            fd, dirname, pending = stack[-1]
            if pending:
                child, is_dir = pending.pop()
                if not is_dir:
                    os.unlink(child, dir_fd=fd)
                elif len(stack) < _MAX_OPEN_LEVELS:
                    cfd = os.open(child, _DIR_FLAGS, dir_fd=fd)
                    stack.append((cfd, child, _children(cfd)))
                else:  # too deep: move the subtree up to the top dir and finish it from there
                    os.rename(child, f".lamina-rm-{os.urandom(16).hex()}", src_dir_fd=fd, dst_dir_fd=top)
                continue
            if len(stack) == 1:
                pending.extend(_children(top))  # subtrees moved up meanwhile
                if pending:
                    continue
            stack.pop()
            os.close(fd)
            if stack:
                os.rmdir(dirname, dir_fd=stack[-1][0])
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def remove_path(path: str) -> None:
    """remove_tree of `path`, whose parent is a trusted store directory (a container
    dir, a temp dir): everything below it is walked on fds, no-follow."""
    parent, name = os.path.split(path.rstrip("/"))
    fd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        remove_tree(fd, name)
    finally:
        os.close(fd)


def _children(fd: int) -> list[tuple[str, bool]]:
    with os.scandir(fd) as it:
        return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
