"""Published ports as docker's CLI spells them: `-p/--publish`, `-P/--publish-all`
and `--expose` into HostConfig.PortBindings, PublishAllPorts and Config.ExposedPorts,
and the shapes `inspect` (NetworkSettings.Ports), `port` and `ps` show them in.

Pure values, no root: the parsing follows go-connections' nat package as docker
20.10's CLI uses it (ParsePortSpec, SplitProtoPort, ParsePortRange, NewPort), so
the same specifications are accepted and the same texts name what is wrong
(`Invalid proto: xyz`, `Invalid ranges specified for container and host Ports:
…`).  What a running container holds is network/portmap.py's.
"""

from __future__ import annotations

from lamina.errors import OptionError

PROTOCOLS = ("tcp", "udp", "sctp")


def host_config_from(args) -> tuple[tuple[str, ...], dict]:
    """(RunOptions.exposed_ports, HostConfig keys) from run/create's flags: the ports
    of --expose and -p (Config.ExposedPorts, with the image's), and PortBindings and
    PublishAllPorts."""
    publish = list(getattr(args, "publish", None) or [])
    exposed, bindings = parse_specs(standard_notation(publish))
    for value in getattr(args, "expose", None) or []:
        for key in parse_expose(value):
            exposed.setdefault(key, None)
    if str(getattr(args, "network", "")).startswith("container:"):  # dockerd refuses them at create
        from lamina.errors import InvalidParameter

        if publish or getattr(args, "publish_all", False):
            raise InvalidParameter("conflicting options: port publishing and the container type network mode")
        if exposed:
            raise InvalidParameter("conflicting options: port exposing and the container type network mode")
    if publish and getattr(args, "network", "") == "host":  # dockerd's create warning
        import sys

        sys.stderr.write("WARNING: Published ports are discarded when using host network mode\n")
    return tuple(exposed), {"PortBindings": bindings, "PublishAllPorts": bool(getattr(args, "publish_all", False))}


def standard_notation(specs: list[str]) -> list[str]:
    """docker's long syntax (`target=80,published=8080,protocol=udp`) as the short one."""
    out = []
    for spec in specs:
        if "=" not in spec:
            out.append(spec)
            continue
        params = {"protocol": "tcp"}
        for param in spec.split(","):
            opt = param.split("=")
            if len(opt) < 2:
                raise OptionError(f"invalid publish opts format (should be name=value but got '{param}')")
            params[opt[0]] = opt[1]
        out.append(f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}")
    return out


def parse_specs(specs: list[str]) -> tuple[dict, dict]:
    """(exposed keys, PortBindings) of -p values, in their order (nat.ParsePortSpecs)."""
    exposed: dict = {}
    bindings: dict = {}
    for spec in specs:
        for key, binding in parse_spec(spec):
            exposed.setdefault(key, None)
            bindings.setdefault(key, []).append(binding)
    return exposed, bindings


def parse_spec(raw: str) -> list[tuple[str, dict]]:
    """One `[IP:][HOST[-END]:]CTR[-END][/PROTO]`: [("80/tcp", {"HostIp": "", "HostPort": "8080"}), …]."""
    raw_ip, host, ctr = _split_parts(raw)
    proto, ctr = split_proto_port(ctr)
    ip, why = _split_host(raw_ip + ":")
    if why:
        raise OptionError(f"Invalid ip address {raw_ip}: address {raw_ip}:: {why}")
    if ip and not _is_ip(ip):
        raise OptionError(f"Invalid ip address: {ip}")
    if not ctr:
        raise OptionError(f"No port specified: {raw}<empty>")
    try:
        start, end = parse_range(ctr)
    except ValueError:
        raise OptionError(f"Invalid containerPort: {ctr}") from None
    host_start = host_end = 0
    if host:
        try:
            host_start, host_end = parse_range(host)
        except ValueError:
            raise OptionError(f"Invalid hostPort: {host}") from None
    # a host range with one container port is the range to allocate that port from
    if host and end - start != host_end - host_start and end != start:
        raise OptionError(f"Invalid ranges specified for container and host Ports: {ctr} and {host}")
    if proto.lower() not in PROTOCOLS:
        raise OptionError(f"Invalid proto: {proto}")
    out = []
    for i in range(end - start + 1):
        host_port = str(host_start + i) if host else ""
        if start == end and host_start != host_end:
            host_port = f"{host_port}-{host_end}"
        out.append((f"{start + i}/{proto.lower()}", {"HostIp": ip, "HostPort": host_port}))
    return out


