"""run/create's `--mount` (type=volume|bind|tmpfs) and `--volumes-from`, as docker's
CLI parses them (opts/mount.go: a CSV line of key[=value] fields) and dockerd checks
them at create (volume/mounts/linux_parser.go), with their texts.  What they give is
recorded as docker's HostConfig.Mounts / HostConfig.VolumesFrom; lamina/volumemounts.py
mounts them at each start."""

from __future__ import annotations

_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _bool(key: str, value: str, text: str | None = None) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(text or f"invalid value for {key}: {value}")


def parse(value: str) -> dict:
    """One --mount value as HostConfig.Mounts' entry; ValueError with the CLI's text."""
    import csv

    fields = next(csv.reader([value]), [])
    mount: dict = {"Type": "volume"}
    volume_opts: dict | None = None
    bind_opts: dict | None = None
    tmpfs_opts: dict | None = None
    for field in fields:
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
                continue
            if key == "volume-nocopy":
                volume_opts = {**(volume_opts or {}), "NoCopy": True}
                continue
            if key == "bind-nonrecursive":
                bind_opts = {**(bind_opts or {}), "NonRecursive": True}
                continue
            raise ValueError(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = val.lower()
        elif key in ("source", "src"):
            mount["Source"] = val
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, val)
        elif key == "consistency":
            mount["Consistency"] = val.lower()
        elif key == "bind-propagation":
            bind_opts = {**(bind_opts or {}), "Propagation": val.lower()}
        elif key == "volume-nocopy":
            volume_opts = {**(volume_opts or {}), "NoCopy": _bool(key, val, f"invalid value for volume-nocopy: {val}")}
        elif key == "volume-label":
            k, _, v = val.partition("=")
            volume_opts = {**(volume_opts or {}), "Labels": {**(volume_opts or {}).get("Labels", {}), k: v}}
        elif key == "tmpfs-size":
            from lamina.units import ram_in_bytes

            size = ram_in_bytes(val)
            if size is None:
                raise ValueError(f"invalid value for {key}: {val}")
            tmpfs_opts = {**(tmpfs_opts or {}), "SizeBytes": size}
        elif key == "tmpfs-mode":
            try:
                tmpfs_opts = {**(tmpfs_opts or {}), "Mode": int(val, 8)}
            except ValueError:
                raise ValueError(f"invalid value for {key}: {val}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if not mount["Type"]:
        raise ValueError("type is required")
    if not mount.get("Target"):
        raise ValueError("target is required")
    for opts, kind, name in ((volume_opts, "volume", "VolumeOptions"), (bind_opts, "bind", "BindOptions"),
                             (tmpfs_opts, "tmpfs", "TmpfsOptions")):
        if opts is not None:
            if mount["Type"] != kind:
                raise ValueError(f"cannot mix '{kind}-*' options with mount type '{mount['Type']}'")
            mount[name] = opts
    return mount


def valid(value: str) -> str | None:
    """The flag's validator (pflag's `invalid argument "…" for "--mount" flag: …`)."""
    try:
        parse(value)
    except ValueError as e:
        return str(e)
    return None


def host_config_from(args) -> dict:
    """The HostConfig keys of --mount and --volumes-from, with dockerd's checks at create."""
    from lamina.volumemounts import volume_specs

    mounts = [parse(value) for value in args.mount]
    volume_specs(mounts)
    host: dict = {"Mounts": mounts} if mounts else {}
    if args.volumes_from:
        host["VolumesFrom"] = list(args.volumes_from)
    return host
