"""docker's formatter contexts: what `--format` templates of `ps`, `images` and
`history` see (fields and methods, e.g. `{{.Label "k"}}`), what `{{json .}}` marshals,
and the header each field gets in a `table` format."""

from __future__ import annotations

CONTAINER_HEADERS = {
    "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
    "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS", "Platform": "PLATFORM",
}
IMAGE_HEADERS = {
    "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE",
    "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
}
# `ps -s` without --format: docker's default table and a SIZE column
PS_TABLE_WITH_SIZE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t"
                      "{{.Names}}\t{{.Size}}")
# docker 20.10's NewContainerFormat for `ps --format raw` (-s adds a size line)
PS_RAW = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\n"
          "state: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\n"
          "labels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n")
PS_RAW_QUIET = "container_id: {{.ID}}"
HISTORY_HEADERS = {
    "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
    "Size": "SIZE", "Comment": "COMMENT",
}


def _struct(type_name: str, fields: dict, methods=None):
    from lamina.gotemplate import GoStruct

    # docker's contexts marshal a map of their method results: keys sorted
    return GoStruct(type_name, fields, methods, json_value=dict(sorted(fields.items())), fields_are_methods=True)


def wants_size(args) -> bool:
    """ps measures sizes for -s, or when the format uses .Size: docker runs the template
    once to see which fields it reads, and `{{json .}}` reads them all."""
    return bool(getattr(args, "size", False)) or wants_field(args, "Size")


def wants_field(args, *names: str) -> bool:
    """Whether the format may read one of `names` (a costly field is computed only then)."""
    fmt_text = getattr(args, "format", None) or ""
    if any(f".{name}" in fmt_text for name in names):
        return True
    tight = "".join(fmt_text.split())
    return any(f"json.{end}" in tight for end in ("}}", "-}}", ")", "|"))


def network_names(rec) -> str:
    """ps's Networks: the network the container is on (the default one is "bridge")."""
    from lamina.network import mode

    return mode(rec.host_config.get("NetworkMode") or "default")


def ports_column(system, rec) -> str:
    """ps's PORTS: a running container's published and exposed ports, grouped as docker's CLI does."""
    from lamina.network import published_ports
    from lamina.network.ports import display

    return display(published_ports(system, rec))


def mounts_fields(system, rec, args) -> dict:
    """ps's Mounts (each mount's volume name, else its source; 15 wide unless --no-trunc)
    and LocalVolumes (the mounts of the "local" driver), from inspect's Mounts as docker's
    CLI; none looked up when the format reads neither."""
    if not wants_field(args, "Mounts", "LocalVolumes"):
        return {}
    from lamina.cli.fmt import ellipsis
    from lamina.engine.containers import mounts

    trunc = not getattr(args, "no_trunc", False)
    rows = mounts(system, rec)
    names = [m.get("Name") or m["Source"] for m in rows]
    return {"Mounts": ",".join(ellipsis(n, 15) if trunc else n for n in names),
            "LocalVolumes": str(sum(1 for m in rows if m.get("Driver") == "local"))}


def container_size(system, rec) -> tuple[int, int]:
    """(SizeRw, SizeRootFs): the files in the container's upper dir, and those plus the image's."""
    from lamina.engine.containers import size_of

    return size_of(system, rec)


def container_context(row: dict, labels: dict, size: tuple[int, int] | None):
    """ps's ContainerContext from the row of plain strings cmd_ps builds (a row's
    own Size text is kept when no size was measured)."""
    from lamina.cli.fmt import human_size
    from lamina.gotemplate.execute import Func

    fields = dict(row)
    fields["Labels"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    fields.setdefault("LocalVolumes", "0")
    fields.setdefault("Platform", None)
    if size is not None or "Size" not in fields:
        rw, rootfs = size or (0, 0)
        text = human_size(rw)
        fields["Size"] = f"{text} (virtual {human_size(rootfs)})" if rootfs > 0 else text
    label = Func(lambda name: labels.get(name, ""), ("string",))
    return _struct("*formatter.ContainerContext", fields, {"Label": label})


def image_context(fields: dict):
    return _struct("*formatter.imageContext", fields)


def history_context(fields: dict):
    return _struct("*image.historyContext", fields)


def stats_context(fields: dict):
    return _struct("*formatter.statsContext", fields)
