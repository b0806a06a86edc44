"""One exception hierarchy for the whole engine.

Every error a user can cause is a LaminaError: the CLI prints its message on one
line (cli/main.py is the one place that does) and exits with `exit_code`; the
Python API raises it as is; an Engine API server answers with `http_status`.
Anything else escaping to the CLI is a bug.
Exit codes follow the docker CLI: 1 for "no such object" and usage-level
failures, 125 for engine failures around `run`, 126/127 for a container command
that cannot be executed / found.  HTTP statuses follow dockerd's errdefs mapping:
400 bad parameter, 404 not found, 409 conflict, 500 for the engine's own failures.
`daemon` says whose text docker shows for the error: dockerd's (the CLI prints
`Error response from daemon: …`) or its own CLI's (printed bare: a reference or an
option it parsed before sending the request).
"""

from __future__ import annotations

DAEMON_PREFIX = "Error response from daemon"  # a verb's error prefix where docker's text is dockerd's


class LaminaError(Exception):
    """Base of all errors lamina raises on purpose."""

    exit_code = 1
    http_status = 500
    daemon = True  # lamina's engine stands where dockerd does


class UsageError(LaminaError):
    """Bad flags or arguments (docker exits 125 for flag errors of run, 1 elsewhere)."""

    http_status = 400
    daemon = False


class OptionError(UsageError):
    """A run/create option value docker's CLI rejects while building the request (an
    unreadable or malformed --env-file): `lamina: …` and the verb's `See '… --help'.`
    line, exit 125."""

    exit_code = 125


class InvalidParameter(UsageError):
    """A request the engine refuses for a bad parameter (dockerd's errdefs.InvalidParameter:
    `No command specified`, an invalid container name or volume specification)."""

    daemon = True


class InvalidReference(LaminaError):
    """An image reference that docker would reject (`Ubuntu`, `a//b`, `x:t1:t2`).  docker's
    CLI parses the references of run, create, pull, push, commit and tag itself; a raising
    point standing for dockerd's parse (rmi, history) sets `daemon` on the instance."""

    http_status = 400
    daemon = False


class InvalidDigest(LaminaError):
    """A digest string that is not `sha256:` + 64 lowercase hex."""

    http_status = 400


class NotFound(LaminaError):
    """No such image / container / layer / blob."""

    http_status = 404


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

    http_status = 409


class NotImplementedByDriver(LaminaError):
    """What a container's configuration does not offer (dockerd's errdefs.NotImplemented:
    `logs` of a container whose logging driver cannot be read)."""

    http_status = 501


class DigestMismatch(LaminaError):
    """Content does not hash to (or is not the size of) what it claims."""


class InvalidArchive(LaminaError):
    """A tar stream that is malformed, truncated or tries to escape its root."""

    http_status = 400


class StoreError(LaminaError):
    """The store on disk is damaged or cannot be written."""


class BuildError(LaminaError):
    """A Dockerfile that cannot be parsed or built; the message names file:line."""

    http_status = 400


class RegistryError(LaminaError):
    """A registry refused, failed or sent bad content; the message names the registry."""


class RuntimeFailure(LaminaError):
    """The OCI runtime (runc/crun) could not create or start the container."""

    exit_code = 125


class ContainerCommandNotFound(RuntimeFailure):
    """The container's command does not exist (docker exits 127)."""

    exit_code = 127
    http_status = 400  # dockerd: "executable file not found" is InvalidParameter


class ContainerCommandNotExecutable(RuntimeFailure):
    """The container's command exists but cannot be executed (docker exits 126)."""

    exit_code = 126
    http_status = 400


class MountTypeMismatch(RuntimeFailure):
    """The runtime could not bind a file onto a directory or the reverse: `run` exits
    125 as for any runtime error, the container keeps 127 (dockerd's ENOTDIR case)."""

    state_exit_code = 127
    http_status = 400


class ExecFailed(LaminaError):
    """`exec` could not start its process: docker prints the text on stdout (it is
    the exec's output stream) and exits 126, 127 for a command that is not found."""

    exit_code = 126
    http_status = 400

    def __init__(self, message: str, exit_code: int = 126) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_exit_code(error: LaminaError) -> int:
    """docker run's exit code for an error before the container ran: the command's 126/127,
    else 125 (the engine refused: docker's "the docker command itself failed")."""
    return error.exit_code if error.exit_code in (126, 127) else 125


class RunFailed(BuildError):
    """A RUN step exited non-zero; `lamina build` exits with the same code (docker CLI)."""

    http_status = 500

    def __init__(self, command: str, code: int) -> None:
        super().__init__(f"The command '{command}' returned a non-zero code: {code}")
        self.exit_code = code or 1


class ShellError(BuildError):
    """A word that cannot be expanded (bad substitution, unterminated quote, ${v:?})."""

    def at(self, filename: str, line: int) -> BuildError:
        """The same error located in a Dockerfile, for the executor to raise."""
        return BuildError(f"{filename}:{line}: {self}")


class InstructionError(BuildError):
    """A mistake in one instruction, not yet located (parse_mount, parse_duration)."""

    def at(self, filename: str, line: int) -> BuildError:
        return BuildError(f"{filename}:{line}: {self}")


class CredentialsError(LaminaError):
    """config.json or a credential helper could not be read or written."""


class ContainerError(LaminaError):
    """A container the Python API ran exited non-zero (docker-py's ContainerError):
    carries the exit status, the command, the image and what it wrote to stderr."""

    def __init__(self, container: str, exit_status: int, command, image: str, stderr: bytes) -> None:
        detail = stderr.decode("utf-8", "replace").strip()
        super().__init__(f"Command '{command}' in image '{image}' returned non-zero exit status {exit_status}"
                         + (f": {detail}" if detail else ""))
        self.container = container
        self.exit_status = exit_status
        self.command = command
        self.image = image
        self.stderr = stderr
