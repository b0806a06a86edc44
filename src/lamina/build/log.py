"""The classic `docker build` log, line for line (moby 20.10's shapes).

    Sending build context to Docker daemon  3.072kB
    Step 1/3 : FROM busybox
     ---> 2c047404e52d
     ---> Running in 38d7c34c2178
    Removing intermediate container 38d7c34c2178
     ---> Using cache
    Successfully built b92f70f2e57d
    Successfully tagged demo:latest

`quiet` (-q) keeps everything but errors off stdout.  RUN output goes straight
from the container to our stdout/stderr, so we flush before starting one.
"""

from __future__ import annotations

import sys
from typing import TextIO


def human_size(n: float) -> str:
    """docker's units.HumanSize (decimal, 4 significant digits): 3.072kB, 373MB."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.4g}{units[i]}"


class BuildLog:
    def __init__(self, out: TextIO | None = None, *, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet

    def line(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text + "\n")

    def flush(self) -> None:
        self.out.flush()

    def context_size(self, size: int) -> None:
        # "daemon " then the size right-aligned in 8 columns: "daemon  3.072kB", "daemon    373MB".
        self.line(f"Sending build context to Docker daemon {human_size(size):>8}")

    def step(self, n: int, total: int, text: str) -> None:
        self.line(f"Step {n}/{total} : {text}")

    def arrow(self, text: str) -> None:
        self.line(f" ---> {text}")

    def image(self, image_id) -> None:
        self.arrow(str(image_id)[7:19] if str(image_id).startswith("sha256:") else str(image_id)[:12])

    def using_cache(self) -> None:
        self.arrow("Using cache")

    def running_in(self, container_id: str) -> None:
        self.arrow(f"Running in {container_id[:12]}")
        self.flush()

    def removing(self, container_id: str) -> None:
        self.line(f"Removing intermediate container {container_id[:12]}")

    def warning(self, text: str) -> None:
        self.line(f"[Warning] {text}")

    def triggers(self, n: int) -> None:
        self.line(f"# Executing {n} build trigger{'s' if n != 1 else ''}")
