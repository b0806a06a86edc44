"""POST /containers/create's body (docker's Config with HostConfig and NetworkingConfig)
as lifecycle.RunOptions: the same carrier `lamina run`'s flags fill.

HostConfig keys lamina's runner reads (ports, limits, capabilities, restart policy,
log config, mounts, DNS, ...) are kept docker-shaped in RunOptions.host, as the CLI's
flag modules put them; zero values the clients send for everything (the docker CLI
sends the whole struct) are left out so the record holds what was asked for."""

from __future__ import annotations

from lamina.api.server import HTTPError

# handled as RunOptions fields, not passed through
_OWN = {"Binds", "NetworkMode", "AutoRemove", "SecurityOpt"}
# what docker sends that lamina has no use for, or that must not be recorded as given
_IGNORED = {"ConsoleSize", "Isolation", "CgroupnsMode", "Runtime", "Links", "ContainerIDFile", "VolumeDriver"}


def _strings(value, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HTTPError(400, f"json: cannot unmarshal {type(value).__name__} into Go struct field {what} "
                             "of type []string")
    return tuple(value)


def _dict(value, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HTTPError(400, f"json: cannot unmarshal {type(value).__name__} into Go struct field {what}")
    return value


def run_options(body: dict, name: str | None):
    """RunOptions for a create request's body and its ?name=."""
    from lamina.lifecycle import RunOptions, parse_volume

    host = _dict(body.get("HostConfig"), "Config.HostConfig")
    labels = _dict(body.get("Labels"), "Config.Labels")
    if not all(isinstance(v, str) for v in labels.values()):
        raise HTTPError(400, "json: cannot unmarshal into Go struct field Config.Labels of type string")
    entrypoint = body.get("Entrypoint")
    entrypoint = None if entrypoint is None else _strings(entrypoint, "Config.Entrypoint")
    cmd = _strings(body.get("Cmd"), "Config.Cmd") or None
    binds = [parse_volume(b) for b in _strings(host.get("Binds"), "HostConfig.Binds")]
    taken = {b.destination for b in binds}
    for path in _dict(body.get("Volumes"), "Config.Volumes"):  # anonymous volumes (compose, docker-py)
        if path not in taken:
            binds.append(parse_volume(path))
    extra = {k: v for k, v in host.items()
             if k not in _OWN and k not in _IGNORED and v not in (None, "", 0, [], {}, False)}
    if extra.get("MemorySwappiness") == -1:  # the Go client's "not set"
        del extra["MemorySwappiness"]
    from lamina.runtime.resources import DEFAULTS as LIMIT_KEYS

    if any(k in extra for k in LIMIT_KEYS):  # the runner applies limits when the whole set is recorded, as run's
        extra = {**LIMIT_KEYS, **extra}
    log = extra.get("LogConfig") or {}
    extra["LogConfig"] = {"Type": log.get("Type") or "json-file", "Config": log.get("Config") or {}}
    if not (extra.get("RestartPolicy") or {}).get("Name"):
        extra.pop("RestartPolicy", None)
    network = host.get("NetworkMode") or "default"
    endpoints = _dict(_dict(body.get("NetworkingConfig"), "NetworkingConfig").get("EndpointsConfig"),
                      "NetworkingConfig.EndpointsConfig")
    aliases = ()
    if network in endpoints:
        aliases = _strings((endpoints[network] or {}).get("Aliases"), "EndpointSettings.Aliases")
    config = {}
    for key in ("StopSignal", "StopTimeout", "Domainname", "MacAddress"):
        if body.get(key) not in (None, ""):
            config[key] = body[key]
    for key in ("AttachStdin", "StdinOnce"):  # `run -i` closes stdin when its client leaves; `run -d -i` not
        config[key] = bool(body.get(key))
    healthcheck = body.get("Healthcheck")
    return RunOptions(
        cmd=cmd, entrypoint=entrypoint, env=_strings(body.get("Env"), "Config.Env"),
        workdir=body.get("WorkingDir") or None, user=body.get("User") or None,
        hostname=body.get("Hostname") or None, network=network, binds=tuple(binds),
        tty=bool(body.get("Tty")), interactive=bool(body.get("OpenStdin")), name=name,
        auto_remove=bool(host.get("AutoRemove")), labels=dict(labels),
        security_opt=_strings(host.get("SecurityOpt"), "HostConfig.SecurityOpt"), host=extra,
        exposed_ports=tuple(_dict(body.get("ExposedPorts"), "Config.ExposedPorts")), config=config,
        aliases=aliases, healthcheck=healthcheck if isinstance(healthcheck, dict) and healthcheck else None,
    )
