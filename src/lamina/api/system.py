"""/_ping, /version, /info, /system/df: dockerd 20.10's documents for lamina's facts."""

from __future__ import annotations

import os
import platform

from lamina import __version__ as VERSION
from lamina.api import API_VERSION, MIN_API_VERSION
from lamina.oci import host_arch


def ping(request) -> None:
    """HEAD|GET /_ping: what the clients negotiate with (the API version, the classic builder)."""
    headers = {"Builder-Version": "1", "Swarm": "inactive", "Pragma": "no-cache",
               "Cache-Control": "no-cache, no-store, must-revalidate"}
    request.send_bytes(200, b"OK", "text/plain; charset=utf-8", headers)


def _engine_details() -> dict:
    return {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": "",
            "Os": "linux", "Arch": host_arch(),
            "KernelVersion": platform.release(), "BuildTime": "", "Experimental": "false",
            "PythonVersion": platform.python_version()}


def version(request) -> None:
    request.send_json(200, version_document(request.server.root, request.server.runtime))


def version_document(root: str | None, runtime_name: str | None) -> dict:
    """GET /version's document (`lamina version --format` shows it too)."""
    from lamina.engine.system import runtime_without_store

    details = _engine_details()
    components = [{"Name": "Engine", "Version": VERSION, "Details": details}]
    runtime = runtime_without_store(root, runtime_name)
    if runtime is not None:
        components.append({"Name": runtime.name, "Version": runtime.version(), "Details": {"GitCommit": ""}})
    return {
        "Platform": {"Name": "lamina"}, "Components": components, "Version": VERSION,
        "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": "",
        "Os": "linux", "Arch": details["Arch"], "KernelVersion": details["KernelVersion"],
        "BuildTime": "", "Experimental": False}


def info(request) -> None:
    request.send_json(200, info_document(request.system))


def info_document(system) -> dict:
    """GET /info's document (`lamina info --format` shows it too)."""
    from lamina.engine.system import info as engine_info
    from lamina.runtime.cgroups import machine_memory

    facts = engine_info(system)
    runtime = facts["Runtime"]
    runtime_name = runtime.name if runtime is not None else "runc"
    cgroup_v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return {
        "ID": _machine_id(), "Containers": facts["Containers"], "ContainersRunning": facts["ContainersRunning"],
        "ContainersPaused": 0, "ContainersStopped": facts["ContainersStopped"], "Images": facts["Images"],
        "Driver": facts["Driver"], "DriverStatus": [], "DockerRootDir": system.root,
        "Plugins": {"Volume": [], "Network": ["bridge", "host", "null"], "Authorization": None,
                    "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "KernelMemoryTCP": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
        "IPv4Forwarding": True, "BridgeNfIptables": True, "BridgeNfIp6tables": True, "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")), "OomKillDisable": True, "NGoroutines": 0,
        "SystemTime": _now_rfc3339(), "LoggingDriver": "json-file",
        "CgroupDriver": "systemd" if cgroup_v2 else "cgroupfs", "CgroupVersion": "2" if cgroup_v2 else "1",
        "NEventsListener": 0, "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
        "OSVersion": _os_release().get("VERSION_ID", ""), "OSType": "linux", "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
        "NCPU": os.cpu_count() or 1, "MemTotal": machine_memory(), "GenericResources": None,
        "HttpProxy": os.environ.get("HTTP_PROXY", ""), "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
        "NoProxy": os.environ.get("NO_PROXY", ""), "Name": platform.node(), "Labels": [],
        "ExperimentalBuild": False, "ServerVersion": VERSION,
        "Runtimes": _runtimes(runtime, runtime_name),
        "DefaultRuntime": runtime_name,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                  "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": [facts["RuntimeError"]] if facts["RuntimeError"] else []}


def df(request) -> None:
    """GET /system/df: engine/system.py's disk usage (`lamina system df` prints the same)."""
    from lamina.engine.system import disk_usage

    request.send_json(200, disk_usage(request.system))


def _runtimes(runtime, default: str) -> dict:
    """Every runtime lamina can run containers with here (docker lists runc among its
    own), the default one as it is used."""
    from lamina.runtime.oci import KNOWN, which

    found = {name: {"path": path} for name in KNOWN if (path := which(name))}
    found[default] = {"path": runtime.path if runtime is not None else default}
    return dict(sorted(found.items()))


def _machine_id() -> str:
    try:
        with open("/etc/machine-id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _now_rfc3339() -> str:
    import time

    from lamina.units import rfc3339

    return rfc3339(time.time())


def _os_release() -> dict:
    try:
        with open("/etc/os-release") as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line and not line.startswith("#"))
    except OSError:
        return {}


def _os_name() -> str:
    return _os_release().get("PRETTY_NAME", "Linux").strip('"')
