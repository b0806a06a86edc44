"""HEALTHCHECK: the container's Config.Healthcheck, its probe loop and its State.Health.

Docker's semantics (daemon/health.go, 20.10): the first probe runs one interval
after the start, then one per interval; a probe that outlives the timeout is
killed and counts as a failure (ExitCode -1, "Health check exceeded timeout
(30s)"); exit 0 is healthy and resets the failing streak; any other result adds
to it, except while the container has never been healthy and is still in its
start period; `retries` failures in a row make it unhealthy.  The last 5
results are kept with Start, End, ExitCode and Output (the first 4096 bytes of
stdout and stderr together, "..." after a cut).  When the loop stops (the
container stopped) the status reads "unhealthy", as docker's does "for
compatibility".  Probes run as `exec` runs (runtime/execproc.py): the
container's process with the probe's argv.

State lives in `<container dir>/health.json`, replaced atomically by the one
loop that writes it, so `inspect` and `ps` read it without a lock.  Who runs the
loop: a detached container's monitor, on a thread; a foreground `run`/`start`
front too (`start_thread`, only when the container has a probe), as dockerd
probes every running container.

Values: durations in nanoseconds, as Config.Healthcheck records them; Test is
["CMD", argv...], ["CMD-SHELL", command], ["NONE"] (disabled) or [] (inherit).
"""

from __future__ import annotations

import os

from lamina.errors import InvalidParameter, OptionError

DEFAULT_INTERVAL = 30 * 10**9
DEFAULT_TIMEOUT = 30 * 10**9
DEFAULT_RETRIES = 3
MIN_DURATION = 10**6  # dockerd: "cannot be less than 1ms"
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
_FILE = "health.json"
_KEYS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")  # HealthConfig's fields, in Go's order


# ---------------------------------------------------------------------- configuration


def healthcheck_config(*, cmd: str = "", interval: int = 0, timeout: int = 0, start_period: int = 0,
                       retries: int = 0, disabled: bool = False) -> dict | None:
    """Config.Healthcheck from run's --health-* flags (docker's CLI, then dockerd's checks);
    None when none was given (the image's applies).  Only what was given is recorded,
    as docker's JSON omits zero values."""
    given = bool(cmd or interval or timeout or start_period or retries)
    if disabled:
        if given:
            raise OptionError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    for flag, value in (("interval", interval), ("timeout", timeout), ("retries", retries),
                        ("start-period", start_period)):
        if value < 0:
            raise OptionError(f"--health-{flag} cannot be negative")
    for name, value in (("Interval", interval), ("Timeout", timeout), ("StartPeriod", start_period)):
        if value and value < MIN_DURATION:
            raise InvalidParameter(f"{name} in Healthcheck cannot be less than 1ms")
    out: dict = {}
    if cmd:
        out["Test"] = ["CMD-SHELL", cmd]
    for key, value in (("Interval", interval), ("Timeout", timeout), ("StartPeriod", start_period),
                       ("Retries", retries)):
        if value:
            out[key] = value
    return out


def merge(image: dict | None, user: dict | None) -> dict | None:
    """dockerd's merge of run's Healthcheck over the image's: each unset field from the image."""
    if user is None:
        return dict(image) if image else None
    image = image or {}
    merged = {key: user.get(key) or image.get(key) for key in _KEYS}
    return {key: value for key, value in merged.items() if value}  # docker's field order, zeros omitted


