"""Results: one JSON entry per workload, the summary table, the growth tables and the plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from timing import VariantResult

LABELS = {"lamina": "lamina", "docker": "Docker", "docker_buildkit": "Docker BuildKit",
          "docker_host_net": "Docker --network host", "podman": "Podman",
          "runtime_alone": "lamina's runtime alone (its config.json)",
          "runc_alone": "runc alone (lamina's config.json)"}


def _r(x: Optional[float], nd: int = 4) -> Optional[float]:
    return None if x is None else round(x, nd)


def entry(wl, results: dict[str, VariantResult]) -> dict:
    """{"lamina_s", "docker_s", "ratio", ...}: docker_s is the reference Docker variant's median."""
    lam = results.get("lamina", VariantResult())
    ref = results.get(wl.reference, VariantResult())
    lamina_s, docker_s = lam.median, ref.median
    ratio = lamina_s / docker_s if lamina_s is not None and docker_s else None
    e = {
        "lamina_s": _r(lamina_s), "docker_s": _r(docker_s), "ratio": _r(ratio, 3),
        "reference": LABELS.get(wl.reference, wl.reference),
        "target": wl.target,
        "target_met": (ratio <= wl.target) if (ratio is not None and wl.target is not None) else None,
        "lamina_max_rss_mb": round(lam.max_rss_kb / 1024, 1) if lam.max_rss_kb else None,
        "title": wl.title, "group": wl.group, "runs": wl.runs, "warmup": wl.warmup,
    }
    for name, res in results.items():
        if name in ("lamina",):
            continue
        key = "docker_classic" if (name == "docker" and "docker_buildkit" in results) else name
        e[f"{key}_s"] = _r(res.median)
        if name != wl.reference and lamina_s is not None and res.median:
            e[f"ratio_{key}"] = _r(lamina_s / res.median, 3)
    e["samples"] = {n: [_r(x) for x in r.samples] for n, r in results.items()}
    notes = {n: r.note for n, r in results.items() if r.note}
    if notes:
        e["notes"] = notes
    if lam.note:
        e["note"] = lam.note
    if wl.x is not None:
        e["x"] = wl.x
    for k, v in wl.info.items():
        if v:
            e[k] = v
    return e


def write_json(path: Path, entries: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, indent=2) + "\n")
    os.replace(tmp, path)


def _s(x: Optional[float]) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def _short(note: Optional[str], n: int = 70) -> str:
    if not note:
        return ""
    return note if len(note) <= n else note[: n - 1] + "…"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i in (0, len(header) - 1) else str(c).rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def summary(entries: dict, order: list[str], hide: frozenset = frozenset()) -> str:
    """The main table; notes in hide (said once elsewhere, e.g. "--no-docker") are left out."""
    rows = []
    for name in order:
        e = entries.get(name)
        if not e or e["group"] != "main":
            continue
        ratio = "-" if e["ratio"] is None else f"{e['ratio']:.2f}"
        target = "" if e["target"] is None else f"<= {e['target']:.2f} vs {e['reference']}"
        verdict = "" if e["target_met"] is None else ("met" if e["target_met"] else "MISSED")
        notes = []
        if e.get("note"):
            notes.append(f"lamina: {e['note']}")
        for n, note in e.get("notes", {}).items():
            if n != "lamina" and note not in hide:
                notes.append(f"{LABELS.get(n, n)}: {note}")
        if e.get("docker_host_net_s") is not None:
            notes.append(f"docker --network host {_s(e['docker_host_net_s'])}")
        if e.get("podman_s") is not None:
            notes.append(f"podman {_s(e['podman_s'])}")
        for key, who in (("runtime_alone", e.get("runtime") or "lamina's runtime"), ("runc_alone", "runc")):
            if e.get(f"{key}_s") is not None and e.get("docker_s"):  # the runtime's floor (bench/runtimefloor.py)
                notes.append(f"{who} alone {_s(e[f'{key}_s'])} = {e[f'{key}_s'] / e['docker_s']:.2f}x docker")
        if e.get("hyperfine_s"):
            notes.append("hyperfine: " + ", ".join(f"{LABELS.get(k, k)} {_s(v)}" for k, v in e["hyperfine_s"].items()))
        if e.get("changes"):
            notes.append("changes reported: " + ", ".join(f"{k} {v}" for k, v in e["changes"].items()))
        rss = "-" if e["lamina_max_rss_mb"] is None else f"{e['lamina_max_rss_mb']:.0f} MB"
        rows.append([name, _s(e["lamina_s"]), _s(e.get("docker_classic_s", e["docker_s"])),
                     _s(e.get("docker_buildkit_s")) if "docker_buildkit_s" in e or "docker_classic_s" in e else "",
                     ratio, target, verdict, rss, _short("; ".join(notes), 110)])
    if not rows:
        return ""
    return table(rows, ["workload", "lamina", "Docker", "BuildKit", "ratio", "target", "", "lamina RSS", "notes"])


