"""One exception hierarchy for the whole engine.

Every error a user can cause is a LaminaError: the CLI prints its message on one
line and exits with `exit_code`.  Anything else escaping to the CLI is a bug.
Exit codes follow the docker CLI: 1 for "no such object" and usage-level
failures, 125 for engine failures around `run`, 126/127 for a container command
that cannot be executed / found.
"""

from __future__ import annotations


class LaminaError(Exception):
    """Base of all errors lamina raises on purpose."""

    exit_code = 1


class UsageError(LaminaError):
    """Bad flags or arguments (docker exits 125 for flag errors of run, 1 elsewhere)."""


class InvalidReference(LaminaError):
    """An image reference that docker would reject (`Ubuntu`, `a//b`, `x:t1:t2`)."""


class InvalidDigest(LaminaError):
    """A digest string that is not `sha256:` + 64 lowercase hex."""


class NotFound(LaminaError):
    """No such image / container / layer / blob."""


class NoSuchImage(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such image: {name}")
        self.name = name


class NoSuchContainer(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such container: {name}")
        self.name = name


class Conflict(LaminaError):
    """The object is in use or the name is taken (docker's HTTP 409 family)."""


class DigestMismatch(LaminaError):
    """Content does not hash to (or is not the size of) what it claims."""


class InvalidArchive(LaminaError):
    """A tar stream that is malformed, truncated or tries to escape its root."""


class StoreError(LaminaError):
    """The store on disk is damaged or cannot be written."""


class BuildError(LaminaError):
    """A Dockerfile that cannot be parsed or built; the message names file:line."""


class RegistryError(LaminaError):
    """A registry refused, failed or sent bad content; the message names the registry."""


class RuntimeFailure(LaminaError):
    """The OCI runtime (runc/crun) could not create or start the container."""

    exit_code = 125


class ContainerCommandNotFound(RuntimeFailure):
    """The container's command does not exist (docker exits 127)."""

    exit_code = 127


class ContainerCommandNotExecutable(RuntimeFailure):
    """The container's command exists but cannot be executed (docker exits 126)."""

    exit_code = 126
