"""What a stage knows between steps: its current image, config, ARGs in scope."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

from lamina import oci
from lamina.builder.configchanges import DEFAULT_PATH_ENV, env_map, shell_of
from lamina.digest import Digest
from lamina.image import Image


@dataclass(frozen=True)
class BuildRequest:
    """Everything `lamina build` was asked for."""

    context_dir: str
    dockerfile: str                      # the text
    dockerfile_name: str = "Dockerfile"  # for file:line in errors
    tags: tuple = ()                     # Reference values
    build_args: dict = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    quiet: bool = False
    labels: dict = field(default_factory=dict)
    network: str = "default"             # default (= the bridge) | host | none
    pull: bool = False
    secrets: dict = field(default_factory=dict)   # id -> host file path (or ("env", NAME))
    ignore: object | None = None         # dockerignore.IgnoreMatcher
    allow: tuple = ()                    # entitlements granted (--allow security.insecure)
    cache_from: tuple = ()               # remotecache.CacheSpec values (--cache-from)
    cache_to: tuple = ()                 # remotecache.CacheSpec values (--cache-to)
    cache_ttl: float | None = None       # --cache-ttl, seconds
    platform: object | None = None       # transfer.platforms.Platform of --platform; None: the host's
    extra_hosts: tuple = ()              # --add-host NAME:IP lines of RUN's /etc/hosts (as docker: not in the key)
    cache_images: tuple | None = None    # classic cachefrom: image IDs to take steps from (cachesources.py)

    @property
    def epoch(self) -> int | None:
        """SOURCE_DATE_EPOCH from the build-args (lamina/sourcedate.py), None when unset."""
        from lamina.sourcedate import parse

        return parse(self.build_args.get("SOURCE_DATE_EPOCH"))


class StageState:
    """Mutable per-stage state; `image_id`/`config` always describe a committed image
    (or scratch), so a cache hit and a fresh commit leave the same state."""

    def __init__(self, system, index: int, name: str | None, image_id: Digest | None,
                 args: dict[str, str | None]) -> None:
        self.system = system
        self.index = index
        self.name = name
        self.args = dict(args)   # declared ARGs in scope -> value (None: no value)
        self.cmd_set = False
        self.busted = False
        self.image: Image
        self.config: dict = {}
        self.move_to(image_id)

    @property
    def image_id(self) -> Digest | None:
        return self.image.id

    def move_to(self, image: "Image | Digest | None") -> None:
        """Make `image` (a value, or an ID to load) the stage's current image."""
        if not isinstance(image, Image):
            image = Image.load(self.system, image)
        self.image = image
        # The stage's own copy: seed_path and ONBUILD edit it, the image value stays as stored.
        self.config = json.loads(image.raw_config) if image.id is not None else copy.deepcopy(image.config)
        if self.config.get("config") is None:
            self.config["config"] = oci.empty_container_config()

    @property
    def cfg(self) -> dict:
        return self.config["config"]

    def new_cfg(self) -> dict:
        return copy.deepcopy(self.cfg)

    def seed_path(self) -> None:
        """BuildKit (and moby 20.10's classic builder) add the default PATH to a base
        image whose Env has none; the first committed step carries it."""
        env = list(self.cfg.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            self.cfg["Env"] = [DEFAULT_PATH_ENV] + env
        if self.image.id is None and not self.cfg.get("WorkingDir"):
            self.cfg["WorkingDir"] = "/"  # BuildKit's empty image (FROM scratch) has WorkingDir "/"

    @property
    def shell(self) -> tuple[str, ...]:
        return shell_of(self.cfg)

    def scope(self) -> dict[str, str]:
        """Names visible to builder-side substitution: ARGs with values, ENV winning."""
        out = {k: v for k, v in self.args.items() if v is not None}
        out.update(env_map(self.cfg))
        return out

    def run_args(self) -> list[tuple[str, str]]:
        """ARGs a RUN sees as environment (those with values, not shadowed by ENV)."""
        env = env_map(self.cfg)
        return sorted((k, v) for k, v in self.args.items() if v is not None and k not in env)

    def history_args(self) -> list[str]:
        """moby's `|N K=V` prefix.  Only declared ARGs are in `args`, so undeclared
        proxy args (passed to RUN by the executor) never show up here."""
        return [f"{k}={v}" for k, v in self.run_args()]