def _get(entries: dict, name: str, key: str):
    return (entries.get(name) or {}).get(key)


def curves(entries: dict, sizes: dict) -> tuple[str, dict]:
    """The growth tables, and the series behind the plots."""
    from workloads import human, size_label
    out, series = [], {}
    pts = [n for n in sizes["curve_changes"] if f"diff@{human(n)}-changes" in entries
           or f"commit@{human(n)}-changes" in entries]
    if pts:
        rows, ser = [], {"x": pts}
        for n in pts:
            row = [f"{n:,}"]
            for verb in ("diff", "commit"):
                e = entries.get(f"{verb}@{human(n)}-changes", {})
                for tool, key in (("lamina", "lamina_s"), ("docker", "docker_s")):
                    row.append(_s(e.get(key)))
                    ser.setdefault(f"{tool} {verb}", []).append(e.get(key))
            rows.append(row)
        out.append("diff and commit time against the number of changed files (busybox base)\n"
                   + table(rows, ["changes", "lamina diff", "Docker diff", "lamina commit", "Docker commit"]))
        series["changes"] = ser
    n = sizes["curve_base_changes"]
    big_label = human(sizes["largebase"][0])
    if f"diff@{big_label}-base" in entries or f"commit@{big_label}-base" in entries:
        big_text = size_label(sizes["largebase"][0])
        rows, ser = [], {"x": ["busybox (2 MB)", big_text]}
        for label, suffix in (("busybox (2 MB)", f"{human(n)}-changes"), (big_text, f"{big_label}-base")):
            row = [label]
            for verb in ("diff", "commit"):
                e = entries.get(f"{verb}@{suffix}", {})
                for tool, key in (("lamina", "lamina_s"), ("docker", "docker_s")):
                    row.append(_s(e.get(key)))
                    ser.setdefault(f"{tool} {verb}", []).append(e.get(key))
            rows.append(row)
        out.append(f"diff and commit time against the size of the unchanged image below ({n:,} changes)\n"
                   + table(rows, ["base", "lamina diff", "Docker diff", "lamina commit", "Docker commit"]))
        series["base"] = ser
    steps = []
    for s in sizes["curve_steps"]:
        name = f"build@{s}-steps"
        if name not in entries and s == sizes["build_steps"] and "build" in entries:
            name = "build"
        if name in entries:
            steps.append((s, entries[name]))
    if steps and any(k.startswith("build@") for k in entries):
        rows, ser = [], {"x": [s for s, _ in steps]}
        for s, e in steps:
            rows.append([str(s), _s(e.get("lamina_s")), _s(e.get("docker_classic_s")), _s(e.get("docker_buildkit_s"))])
            ser.setdefault("lamina", []).append(e.get("lamina_s"))
            ser.setdefault("Docker classic", []).append(e.get("docker_classic_s"))
            ser.setdefault("Docker BuildKit", []).append(e.get("docker_buildkit_s"))
        out.append("build time against the number of RUN steps (no cache)\n"
                   + table(rows, ["steps", "lamina", "Docker classic", "Docker BuildKit"]))
        series["steps"] = ser
    return "\n\n".join(out), series


