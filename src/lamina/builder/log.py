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

from lamina.units import human_size


class BuildLog:
    def __init__(self, out: TextIO | None = None, *, quiet: bool = False) -> None:
        self.out = out or sys.stdout
        self.quiet = quiet
        # What a fully cached rerun of this build prints (kept for the build memo).
        self.transcript: list[str] = []
        self.sending: str | None = None

    def _both(self, text: str) -> None:
        self.transcript.append(text)
        self.line(text)

    def line(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text + "\n")

    def flush(self) -> None:
        self.out.flush()

    def context_size(self, size: int) -> None:
        # "daemon " then the size right-aligned in 8 columns: "daemon  3.072kB", "daemon    373MB".
        self.sending = f"Sending build context to Docker daemon {human_size(size):>8}"
        self.line(self.sending)

    def step(self, n: int, total: int, text: str) -> None:
        self._both(f"Step {n}/{total} : {text}")

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
        self._both(f"[Warning] {text}")

    def triggers(self, n: int) -> None:
        self._both(f"# Executing {n} build trigger{'s' if n != 1 else ''}")

    def base(self, image_id) -> None:
        """FROM's arrow: ` ---> <12hex>` (empty for scratch)."""
        self._both(" ---> " + (str(image_id)[7:19] if image_id else ""))

    def result(self, image_id, *, cached: bool) -> None:
        """A step's outcome; the transcript always shows it as a cache hit."""
        if cached:
            self.using_cache()
        self.image(image_id)
        self.transcript += [" ---> Using cache", " ---> " + str(image_id)[7:19]]