def probe_argv(config: dict) -> list[str] | None:
    """The argv a probe runs for container Config `config`, or None when it has none."""
    test = list((config.get("Healthcheck") or {}).get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        shell = list(config.get("Shell") or ["/bin/sh", "-c"])
        return shell + [" ".join(test[1:])] if len(test) > 1 else None
    if test[0] == "CMD":
        return test[1:] or None
    return None


# ---------------------------------------------------------------------- state


def health_of(system, container_id: str, *, running: bool | None = None) -> dict | None:
    """State.Health as inspect shows it ({"Status", "FailingStreak", "Log"}), or None for a
    container that never ran a probe.  A container no longer running reads unhealthy
    (docker's, when its monitor stops), also when the loop died without saying so."""
    state = _read(system.containers.path(container_id))
    if state is None:
        return None
    if running is None:
        from lamina.errors import NotFound

        try:
            running = system.containers.get(container_id).running
        except NotFound:  # removed meanwhile
            running = False
    if not running and state.get("Status") != "unhealthy":
        state["Status"] = "unhealthy"
    return state


def _read(ctr_dir: str) -> dict | None:
    from lamina.leanjson import loads

    try:
        with open(os.path.join(ctr_dir, _FILE), "rb") as f:
            value = loads(f.read())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write(ctr_dir: str, state: dict) -> None:
    from lamina.leanjson import dumps

    state = {"Status": state.get("Status"), "FailingStreak": state.get("FailingStreak", 0),
             "Log": state.get("Log") or []}  # docker's key order
    path = os.path.join(ctr_dir, _FILE)
    tmp = f"{path}.{os.getpid()}.{id(state)}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(dumps(state, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError:
        try:  # the container was removed under us: nothing to record
            os.unlink(tmp)
        except OSError:
            pass


def go_time(epoch: float) -> str:
    """Go's time.Time in JSON (RFC 3339, nanoseconds with trailing zeros trimmed, UTC)."""
    import time

    whole = int(epoch)
    ns = int(round((epoch - whole) * 1e9))
    if ns >= 10**9:
        whole, ns = whole + 1, ns - 10**9
    frac = f"{ns:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + (f".{frac}" if frac else "") + "Z"


# ---------------------------------------------------------------------- the loop


def run_health_loop(system, container_id: str, stop) -> None:
    """Probe container `container_id` as docker does until `stop` (a threading.Event) is
    set; meant for a thread of whoever keeps the container.  Returns at once for a
    container without a probe.  Never raises: a probe that cannot run is a failed probe."""
    _loop(system, system.containers.get(container_id), stop)


def _loop(system, rec, stop) -> None:
    """run_health_loop's body for a record in hand: it touches no database (a front's
    thread shares the front's connection)."""
    argv = probe_argv(rec.config)
    if argv is None:
        return
    hc = rec.config.get("Healthcheck") or {}
    interval = (hc.get("Interval") or DEFAULT_INTERVAL) / 1e9
    timeout_ns = hc.get("Timeout") or DEFAULT_TIMEOUT
    retries = hc.get("Retries") or DEFAULT_RETRIES
    start_period = (hc.get("StartPeriod") or 0) / 1e9
    ctr_dir = system.containers.path(rec.id)
    state = _read(ctr_dir) or {"Log": []}
    state.update({"Status": "starting", "FailingStreak": 0})
    state["Log"] = list(state.get("Log") or [])
    _write(ctr_dir, state)
    import time

    started = time.time()  # the keeper starts the loop as it starts the container (State.StartedAt)
    try:
        while not stop.wait(interval):
            try:
                probed = _probe(system, rec, argv, timeout_ns, ctr_dir)
            except Exception:  # noqa: BLE001 - the keeper's thread must never die of a probe
                continue
            if probed is None:  # not running (yet, or any more): nothing to record
                continue
            _record_result(state, *probed, retries, start_period, started)
            _write(ctr_dir, state)
    finally:
        if state.get("Status") != "unhealthy":
            state["Status"] = "unhealthy"  # docker: "unhealthy when the monitor has stopped"
            _write(ctr_dir, state)


def _record_result(state: dict, result: dict, start: float, retries: int, start_period: float,
                   started: float) -> None:
    log = state["Log"]
    log.append(result)
    del log[:-MAX_LOG_ENTRIES]
    if result["ExitCode"] == 0:
        state["FailingStreak"] = 0
        state["Status"] = "healthy"
        return
    if state["Status"] == "starting" and start - started < start_period:
        return  # still within its start period: failures do not count yet
    state["FailingStreak"] += 1
    if state["FailingStreak"] >= retries:
        state["Status"] = "unhealthy"


def _probe(system, rec, argv: list[str], timeout_ns: int, ctr_dir: str) -> tuple[dict, float] | None:
    """One probe's result {Start, End, ExitCode, Output} and its start time, or None when
    the container does not run."""
    import threading
    import time

    from lamina.errors import LaminaError
    from lamina.leanjson import loads
    from lamina.recovery import runtime_for
    from lamina.runtime.execproc import cgroups_path, exec_process, frozen, has_container, run_exec
    from lamina.units import go_duration

    runtime = runtime_for(system, rec)
    if not has_container(runtime, rec.id):
        return None
    if frozen(cgroups_path(rec.id)):  # dockerd's exec refuses a paused container: a failed probe
        now = time.time()
        return {"Start": go_time(now), "End": go_time(now), "ExitCode": -1,
                "Output": f"Container {rec.id} is paused, unpause the container before exec"}, now
    try:
        with open(os.path.join(ctr_dir, "bundle", "config.json"), "rb") as f:
            config = loads(f.read())
    except (OSError, ValueError):
        return None
    process = config.get("process") or {}
    process_spec = exec_process(config, args=argv, env=process.get("env") or [], cwd=process.get("cwd") or "/")
    read_fd, write_fd = os.pipe()
    output = _Output(read_fd)
    reader = threading.Thread(target=output.drain, daemon=True)
    reader.start()
    start = time.time()
    try:
        try:
            code = run_exec(runtime, rec.id, process_spec, work_dir=ctr_dir, stdout=write_fd,
                            stderr=write_fd, timeout=timeout_ns / 1e9)
            text = None
        except TimeoutError:
            code, text = -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
        except LaminaError as e:  # runc could not start the probe: docker records its error
            if "container does not exist" in str(e):  # it stopped meanwhile: no result
                return None
            code, text = -1, f"OCI runtime exec failed: {e}: unknown"
    finally:
        os.close(write_fd)
    end = time.time()
    reader.join(2.0)
    if text is None:
        text = output.text()
    return {"Start": go_time(start), "End": go_time(end), "ExitCode": code, "Output": text}, start


class _Output:
    """docker's limitedBuffer: the first 4096 bytes kept, the rest read and dropped."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.data = b""
        self.truncated = False

    def drain(self) -> None:
        try:
            while chunk := os.read(self.fd, 65536):
                keep = MAX_OUTPUT - len(self.data)
                if keep > 0:
                    self.data += chunk[:keep]
                if len(chunk) > max(keep, 0):
                    self.truncated = True
        except OSError:
            pass
        finally:
            os.close(self.fd)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace") + ("..." if self.truncated else "")


# ---------------------------------------------------------------------- a front's thread


def start_thread(system, rec):
    """For a foreground front: the probe loop on a daemon thread while the container runs;
    returns the callable that stops it (None when the container has no probe: no thread)."""
    if probe_argv(rec.config) is None:
        return None
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(system, rec, stop), daemon=True,
                              name=f"health-{rec.id[:12]}")
    thread.start()

    def done() -> None:
        stop.set()
        thread.join(5.0)

    return done