def parse_expose(value: str) -> list[str]:
    """One --expose value (`80`, `8000-8010/udp`) as ExposedPorts keys; docker checks no protocol here."""
    if ":" in value:
        raise OptionError(f"invalid port format for --expose: {value}")
    proto, port = split_proto_port(value)
    try:
        start, end = parse_range(port)
    except ValueError as e:
        raise OptionError(f"invalid range format for --expose: {value}, error: {e}") from None
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def split_proto_port(raw: str) -> tuple[str, str]:
    """(proto, port) of `80/udp`; tcp when no protocol is given (nat.SplitProtoPort)."""
    parts = raw.split("/")
    if not raw or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def parse_range(text: str) -> tuple[int, int]:
    """`80` or `8000-8010` (nat.ParsePortRange); ValueError with Go's text."""
    if not text:
        raise ValueError("Empty string specified for ports.")
    if "-" not in text:
        port = parse_port(text)
        return port, port
    parts = text.split("-")  # as Go: what follows a second dash is ignored
    start, end = parse_port(parts[0]), parse_port(parts[1])
    if end < start:
        raise ValueError(f"Invalid range specified for the Port: {text}")
    return start, end


def parse_port(text: str) -> int:
    """strconv.ParseUint(text, 10, 16) with Go's error texts."""
    from lamina.quoting import go_quote

    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: invalid syntax")
    if int(text) > 65535:
        raise ValueError(f"strconv.ParseUint: parsing {go_quote(text)}: value out of range")
    return int(text)


def port_key(value: str) -> str:
    """`docker port CTR 80[/udp]`'s lookup key (nat.NewPort; ValueError with Go's text)."""
    port, proto = value, "tcp"
    parts = value.split("/", 1)
    if len(parts) == 2 and parts[1]:
        port, proto = parts
    start = end = 0
    if port:
        start, end = parse_range(port)
    return f"{start}/{proto}" if start == end else f"{start}-{end}/{proto}"


def sort_key(key: str) -> tuple[int, str]:
    number, _, proto = key.partition("/")
    return (int(number) if number.isdigit() else -1, proto)


def settings_ports(exposed, published) -> dict:
    """NetworkSettings.Ports of a running container: every exposed or published
    `port/proto`, with its host bindings (`published`: (key, host_ip, host_port) in
    the order they were made), null for one exposed and not published.  Keys sorted
    as Go marshals a map."""
    out: dict = {key: None for key in exposed or ()}
    for key, host_ip, host_port in published:
        out[key] = (out.get(key) or []) + [{"HostIp": host_ip, "HostPort": str(host_port)}]
    return dict(sorted(out.items()))


def display(ports: dict) -> str:
    """ps's PORTS column from NetworkSettings.Ports, as docker's CLI groups it
    (formatter.DisplayablePorts): ports published on the same number form ranges
    (`0.0.0.0:8000-8001->8000-8001/tcp`), the others are listed one by one."""
    listed = []  # types.Port: (private, ip, public, type), as the daemon lists them
    for key, bindings in ports.items():
        number, _, proto = key.partition("/")
        if not number.isdigit():
            continue
        if not bindings:
            listed.append((int(number), "", 0, proto))
        for b in bindings or ():
            public = b.get("HostPort", "")
            listed.append((int(number), b.get("HostIp", ""), int(public) if public.isdigit() else 0, proto))
    listed.sort()
    groups: dict = {}  # key -> [first, last], in the order the keys were made
    result, mappings = [], []
    for private, ip, public, proto in listed:
        group_key = proto
        if ip:
            if public != private:
                mappings.append(f"{ip}:{public}->{private}/{proto}")  # 20.10: `:::8080->80/tcp`
                continue
            group_key = f"{ip}/{proto}"
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_form_group(group_key, *group))
            groups[group_key] = [private, private]  # the key keeps its first place, as docker's
    result += [_form_group(k, *g) for k, g in groups.items()]
    return ", ".join(result + mappings)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    text = str(first) if first == last else f"{first}-{last}"
    if ip:
        text = f"{ip}:{text}->{text}"
    return f"{text}/{proto}"


def _split_parts(raw: str) -> tuple[str, str, str]:
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def _split_host(hostport: str) -> tuple[str, str]:
    """Go's net.SplitHostPort host part of `hostport` (which ends in ':'), or its error."""
    i = hostport.rfind(":")
    j = k = 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return "", "missing ']' in address"
        if end + 1 == len(hostport):
            return "", "missing port in address"
        if end + 1 != i:
            return "", "too many colons in address" if hostport[end + 1] == ":" else "missing port in address"
        host = hostport[1:end]
        j, k = 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            return "", "too many colons in address"
    if "[" in hostport[j:]:
        return "", "unexpected '[' in address"
    if "]" in hostport[k:]:
        return "", "unexpected ']' in address"
    return host, ""


def _is_ip(text: str) -> bool:
    """Go's net.ParseIP: IPv4 dotted quad or IPv6 (no zone)."""
    import ipaddress  # a flag that was given: run without -p never gets here

    if "%" in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def published(db, container_id: str) -> list[tuple[str, str, int]]:
    """(`port/proto`, host ip, host port) of a container, in the order they were made
    (portmap.py writes these rows; `ps` and inspect read them without loading it)."""
    return [(f"{cp}/{proto}", ip, hp) for proto, ip, hp, cp in db.execute(
        "SELECT proto, host_ip, host_port, container_port FROM ports WHERE container_id=? ORDER BY rowid",
        (container_id,))]
