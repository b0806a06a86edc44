"""`inspect` documents shaped like docker's (Engine API 1.41)."""

from __future__ import annotations

from datetime import datetime, timezone

from lamina import oci


def _rfc3339(epoch: float | None) -> str:
    if not epoch:
        return "0001-01-01T00:00:00Z"
    t = datetime.fromtimestamp(epoch, timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}000Z"


def inspect_image(system, record) -> dict:
    config = system.images.config(record.id)
    tags = [_familiar(t) for t in system.images.tags_of(record.id)]
    digests = [_familiar(d) for d in system.images.digests_of(record.id)]
    last_tag = system.db.execute("SELECT MAX(tagged) FROM tags WHERE image_id=?", (str(record.id),)).fetchone()[0]
    return {
        "Id": str(record.id),
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": record.parent or "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created", ""),
        "Container": config.get("container", ""),
        "ContainerConfig": config.get("container_config") or oci.empty_container_config(),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config") or oci.empty_container_config(),
        "Architecture": config.get("architecture", ""),
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Os": config.get("os", ""),
        "Size": record.size,
        "VirtualSize": record.size,
        "GraphDriver": {"Data": None, "Name": system.snapshotter.name},
        "RootFS": {"Type": "layers", "Layers": [str(d) for d in oci.diff_ids(config)]},
        "Metadata": {"LastTagTime": _rfc3339(last_tag) if last_tag else "0001-01-01T00:00:00Z"},
    }


def inspect_container(system, rec) -> dict:
    from lamina.network import settings as network_settings

    cfg = rec.config
    args = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    ctr_dir = system.containers.path(rec.id)
    state = rec.state
    return {
        "Id": rec.id,
        "Created": _rfc3339(rec.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": {
            "Status": state, "Running": state == "running", "Paused": False, "Restarting": False,
            "OOMKilled": False, "Dead": False, "Pid": rec.pid or 0, "ExitCode": rec.exit_code or 0, "Error": "",
            "StartedAt": _rfc3339(rec.started), "FinishedAt": _rfc3339(rec.finished),
        },
        "Image": rec.image_id,
        "ResolvConfPath": f"{ctr_dir}/resolv.conf",
        "HostnamePath": f"{ctr_dir}/hostname",
        "HostsPath": f"{ctr_dir}/hosts",
        "LogPath": "",
        "Name": "/" + rec.name,
        "RestartCount": 0,
        "Driver": rec.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": rec.host_config,
        "GraphDriver": {"Data": {"UpperDir": f"{ctr_dir}/upper", "WorkDir": f"{ctr_dir}/work",
                                 "MergedDir": f"{ctr_dir}/rootfs"} if rec.driver == "overlay" else None,
                        "Name": rec.driver},
        "Mounts": [
            {"Type": "bind", "Source": b.split(":")[0], "Destination": b.split(":")[1], "Mode": "",
             "RW": not b.endswith(":ro"), "Propagation": "rprivate"}
            for b in rec.host_config.get("Binds") or []
        ],
        "Config": cfg,
        "NetworkSettings": network_settings(system, rec),
    }


def _familiar(name: str) -> str:
    from lamina.reference import parse

    if "@" in name:
        repo, _, digest = name.partition("@")
        return f"{parse(repo).familiar_repository}@{digest}"
    return parse(name).familiar
