"""`version --format` and `info --format`: what their templates see, shaped as docker
28's CLI shapes it (issue 9 follows the newest client).

docker 28 runs the template on its own structs: `version` on {Client, Server} (the
client's facts, GET /version's document), `info` on GET /info's document with a
ClientInfo after it; `json` is `{{json .}}` (20.10's CLI printed the word).  The
documents are lamina/api/system.py's, re-marshalled as the Go types do it: their
fields in struct order, the `omitempty` ones left out when empty, fields the 28 types
no longer have (BridgeNfIptables) dropped, maps with their keys sorted.  lamina is
both client and engine: the client's facts are lamina's own (see _client).
"""

from __future__ import annotations

import sys

# moby's system.Info (API 1.50, docker 28), in field order: (JSON name, False or, for an
# `omitempty` field, the kind of its zero value: what a template reads when it is absent)
_INFO_FIELDS = (
    ("ID", False), ("Containers", False), ("ContainersRunning", False), ("ContainersPaused", False),
    ("ContainersStopped", False), ("Images", False), ("Driver", False), ("DriverStatus", False),
    ("SystemStatus", "slice"), ("Plugins", False), ("MemoryLimit", False), ("SwapLimit", False),
    ("KernelMemory", "bool"), ("KernelMemoryTCP", "bool"), ("CpuCfsPeriod", False), ("CpuCfsQuota", False),
    ("CPUShares", False), ("CPUSet", False), ("PidsLimit", False), ("IPv4Forwarding", False), ("Debug", False),
    ("NFd", False), ("OomKillDisable", False), ("NGoroutines", False), ("SystemTime", False),
    ("LoggingDriver", False), ("CgroupDriver", False), ("CgroupVersion", "string"), ("NEventsListener", False),
    ("KernelVersion", False), ("OperatingSystem", False), ("OSVersion", False), ("OSType", False),
    ("Architecture", False), ("IndexServerAddress", False), ("RegistryConfig", False), ("NCPU", False),
    ("MemTotal", False), ("GenericResources", False), ("DockerRootDir", False), ("HttpProxy", False),
    ("HttpsProxy", False), ("NoProxy", False), ("Name", False), ("Labels", False), ("ExperimentalBuild", False),
    ("ServerVersion", False), ("Runtimes", False), ("DefaultRuntime", False), ("Swarm", False),
    ("LiveRestoreEnabled", False), ("Isolation", False), ("InitBinary", False), ("ContainerdCommit", False),
    ("RuncCommit", False), ("InitCommit", False), ("SecurityOptions", False), ("ProductLicense", "string"),
    ("DefaultAddressPools", "slice"), ("FirewallBackend", "pointer"), ("CDISpecDirs", False), ("Containerd", "pointer"),
    ("Warnings", False),
)
# types.Version and types.ComponentVersion
_SERVER_FIELDS = (("Platform", False), ("Components", "slice"), ("Version", False), ("ApiVersion", False),
                  ("MinAPIVersion", "string"), ("GitCommit", False), ("GoVersion", False), ("Os", False), ("Arch", False),
                  ("KernelVersion", "string"), ("Experimental", "bool"), ("BuildTime", "string"))
_COMPONENT_FIELDS = (("Name", False), ("Version", False), ("Details", "map"))
_SWARM_FIELDS = (("NodeID", False), ("NodeAddr", False), ("LocalNodeState", False), ("ControlAvailable", False),
                 ("Error", False), ("RemoteManagers", False), ("Nodes", "int"), ("Managers", "int"), ("Cluster", "pointer"),
                 ("Warnings", "slice"))
_COMMIT_FIELDS = (("ID", False), ("Expected", "string"))
_RUNTIME_FIELDS = (("path", False), ("runtimeArgs", "slice"), ("status", "map"))
# slice fields (not `omitempty`) lamina leaves nil: templates print a nil slice as `[]`
_NIL_SLICES = frozenset({"GenericResources", "CDISpecDirs", "RemoteManagers", "Authorization", "Warnings"})
# Go field names templates use where the JSON name differs
_GO_NAMES = {"APIVersion": "ApiVersion", "CPUCfsPeriod": "CpuCfsPeriod", "CPUCfsQuota": "CpuCfsQuota",
             "HTTPProxy": "HttpProxy", "HTTPSProxy": "HttpsProxy", "Path": "path", "Args": "runtimeArgs",
             "Status": "status"}


def _struct(doc: dict, fields, type_name: str, nested=None):
    """`doc` as the Go struct `fields` describe, of Go type `type_name`: in their order,
    absent fields as their zero (null here; an `omitempty` one as its kind's zero, which
    `json` leaves out); `nested` shapes a field's value."""
    from lamina.gotemplate.values import StructDict

    out = StructDict()
    for name, omitempty in fields:
        value = doc.get(name)
        if value is None and (omitempty or name in _NIL_SLICES):
            value = _zero(omitempty or "slice")
        elif value is not None and nested and name in nested:
            value = nested[name](value)
        out[name] = value
    out.type_name = type_name
    out.omitempty = frozenset(name for name, omitempty in fields if omitempty)
    renamed = {go: js for go, js in _GO_NAMES.items() if js in out}
    if renamed:
        out.go_names = renamed
    return out