def ensure_matplotlib(python: str) -> Optional[str]:
    """matplotlib in the venv (pip install on first use). Returns why plots cannot be drawn, or None."""
    try:
        import matplotlib  # noqa: F401
        return None
    except ImportError:
        pass
    print("installing matplotlib into the venv for the plots ...", file=sys.stderr, flush=True)
    p = subprocess.run([python, "-m", "pip", "install", "-q", "matplotlib"], capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        return f"matplotlib could not be installed ({p.stderr.strip().splitlines()[-1:] or p.returncode})"
    import importlib
    importlib.invalidate_caches()
    try:
        import matplotlib  # noqa: F401,F811
        return None
    except ImportError as e:
        return f"matplotlib not importable after install: {e}"


def plots(entries: dict, series: dict, outdir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    style = {"lamina": dict(color="tab:green", marker="o"), "docker": dict(color="tab:blue", marker="s"),
             "Docker classic": dict(color="tab:blue", marker="s"), "Docker BuildKit": dict(color="tab:purple", marker="^"),
             "lamina diff": dict(color="tab:green", marker="o", ls="-"), "lamina commit": dict(color="tab:green", marker="o", ls="--"),
             "docker diff": dict(color="tab:blue", marker="s", ls="-"), "docker commit": dict(color="tab:blue", marker="s", ls="--")}

    def line(ax, xs, ys, label):
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label, **style.get(label, {}))

    if "changes" in series:
        s = series["changes"]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for k in ("lamina diff", "docker diff", "lamina commit", "docker commit"):
            line(ax, s["x"], s.get(k, []), k)
        ax.set_xscale("log"); ax.set_yscale("log")
        ax.set_xlabel("changed files in the container"); ax.set_ylabel("seconds (median)")
        ax.set_title("diff / commit time against the size of the change")
        ax.grid(True, which="both", alpha=0.3); ax.legend()
        made.append(_save(fig, outdir / "growth-changes.png"))
    if "base" in series:
        s = series["base"]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        keys = ["lamina diff", "docker diff", "lamina commit", "docker commit"]
        w = 0.2
        for i, k in enumerate(keys):
            ys = [y if y is not None else float("nan") for y in s.get(k, [])]
            if all(y != y for y in ys):
                continue
            ax.bar([j + (i - 1.5) * w for j in range(len(ys))], ys, w, label=k,
                   color=style[k]["color"], alpha=1.0 if "diff" in k else 0.55)
        ax.set_xticks(range(len(s["x"]))); ax.set_xticklabels([f"base: {x}" for x in s["x"]])
        ax.set_ylabel("seconds (median)")
        ax.set_title("diff / commit time against the unchanged image below (same change)")
        ax.grid(True, axis="y", alpha=0.3); ax.legend()
        made.append(_save(fig, outdir / "growth-base.png"))
    if "steps" in series:
        s = series["steps"]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for k in ("lamina", "Docker classic", "Docker BuildKit"):
            line(ax, s["x"], s.get(k, []), k)
        ax.set_xlabel("RUN steps"); ax.set_ylabel("seconds (median)")
        ax.set_title("build time (no cache) against the number of steps")
        ax.grid(True, alpha=0.3); ax.legend()
        made.append(_save(fig, outdir / "growth-steps.png"))
    main = [(n, e) for n, e in entries.items() if e.get("group") == "main" and e.get("ratio") is not None]
    if main:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        names = [n for n, _ in main]
        ratios = [e["ratio"] for _, e in main]
        colors = ["tab:green" if e.get("target_met") in (True, None) else "tab:red" for _, e in main]
        ax.bar(names, ratios, color=colors)
        for i, (_, e) in enumerate(main):
            if e.get("target") is not None:
                ax.plot([i - 0.4, i + 0.4], [e["target"]] * 2, color="black", lw=2)
        ax.axhline(1.0, color="gray", ls=":")
        ax.set_ylabel("lamina / Docker (median time)"); ax.set_title("ratio per workload (bars) and target (black)")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
        made.append(_save(fig, outdir / "ratios.png"))
    return made


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
