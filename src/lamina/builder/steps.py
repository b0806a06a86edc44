"""One function per kind of step: ARG, the metadata instructions, WORKDIR, RUN.

Each computes the step's classic history text and cache key *before* doing any
work, then asks for a cache hit or makes the image.  A step gets `b`, its step
environment (stepenv.StepEnv: store, request, log, cache, expansion), not the
Builder, and the stage's `state`, whose `image` is the parent it builds on.  COPY
and ADD live in copystep.py, RUN mounts in mounts.py.
"""

from __future__ import annotations

import os

from lamina.builder import configchanges as cc
from lamina.builder import instructions as I
from lamina.builder.commit import commit, layer_from_container
from lamina.builder.stages import PROXY_ARGS, platform_args
from lamina.errors import BuildError
from lamina.network import is_default


def dispatch(b, state, ins: I.Instruction, *, trigger: bool = False) -> None:
    if isinstance(ins, I.Arg):
        return arg_step(b, state, ins)
    if isinstance(ins, I.Run):
        return run_step(b, state, ins)
    if isinstance(ins, (I.Copy, I.Add)):
        from lamina.builder.copystep import copy_step

        return copy_step(b, state, ins)
    if isinstance(ins, I.Workdir):
        return workdir_step(b, state, ins)
    if isinstance(ins, I.Maintainer):
        return maintainer_step(b, state, ins)
    return meta_step(b, state, ins)


# --------------------------------------------------------------------- metadata


def meta_step(b, state, ins: I.Instruction) -> None:
    cfg = state.new_cfg()
    line = ins.line
    text = cc.apply_metadata(cfg, ins, lambda w: b.expand(state, w, line), cmd_set=state.cmd_set,
                             words=lambda w: b.expand_words(state, w, line))
    if isinstance(ins, I.Cmd):
        state.cmd_set = True
    created_by = cc.nop(state.shell, text)
    b.explain.note(instruction=text)
    _meta_commit(b, state, cfg, created_by)


def label_step(b, state, pairs) -> None:
    """`--label k=v`: the classic builder appends a LABEL instruction to the target stage."""
    cfg = state.new_cfg()
    text = cc.set_labels(cfg, pairs)
    _meta_commit(b, state, cfg, cc.nop(state.shell, text))


def maintainer_step(b, state, ins: I.Maintainer) -> None:
    cfg = state.new_cfg()
    author = ins.maintainer
    created_by = cc.nop(state.shell, "MAINTAINER " + author)
    _meta_commit(b, state, cfg, created_by, author=author)


def _meta_commit(b, state, cfg: dict, created_by: str, *, author: str | None = None,
                 extra: tuple = ()) -> None:
    key = b.key(state, "meta", created_by, cfg, author, *extra)
    parent = state.image
    b.cached_or(state, key, lambda: commit(b.system, parent, cfg, created_by, author=author, epoch=b.req.epoch),
                 meta=True, source=(created_by, cfg))


def arg_step(b, state, ins: I.Arg) -> None:
    """ARG: scope changes; the classic builder also commits a `#(nop) ARG` image."""
    texts = []
    values = []
    for name, default in ins.args:
        b.used_args.add(name)
        if name in b.req.build_args:
            value = b.req.build_args[name]
        elif default is not None:
            value = b.expand(state, default, ins.line)
        elif name in b.plan.global_args:
            value = b.plan.global_args[name]
        else:  # BuildKit's automatic platform ARGs (TARGETARCH, ...) once declared; else no value
            value = platform_args(b.req.platform).get(name)
        state.args[name] = value
        shown = None if default is None else b.expand(state, default, ins.line) if name in b.req.build_args \
            else value
        texts.append(name if shown is None else f"{name}={shown}")
        values.append((name, value))
    created_by = cc.nop(state.shell, "ARG " + " ".join(texts))
    b.explain.note(instruction="ARG " + " ".join(texts), args=dict(values))
    _meta_commit(b, state, state.new_cfg(), created_by, extra=(values,))


# --------------------------------------------------------------------- WORKDIR


def workdir_step(b, state, ins: I.Workdir) -> None:
    from lamina.builder.runstep import StepContainer

    cfg = state.new_cfg()
    path = b.expand(state, ins.path, ins.line)
    # BuildKit keeps an absolute WORKDIR as written (`/app/` stays `/app/`) and
    # joins (and cleans) a relative one onto the current one.
    cfg["WorkingDir"] = path if path.startswith("/") else cc.join_workdir(cfg.get("WorkingDir") or "/", path)
    workdir = cfg["WorkingDir"]
    created_by = cc.nop1(state.shell, "WORKDIR " + workdir)
    b.explain.note(instruction="WORKDIR " + workdir)
    key = b.key(state, "workdir", created_by, cfg, "mkdir-layer")  # not an older cache's no-layer image
    user = cfg.get("User") or ""

    def make():
        parent = state.image
        with StepContainer(b.system, parent, cfg) as ctr:
            b.log.running_in(ctr.id)
            made = _mkdir_owned(ctr.mount(), workdir, user, b.filename, ins.line)
            ctr.unmount()
            # BuildKit's mkdir step: a layer for every WORKDIR but `/`, even when it existed
            mkdir = made or workdir != "/"
            layer = layer_from_container(b.system, ctr.snap, ctr.dir, parent, epoch=b.req.epoch) if mkdir else None
            image = commit(b.system, parent, cfg, created_by, layer=layer, container_id=ctr.id, real_layer=mkdir,
                           epoch=b.req.epoch)
        b.log.removing(ctr.id)
        return image

    b.cached_or(state, key, make, source=(created_by, cfg))


