"""`--log-driver` and `--log-opt` of run/create: HostConfig.LogConfig as docker
records it ({"Type": "json-file", "Config": {"max-size": "10m"}}), docker's texts for
what it refuses, and the writer a container's LogConfig asks for.

dockerd validates the option names at create and the values when the driver starts
(`failed to initialize logging driver: …`); lamina checks both at create, with the
same texts, so a bad value never reaches a detached monitor."""

from __future__ import annotations

DRIVERS = ("json-file", "none")
# jsonfilelog.ValidateLogOpt's names
_DOCKER_OPTS = ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag")
_DECIMAL = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def host_config_from(args) -> dict:
    """{"LogConfig": …} for run/create's flags; {} when none is given (the container keeps
    lifecycle's default)."""
    driver, given = getattr(args, "log_driver", None), getattr(args, "log_opt", None) or []
    if driver is None and not given:
        return {}
    return {"LogConfig": log_config(driver or "json-file", given)}


def log_config(driver: str, given: list[str]) -> dict:
    from lamina.errors import InvalidParameter, OptionError

    config = {}
    for kv in given:  # docker's ConvertKVStringsToMap: a bare key has an empty value
        key, _, value = kv.partition("=")
        config[key] = value
    if driver == "none":
        if config:
            raise OptionError("invalid logging opts for driver none")
        return {"Type": "none", "Config": {}}
    if driver not in DRIVERS:
        raise InvalidParameter(f'error looking up logging plugin {driver}: plugin "{driver}" not found')
    for key in config:
        if key not in _DOCKER_OPTS:
            raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
    try:
        limits(config)
        if "tag" in config or "labels-regex" in config or "env-regex" in config:
            attributes(config, {}, "0" * 64, "", "", "")  # the template and regexps parse
    except ValueError as e:
        raise InvalidParameter(f"failed to initialize logging driver: {e}") from None
    return {"Type": "json-file", "Config": config}


def limits(config: dict) -> tuple[int | None, int]:
    """(max size in bytes or None, max files) of a json-file Config, as jsonfilelog.New
    reads them; ValueError with dockerd's text."""
    max_size = None
    if "max-size" in config:
        max_size = from_human_size(config["max-size"])
        if max_size <= 0:
            raise ValueError("max-size must be a positive number")
    max_file = 1
    if "max-file" in config:
        from lamina.strconv import parse_int

        max_file = parse_int(config["max-file"], "Atoi")  # jsonfilelog's strconv.Atoi
        if max_file < 1:
            raise ValueError("max-file cannot be less than 1")
    if "compress" in config:
        compress = _parse_bool(config["compress"])
        if compress and (max_file < 2 or max_size is None):
            raise ValueError("compress cannot be true when max-file is less than 2 or max-size is not set")
    return max_size, max_file


def compressed(config: dict) -> bool:
    """--log-opt compress (checked by limits)."""
    return "compress" in config and _parse_bool(config["compress"])


def from_human_size(text: str) -> int:
    """go-units FromHumanSize (decimal: 10m is 10,000,000 bytes, as json-file's max-size):
    ^(\\d+(\\.\\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$, the number as ParseFloat, truncated."""
    i = 0
    while i < len(text) and (text[i] in "0123456789" or (text[i] == "." and i and text[i - 1].isdigit()
                                                            and text[i + 1:i + 2].isdigit())):
        i += 1
    number, rest = text[:i], text[i:]
    rest = rest[1:] if rest[:1] == " " else rest
    unit = rest[:1].lower() if rest[:1] and rest[:1] in "kKmMgGtTpP" else ""
    rest = rest[len(unit):]
    rest = rest[1:] if rest[:1] in ("i", "I") else rest
    rest = rest[1:] if rest[:1] in ("b", "B") else rest
    if not number or rest:
        raise ValueError(f"invalid size: '{text}'")
    if number.count(".") > 1:
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax')
    return int(float(number) * _DECIMAL[unit])


def _parse_bool(text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def log_path(container_dir: str, container_id: str) -> str:
    """Where a container's json-file log lives (docker's <id>-json.log in its directory)."""
    return f"{container_dir}/{container_id}-json.log"


def open_writer(host_config: dict, container_dir: str, container_id: str, *, record=None):
    """The JsonFileWriter a container's LogConfig asks for, or None (driver none, or no
    LogConfig): what the monitor writes the container's output through.  `record` (the
    container's) gives --log-opt labels/env/tag their values."""
    cfg = (host_config or {}).get("LogConfig") or {}
    if cfg.get("Type") != "json-file":
        return None
    from lamina.logs.jsonfile import JsonFileWriter

    config = cfg.get("Config") or {}
    max_size, max_file = limits(config)
    attrs = None
    if record is not None and any(config.get(k) for k in ("labels", "labels-regex", "env", "env-regex", "tag")):
        from lamina.leanjson import go_dumps

        found = attributes(config, record.config, record.id, record.name, record.image_id, record.image_ref)
        attrs = go_dumps(dict(sorted(found.items()))).encode() if found else None
    return JsonFileWriter(log_path(container_dir, container_id), max_size, max_file, attrs=attrs,
                          compress=compressed(config))


def attributes(config: dict, container_config: dict, container_id: str, name: str, image_id: str,
               image_name: str) -> dict:
    """logger.Info.ExtraAttributes and the `tag` of a json-file log: the labels and
    environment variables its options name or match, and the tag's template as
    loggerutils.ParseLogTag runs it; ValueError with dockerd's text."""
    labels = container_config.get("Labels") or {}
    env = {}
    for e in container_config.get("Env") or []:
        k, eq, v = e.partition("=")
        if eq:
            env[k] = v
    out = {}
    for names, regex, source in (("labels", "labels-regex", labels), ("env", "env-regex", env)):
        for k in (config.get(names) or "").split(",") if config.get(names) else ():
            if k in source:
                out[k] = source[k]
        if config.get(regex):
            import re

            try:
                pattern = re.compile(config[regex])
            except re.error as e:
                raise ValueError(f"error parsing regexp: {e}: `{config[regex]}`") from None
            out.update({k: v for k, v in source.items() if pattern.search(k)})
    if config.get("tag"):
        out["tag"] = _tag(config["tag"], container_config, container_id, name, image_id, image_name)
    return out


def _tag(template: str, container_config: dict, container_id: str, name: str, image_id: str,
         image_name: str) -> str:
    """The tag template run on docker's logger.Info (its methods: ID, Name, ImageName, …)."""
    from lamina.gotemplate import GoStruct, TemplateError, parse

    image_hex = image_id.removeprefix("sha256:")
    command = " ".join([*(container_config.get("Entrypoint") or []), *(container_config.get("Cmd") or [])])
    methods = {"ID": container_id[:12], "FullID": container_id, "Name": name.lstrip("/"),
               "ImageID": image_hex[:12], "ImageFullID": image_id, "ImageName": image_name,
               "Hostname": container_config.get("Hostname", ""), "Command": command, "DaemonName": "docker"}
    info = GoStruct("*logger.Info", fields=methods, fields_are_methods=True)
    try:
        return parse(template, "log-tag").execute(info)
    except TemplateError as e:
        raise ValueError(str(e)) from None
