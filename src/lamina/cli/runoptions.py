"""What `run` and `create` flags mean: the parsed arguments made into lifecycle.RunOptions
(each flag family's HostConfig keys from its own module, imported only when its flags
are given), `--env-file` reading, and the image a run starts from (pulled if missing).
Imported by run/create only: `ps` and the other verbs of the containers module build
run's parser but never pay for this."""

from __future__ import annotations

import os
import sys


_HOST_FLAGS = ("cap_add", "cap_drop", "privileged", "security_opt", "device", "tmpfs", "read_only", "sysctl",
               "group_add", "shm_size")


def run_options(args):
    from lamina.cli import limitflags
    from lamina.cli.flags import key_values
    from lamina.lifecycle import RunOptions, parse_volume
    from lamina.cli.commands.exec import healthcheck_from

    env = []
    for path in args.env_file:
        env += read_env_file(path)
    for e in args.env:
        if "=" in e:
            env.append(e)
        elif e in os.environ:
            env.append(f"{e}={os.environ[e]}")
    labels = key_values(args.label)
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = (args.entrypoint,) if args.entrypoint else ()
    host = {}  # further HostConfig keys, each flag family's from its own module
    if limitflags.given(args):  # runtime/resources.py only when a limit is asked for
        from lamina.runtime.resources import host_config_from as resource_host_config

        host.update(resource_host_config(args, warn=lambda text: sys.stderr.write(f"WARNING: {text}\n")))
    if args.log_driver or args.log_opt:  # lamina.logs only when logging options are given
        from lamina.logs.options import host_config_from as logging_host_config

        host.update(logging_host_config(args))
    stop_config = {}
    if args.restart is not None or args.init or args.stop_signal or args.stop_timeout is not None:
        from lamina.cli.commands.services import config_from as services_config, host_config_from as services_host_config

        host.update(services_host_config(args))  # the services module only when asked for
        stop_config = services_config(args)
    exposed = ()
    if args.publish or args.publish_all or args.expose:  # network/ports.py only when asked for
        from lamina.network.ports import host_config_from as ports_host_config

        exposed, ports_host = ports_host_config(args)
        host.update(ports_host)
    if any(getattr(args, f) for f in _HOST_FLAGS):  # runtime/hostopts.py only when asked for
        from lamina.runtime.hostopts import host_config_from as confinement_host_config

        host.update(confinement_host_config(args, [parse_volume(v).destination for v in args.volume]))
    net_config, aliases = {}, ()
    if any(getattr(args, f) for f in ("add_host", "dns", "dns_search", "dns_option", "mac_address", "domainname",
                                      "network_alias")) or args.network.startswith("container:"):  # only then
        from lamina.network.options import run_options as network_options

        net_host, net_config, aliases = network_options(args)
        host.update(net_host)
    binds = tuple(parse_volume(v) for v in args.volume)
    if args.mount or args.volumes_from:  # lamina/mountflag.py only when asked for
        from lamina.mountflag import host_config_from as mount_host_config

        host.update(mount_host_config(args))
    return RunOptions(
        cmd=tuple(args.command) or None, entrypoint=entrypoint, env=tuple(env), workdir=args.workdir,
        user=args.user, hostname=args.hostname, network=args.network,
        binds=binds, tty=args.tty, interactive=args.interactive,
        name=args.name, auto_remove=args.rm, labels=labels,
        security_opt=_security_options(args.security_opt), host=host, exposed_ports=exposed,
        config={**net_config, **stop_config, **_detached_config(args)}, aliases=aliases,
        healthcheck=healthcheck_from(args),
    )


def _detached_config(args) -> dict:
    """run -d attaches nothing: docker records no Attach* and no StdinOnce (so an attach
    client leaving a `run -di` container does not close its stdin)."""
    if not getattr(args, "detach", False):
        return {}
    return {"AttachStdin": False, "AttachStdout": False, "AttachStderr": False, "StdinOnce": False}


def _security_options(values) -> tuple:
    if not values:  # runtime/seccomp.py only when --security-opt is given (create builds no spec)
        return ()
    from lamina.runtime.seccomp import security_options

    return tuple(security_options(values))


def read_env_file(path: str) -> list[str]:
    """docker's --env-file: KEY=VAL lines, bare KEY taken from our environment, # comments."""
    from lamina.errors import OptionError

    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise OptionError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    out = []
    for line in lines:
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not key or any(c.isspace() for c in key):
            raise OptionError(f"poorly formatted environment: variable '{key}' contains whitespaces" if key
                              else f"invalid environment variable: {line}")
        if eq:
            out.append(f"{key}={value}")
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def image_for_run(system, args):
    """The image to run, pulled first when missing: progress and docker's `Unable to
    find image` on stderr."""
    from lamina.cli.commands.registry import stderr_notice
    from lamina.engine.containers import image_for_run as engine_image_for_run

    def progress():  # transfer/progress.py only when the image is pulled
        from lamina.transfer.progress import for_stream

        return for_stream(sys.stderr)

    record = engine_image_for_run(system, args.image, pull=args.pull, progress_for=progress,
                                  notice=stderr_notice, platform=getattr(args, "platform", None))
    if not getattr(args, "platform", None):
        from lamina.engine.containers import platform_warning

        warning = platform_warning(system, record)  # a foreign image run without --platform, as dockerd warns
        if warning:
            sys.stderr.write(f"WARNING: {warning}\n")
    return record
