"""lamina against Docker: the benchmark suite (see bench/README.md). Run it as bench/run."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import report
import workloads as W
from env import PREFIX, REPO, Bases, CmdError, Docker, Lamina, Podman, apt_install, log, rootfs_tar
from timing import Settle, VariantResult, alternate, hyperfine

RESULTS = Path(__file__).resolve().parent / "results"
BUSY = 1.5    # 1-minute load average per CPU at a workload's start above which its figures are
              # flagged as noisy (this suite alone stays near 1 per CPU)


def parse(argv):
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                epilog="workloads: " + ", ".join(W.MAIN) + "; growth groups: "
                                + ", ".join(W.GROUPS) + " (or 'growth' for all three)")
    p.add_argument("--quick", action="store_true", help="small sizes, one run, no warm-up (about 3 minutes)")
    p.add_argument("--only", metavar="NAME[,NAME]", help="run only these workloads / growth groups")
    p.add_argument("--runs", type=int, help="measured runs per workload (default: 3 to 7; --quick: 1)")
    p.add_argument("--warmup", type=int, help="warm-up runs per workload (default 1; --quick: 0)")
    p.add_argument("--no-docker", action="store_true", help="measure lamina only")
    p.add_argument("--with-apt", action="store_true", help="with --quick: include the apt-get install git build")
    p.add_argument("--with-podman", action="store_true", help="install podman and buildah from apt to compare")
    p.add_argument("--no-hyperfine", dest="hyperfine", action="store_false",
                   help="skip the hyperfine cross-check of run, diff and the cached build (full runs)")
    p.add_argument("--no-plots", action="store_true", help="do not draw the PNG plots")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="results JSON (default bench/results/latest.json)")
    p.add_argument("--keep", action="store_true", help="keep the temporary lamina store and work files")
    return p.parse_args(argv)


def select(args) -> list[str]:
    names = set(W.MAIN) | set(W.GROUPS)
    if args.only:
        chosen = set()
        for n in (x.strip() for x in args.only.split(",") if x.strip()):
            if n == "growth":
                chosen |= set(W.GROUPS)
            elif n in names:
                chosen.add(n)
            else:
                sys.exit(f"bench/run: unknown workload {n!r} (known: {', '.join(W.MAIN + W.GROUPS)}, growth)")
        return [n for n in W.MAIN + W.GROUPS if n in chosen]
    chosen = [n for n in W.MAIN + W.GROUPS if n != "apt" or not args.quick or args.with_apt]
    return chosen


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench/run: needs root (overlay mounts, runc, dockerd)", file=sys.stderr)
        return 2
    if not os.access(REPO / ".venv" / "bin" / "lamina", os.X_OK):
        print("bench/run: no .venv/bin/lamina: run scripts/setup first", file=sys.stderr)
        return 2
    selected = select(args)
    sizes = W.QUICK if args.quick else W.FULL
    # Fresh bytecode for lamina's sources: with PYTHONDONTWRITEBYTECODE set, a module edited
    # since the last compile is compiled on every start, which the start-up rows would time.
    subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "compileall", "-q", str(REPO / "src")],
                   capture_output=True)
    started = time.time()
    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir="/var/tmp"))
    lamina = Lamina(workdir / "root")
    docker = Docker()
    podman = Podman()
    ctx = W.Ctx(workdir=workdir, lamina=lamina, docker=docker, podman=podman, bases=Bases(sizes),
                sizes=sizes, quick=args.quick)
    # SIGTERM (a time-out of the caller) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    entries: dict = {}
    meta: dict = {}
    order: list[str] = []
    try:
        log(f"lamina store: {lamina.root}; workloads: {', '.join(selected)}{' (quick)' if args.quick else ''}")
        if args.no_docker:
            docker.reason = "--no-docker"
        else:
            docker.ensure()
        log(f"docker: {docker.reason or 'engine ' + docker.server_version + ' via ' + str(docker.bin)}")
        if args.with_podman and not podman.bin:
            try:
                apt_install("podman", "buildah")
                podman = ctx.podman = Podman()
            except CmdError as e:
                log(f"podman: install failed: {e}")
        if args.no_docker:
            podman.reason = "not compared (--no-docker: lamina only)"
        elif not {"run", "build", "build-cached"} & set(selected):
            podman.reason = "not compared (compared on run, build and build-cached only)"
        else:
            podman.probe(lambda: rootfs_tar("busybox-base"), Bases.ref("small"))
        log(f"podman: {podman.reason or 'runs containers: compared on run, build and build-cached'}"
            + ("" if shutil.which("buildah") else "; buildah not installed"))
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip(),
            "lamina": lamina.version(), "docker": docker.reason or docker.server_version,
            "podman": podman.reason or "ok", "quick": args.quick, "host": platform.node(),
            "cpus": os.cpu_count(), "kernel": platform.release(),
        }
        wls = W.all_workloads(ctx, set(selected))
        for wl in wls:
            if args.runs is not None:
                wl.runs = max(1, args.runs)
            if args.warmup is not None:
                wl.warmup = max(0, args.warmup)
            elif args.quick:
                wl.warmup = 0
            order.append(wl.name)
            load = os.getloadavg()[0]
            log(f"== {wl.name}: {wl.title} ({wl.warmup} warm-up + {wl.runs} runs, alternating; "
                f"load average {load:.1f})")
            t0 = time.monotonic()
            results = None
            if wl.setup:
                try:
                    wl.setup()
                except Exception as e:  # noqa: BLE001
                    log(f"  set-up failed: {e}")
                    results = {v.name: VariantResult(note=v.skip or f"set-up failed: {e}") for v in wl.variants()}
            hf: dict = {}
            after = None
            if wl.stateless and args.hyperfine and not args.quick:
                def after(active, wl=wl, hf=hf):
                    export = args.out.parent / f"hyperfine-{wl.name}.json"
                    hf.update(hyperfine(active, runs=max(5, wl.runs), export=str(export)))
                    log("  hyperfine (back to back, no shell): "
                        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in hf.items()))
            settle = Settle() if wl.settle else None
            if results is None:
                results = alternate(wl.variants(), runs=wl.runs, warmup=wl.warmup, budget_s=wl.budget_s,
                                    log=log, after=after, settle=settle)
            if settle is not None:
                wl.info["settle_wait_s"] = round(settle.waited_s, 1)
            if wl.teardown:
                try:
                    wl.teardown()
                except Exception as e:  # noqa: BLE001
                    log(f"  clean-up: {e}")
            entries[wl.name] = report.entry(wl, results)
            entries[wl.name]["load_avg_1m"] = round(load, 2)
            if hf:
                entries[wl.name]["hyperfine_s"] = {k: round(v, 4) for k, v in hf.items()}
            e = entries[wl.name]
            log(f"   -> lamina {report._s(e['lamina_s'])}, {e['reference']} {report._s(e['docker_s'])}, "
                f"ratio {e['ratio']}  ({time.monotonic() - t0:.0f}s)")
            report.write_json(args.out, entries)  # after each workload: an interrupted run keeps its results
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
    finally:
        log("cleaning up (lamina store, containers and images named lamina-bench*)")
        try:
            lamina.destroy()
        except Exception as e:  # noqa: BLE001
            log(f"lamina clean-up: {e}")
        for tool in (docker, podman):
            try:
                tool.cleanup_all()
            except Exception as e:  # noqa: BLE001
                log(f"{tool.name} clean-up: {e}")
        ctx.close()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    report.write_json(args.out, entries)
    print()
    print(f"lamina {meta.get('lamina', '?')} ({meta.get('git', '?')}) against Docker {meta.get('docker', '?')}; "
          f"{'quick' if args.quick else 'full'} run, median of alternating runs; ratio = lamina / reference")
    hide = frozenset(x for x in (docker.reason,) if x)
    if docker.reason:
        print(f"Docker: {docker.reason}")
    print(report.summary(entries, order, hide) or "(no main workload selected)")
    text, series = report.curves(entries, sizes)
    if text:
        print()
        print(text)
    busy = sorted(n for n, e in entries.items() if e.get("load_avg_1m", 0) > BUSY * (os.cpu_count() or 1))
    if busy:
        during = "the whole run" if len(busy) == len(entries) else ", ".join(busy)
        print(f"\nnote: the machine was busy with other work (1-minute load average above "
              f"{BUSY * (os.cpu_count() or 1):.1f} at the start) during {during}: those figures are noisy")
    if meta.get("podman") and meta["podman"] != "ok" and not meta["podman"].startswith("not compared"):
        print(f"\nPodman/Buildah: {meta['podman']}")
    if not args.no_plots and entries:
        why = report.ensure_matplotlib(str(REPO / ".venv" / "bin" / "python"))
        if why:
            print(f"\nplots skipped: {why}")
        else:
            made = report.plots(entries, series, args.out.parent)
            if made:
                print("\nplots: " + ", ".join(str(p) for p in made))
    meta["seconds"] = round(time.time() - started, 1)
    if args.out == RESULTS / "latest.json":
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        report.write_json(RESULTS / f"run-{stamp}.json", {"meta": meta, "results": entries})
    print(f"\nresults: {args.out} ({meta['seconds']:.0f}s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
