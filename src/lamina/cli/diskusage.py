"""`system df [-v] [--format]`: docker 20.10's disk usage tables over engine/system.py's
disk_usage (the document GET /system/df answers with; one implementation).

The summary is one row per kind (TYPE TOTAL ACTIVE SIZE RECLAIMABLE), figured as
docker's formatter/disk_usage.go does; `-v` prints a table per kind instead.  Sizes are
go-units' HumanSize (four significant digits)."""

from __future__ import annotations

import sys
import time

SUMMARY_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
SUMMARY_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
                   "Reclaimable": "RECLAIMABLE"}


def _size(n: float) -> str:
    from lamina.units import human_size

    return human_size(n)


def _part(part: int, whole: int) -> str:
    """`reclaimable (percent%)`, the percent of `whole` as Go's integer division."""
    return f"{_size(part)} ({part * 100 // whole}%)" if whole > 0 else _size(part)


def summary_rows(doc: dict) -> list[dict]:
    images, containers = doc["Images"], doc["Containers"]
    volumes, cache = doc["Volumes"], doc["BuildCache"]
    layers = doc["LayersSize"]
    in_use = sum(i["VirtualSize"] - i["SharedSize"] for i in images
                 if i["Containers"] and i["VirtualSize"] != -1 and i["SharedSize"] != -1)
    active = [c for c in containers if c["State"] in ("running", "paused", "restarting")]
    rw = sum(c.get("SizeRw") or 0 for c in containers)
    vol_size = sum(v["UsageData"]["Size"] for v in volumes if v["UsageData"]["Size"] != -1)
    vol_free = sum(v["UsageData"]["Size"] for v in volumes
                   if v["UsageData"]["RefCount"] == 0 and v["UsageData"]["Size"] != -1)
    cache_used = sum(b["Size"] for b in cache if b["InUse"] and not b["Shared"])
    return [
        {"Type": "Images", "TotalCount": str(len(images)), "Active": str(sum(1 for i in images if i["Containers"])),
         "Size": _size(layers), "Reclaimable": _part(layers - in_use, layers)},
        {"Type": "Containers", "TotalCount": str(len(containers)), "Active": str(len(active)), "Size": _size(rw),
         "Reclaimable": _part(rw - sum(c.get("SizeRw") or 0 for c in active), rw)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)),
         "Active": str(sum(1 for v in volumes if v["UsageData"]["RefCount"] > 0)), "Size": _size(vol_size),
         "Reclaimable": _part(vol_free, vol_size)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)), "Active": str(sum(1 for b in cache if b["InUse"])),
         "Size": _size(doc["BuilderSize"]), "Reclaimable": _size(doc["BuilderSize"] - cache_used)},
    ]


def cmd_df(system, args) -> int:
    from lamina.cli import fmt
    from lamina.cli.formatctx import _struct
    from lamina.engine.system import disk_usage

    doc = disk_usage(system)
    if args.verbose and not fmt.wants_template(args.format):
        _verbose(doc)
        return 0
    rows = [_struct("*formatter.diskUsageImagesContext" if r["Type"] == "Images" else "*formatter.diskUsageContext",
                    r) for r in summary_rows(doc)]
    return fmt.print_listing(args.format if fmt.wants_template(args.format) else SUMMARY_FORMAT, rows,
                             SUMMARY_HEADERS)


def _ago(epoch: float) -> str:
    from lamina.units import human_duration

    return human_duration(max(0.0, time.time() - epoch)) + " ago"


def _verbose(doc: dict) -> None:
    from lamina.cli import fmt
    from lamina.quoting import go_quote

    out = sys.stdout
    out.write("Images space usage:\n\n")
    rows = []
    for i in sorted(doc["Images"], key=lambda i: -i["Created"]):
        repo, tag = "<none>", "<none>"
        if i["RepoTags"] and i["RepoTags"][0] != "<none>:<none>":  # only the first tag, as docker's
            repo, _, tag = i["RepoTags"][0].rpartition(":")
        shared = "N/A" if i["SharedSize"] == -1 else _size(i["SharedSize"])
        unique = "N/A" if i["SharedSize"] == -1 else _size(i["Size"] - i["SharedSize"])
        rows.append([repo, tag, i["Id"].removeprefix("sha256:")[:12], _ago(i["Created"]), _size(i["Size"]),
                     shared, unique, str(i["Containers"])])
    fmt.table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"],
              rows)
    out.write("\nContainers space usage:\n\n")
    rows = []
    for c in sorted(doc["Containers"], key=lambda c: -c["Created"]):
        local = sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")
        rows.append([c["Id"][:12], c["Image"], go_quote(fmt.ellipsis(c["Command"], 20)), str(local),
                     _size(c.get("SizeRw") or 0), _ago(c["Created"]), c["Status"], c["Names"][0].lstrip("/")])
    fmt.table(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"], rows)
    out.write("\nLocal Volumes space usage:\n\n")
    fmt.table(["VOLUME NAME", "LINKS", "SIZE"],
              [[v["Name"], str(v["UsageData"]["RefCount"]), _size(v["UsageData"]["Size"])] for v in doc["Volumes"]])
    out.write(f"\nBuild cache usage: {_size(doc['BuilderSize'])}\n\n")
    fmt.table(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"], [])