def _mkdir_owned(rootfs: str, path: str, user: str, filename: str, line: int) -> bool:
    """mkdir -p inside the rootfs, through its links but never out of it (fds from
    the root); new dirs 0755, owned by USER (BuildKit).  True when it made any."""
    from lamina.archive.inroot import InRoot, make_dirs
    from lamina.errors import RuntimeFailure
    from lamina.runtime.rootfs import lookup_user

    where = f"{filename}:{line}: WORKDIR {path}"
    tree = InRoot(rootfs)
    try:
        _, made = make_dirs(tree, path)
        if made and user:
            ids = lookup_user(rootfs, user)
            for d in made:
                os.fchown(tree.dir_fd(d), ids.uid, ids.gid)
    except OSError as e:
        raise BuildError(f"{where}: {e.strerror.lower()}") from None
    except RuntimeFailure as e:
        raise BuildError(f"{where}: {e}") from None
    finally:
        tree.close()
    return bool(made)


# --------------------------------------------------------------------- RUN


def run_argv(state, ins: I.Run) -> list[str]:
    """What RUN executes: exec form as is; shell form under SHELL; heredocs as BuildKit."""
    if ins.json_form:
        return list(ins.cmd)
    text = ins.cmd
    docs = ins.heredocs
    if len(docs) == 1 and _only_heredoc(text):
        return [*state.shell, docs[0].body]
    if docs:
        text = text + "\n" + "".join(d.content + d.name + "\n" for d in docs)
    return [*state.shell, text]


def _only_heredoc(text: str) -> bool:
    from lamina.builder.parser import parse_heredoc

    words = text.split()
    return len(words) == 1 and parse_heredoc(words[0]) is not None


def run_step(b, state, ins: I.Run) -> None:
    from lamina.builder.mounts import prepare_mounts
    from lamina.builder.runstep import StepContainer

    if ins.security == "insecure" and "security.insecure" not in b.req.allow:
        # BuildKit's text (solver/llbsolver: ValidateEntitlements); buildx's flag grants it
        raise BuildError(f"{b.filename}:{ins.line}: security.insecure is not allowed "
                         "(build with --allow security.insecure)")
    argv = run_argv(state, ins)
    script = _shebang_script(ins)
    args_env = [f"{k}={v}" for k, v in state.run_args()]
    history = state.history_args()
    cmd_text = " ".join(["/dev/pipes/" + ins.heredocs[0].name] if script else argv)
    created_by = (f"|{len(history)} " + " ".join(history) + " " if history else "") + cmd_text
    b.explain.note(instruction="RUN " + cmd_text, args=dict(state.run_args()))
    network = ins.network and b.expand(state, ins.network, ins.line)
    if is_default(network):
        network = b.req.network
    mounts = [I.parse_mount(m.spec, lambda v: b.expand(state, v, ins.line)) if m.deferred else m
              for m in ins.mounts]
    with prepare_mounts(b, state, ins, mounts) as prepared:
        key = b.key(state, "run", created_by, argv, args_env, network, ins.security,
                    prepared.key, script)
        cfg = state.new_cfg()
        proxies = [f"{k}={v}" for k, v in sorted(b.req.build_args.items())
                   if k in PROXY_ARGS and k not in state.args]
        env = list(cfg.get("Env") or []) + args_env + proxies + prepared.env

        def make():
            parent = state.image
            with StepContainer(b.system, parent, cfg) as ctr:
                b.log.running_in(ctr.id)
                run = argv
                extra = prepared.mounts
                if script is not None:
                    extra, run = extra + (script_mount(ctr.dir, ins),), ["/dev/pipes/" + ins.heredocs[0].name]
                b.log.flush()
                code = ctr.run(run, env, user=cfg.get("User") or "", workdir=cfg.get("WorkingDir") or "/",
                               network=network, mounts=extra, quiet=b.log.quiet,
                               privileged=ins.security == "insecure", extra_hosts=b.req.extra_hosts)
                if code != 0:
                    from lamina.builder.executor import RunFailed

                    raise RunFailed(cmd_text, code)
                layer = layer_from_container(b.system, ctr.snap, ctr.dir, parent, epoch=b.req.epoch)
                image = commit(b.system, parent, cfg, created_by, layer=layer, container_id=ctr.id, epoch=b.req.epoch)
            b.log.removing(ctr.id)
            return image

        b.cached_or(state, key, make, source=(created_by, cfg))


def _shebang_script(ins: I.Run) -> str | None:
    """A RUN that is one heredoc whose body starts with #! runs the body as a file."""
    if ins.json_form or len(ins.heredocs) != 1 or not _only_heredoc(ins.cmd):
        return None
    body = ins.heredocs[0].body
    return body if body.startswith("#!") else None


def script_mount(ctr_dir: str, ins: I.Run):
    from lamina.builder.runstep import ExtraMount

    path = os.path.join(ctr_dir, "heredoc-" + str(abs(hash(ins.heredocs[0].name))))
    with open(path, "w") as f:
        f.write(ins.heredocs[0].body)
    os.chmod(path, 0o755)
    return ExtraMount("/dev/pipes/" + ins.heredocs[0].name, path, readonly=True)
