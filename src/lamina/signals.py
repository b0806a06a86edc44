"""docker's signal names, and a container's stop signal (`stop`, `kill`, run's --stop-signal)."""

from __future__ import annotations

from lamina.errors import InvalidParameter

_SIGTERM = 15  # Linux's number (the signal module's enum costs `run -d` ~4 ms)


def parse_signal(text: str | int) -> int:
    """docker's signal names (`KILL`, `SIGKILL`, `9`); InvalidParameter as dockerd's."""
    import signal  # not at the top: its enum would cost `run -d` ~4 ms

    if isinstance(text, int):
        return text
    name = text.upper().removeprefix("SIG")
    if text.isdigit():
        num = int(text)
        if 0 < num < 65:
            return num
    elif name.startswith("RTMIN") or name.startswith("RTMAX"):
        base, _, off = name.partition("+") if "+" in name else name.partition("-")
        sign = -1 if "-" in name else 1
        num = (signal.SIGRTMIN if base == "RTMIN" else signal.SIGRTMAX) + sign * int(off or 0)
        return int(num)
    else:
        sig = getattr(signal.Signals, f"SIG{name}", None) if name.isalnum() else None
        if sig is not None:
            return int(sig)
    raise InvalidParameter(f"Invalid signal: {text}")


def stop_signal(rec) -> int:
    """The image's (or --stop-signal's) StopSignal, SIGTERM when none."""
    text = rec.config.get("StopSignal") or "SIGTERM"
    try:
        return parse_signal(text)
    except InvalidParameter:
        return _SIGTERM