def _zero(kind: str):
    from lamina.gotemplate.values import OMITTED, NilMap, NilSlice

    if kind == "slice":
        return NilSlice()
    if kind == "map":
        return NilMap()
    if kind == "pointer":
        return OMITTED
    return {"string": "", "bool": False, "int": 0}[kind]


def _map(value: dict, shape=None):
    """A Go map: keys sorted when marshalled (GoMap), each value shaped by `shape`."""
    from lamina.gotemplate.values import GoMap

    return GoMap({k: shape(v) if shape else v for k, v in sorted(value.items())})


def _client() -> dict:
    """docker 28's clientVersion, with lamina's facts.  Its fields are `omitempty`, but a
    docker client always has them filled: lamina keeps them all (empty where it has no
    such fact, a Go version or a build time), so scripts find the keys docker prints."""
    from lamina import __version__
    from lamina.api import API_VERSION
    from lamina.oci import host_arch

    facts = {"Version": __version__, "ApiVersion": API_VERSION, "DefaultAPIVersion": API_VERSION, "GitCommit": "",
             "GoVersion": "", "Os": "linux", "Arch": host_arch(), "BuildTime": "", "Context": "default"}
    # Platform: a nil pointer (`{<nil> 28.2.2 …}`), as the docker CLI built without one
    return _struct(facts, [("Platform", "pointer")] + [(k, False) for k in facts], "system.clientVersion")


def _client_info(debug: bool) -> dict:
    """`info`'s ClientInfo: Debug, the client's facts but ApiVersion, its CLI plugins (none)."""
    facts = {"Debug": debug, **_client(), "Plugins": [], "Warnings": None}
    del facts["ApiVersion"]
    return _struct(facts, [(k, False) for k in facts], "*system.clientInfo")


def version_data(root: str | None, runtime: str | None):
    from lamina.api.system import version_document

    server = _struct(version_document(root, runtime), _SERVER_FIELDS, "*types.Version", {
        "Platform": lambda p: _struct(p, (("Name", False),), "struct { Name string }"),
        "Components": lambda items: [_struct(c, _COMPONENT_FIELDS, "types.ComponentVersion", {"Details": _map})
                                     for c in items]})
    return _struct({"Client": _client(), "Server": server}, (("Client", False), ("Server", False)),
                   "system.versionInfo")


def info_data(system, debug: bool = False):
    from lamina.api.system import info_document

    doc = info_document(system)
    registry = doc.get("RegistryConfig")
    if isinstance(registry, dict):  # registry.ServiceConfig marshals as a map; deprecated fields left out empty
        doc["RegistryConfig"] = _map({k: v for k, v in registry.items()
                                      if v or not k.startswith("AllowNondistributableArtifacts")})
    commit = lambda c: _struct(c, _COMMIT_FIELDS, "system.Commit")  # noqa: E731
    shaped = _struct(doc, _INFO_FIELDS, "system.dockerInfo", {
        "Plugins": lambda p: _struct(p, [(k, False) for k in ("Volume", "Network", "Authorization", "Log")],
                                     "system.PluginsInfo"),
        "Runtimes": lambda r: _map(r, lambda v: _struct(v, _RUNTIME_FIELDS, "system.RuntimeWithStatus")),
        "Swarm": lambda s: _struct(s, _SWARM_FIELDS, "swarm.Info"),
        "ContainerdCommit": commit, "RuncCommit": commit, "InitCommit": commit})
    shaped["ClientInfo"] = _client_info(debug)
    return shaped


def print_formatted(format_text: str, data, name: str = "") -> int:
    """docker 28's `version -f`/`info -f`: the template (named `name`: "version" for
    `version`, as docker names it) on `data`, then a newline; a template that does not
    parse is exit 64, one that fails prints the newline and its error (exit 1).  The data
    are typed structs, not decoded JSON: no missingkey=error (docker's is inspect's)."""
    from lamina.cli.fmt import _escape_value
    from lamina.gotemplate import TemplateError, parse

    if format_text == "json":
        format_text = "{{json .}}"
    try:
        tmpl = parse(format_text, name)
    except TemplateError as e:
        sys.stderr.write(f"template parsing error: {e}\n")
        return 64
    try:
        text = tmpl.execute(data, escape=_escape_value)
    except TemplateError as e:
        sys.stdout.write("\n")
        sys.stderr.write(f"{e}\n")
        return 1
    sys.stdout.write(text + "\n")
    return 0
