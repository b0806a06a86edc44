"""Registry credentials, read from and written to docker's `config.json`.

Same file, same rules as the docker CLI, so `docker login` and `lamina login`
see each other's credentials: `$DOCKER_CONFIG/config.json` (default
`~/.docker/config.json`), `auths.<server>.auth` = base64("user:password"),
`identitytoken` for OAuth refresh tokens, and credential helpers
(`credHelpers.<server>` first, then `credsStore`) run as
`docker-credential-<name> get|store|erase` with the server on stdin.
"""

from __future__ import annotations

import binascii
import os

from lamina.errors import CredentialsError  # noqa: F401 - re-exported: it lived here
from lamina.record import record
from lamina.remote.hosts import config_key, normalize_server

TOKEN_USERNAME = "<token>"  # helpers return this username for identity tokens
HELPER_TIMEOUT = 30


@record
class Credentials:
    username: str
    secret: str  # the password, or the identity (refresh) token

    @property
    def identity_token(self) -> str | None:
        return self.secret if self.username == TOKEN_USERNAME else None

    def __repr__(self) -> str:  # never print secrets in tracebacks or logs
        return f"Credentials(username={self.username!r}, secret=***)"


def config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


class DockerConfig:
    def __init__(self, directory: str | None = None) -> None:
        self.path = os.path.join(directory or config_dir(), "config.json")

    # -- reading ------------------------------------------------------------------
    def _load(self) -> dict:
        try:
            with open(self.path, "rb") as f:
                import json  # json (and base64) only when there is a config file to read

                data = json.loads(f.read(4 << 20) or b"{}")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise CredentialsError(f"cannot read {self.path}: {e}") from None
        if not isinstance(data, dict):
            raise CredentialsError(f"cannot read {self.path}: not a JSON object")
        return data

    def helper_for(self, domain: str, data: dict | None = None) -> str | None:
        data = self._load() if data is None else data
        helpers = data.get("credHelpers") or {}
        for key in (domain, config_key(domain)):
            if isinstance(helpers.get(key), str) and helpers[key]:
                return helpers[key]
        store = data.get("credsStore")
        return store if isinstance(store, str) and store else None

    def get(self, domain: str) -> Credentials | None:
        """Credentials for a registry domain (`docker.io`, `127.0.0.1:5000`), or None."""
        data = self._load()
        key = config_key(domain)
        helper = self.helper_for(domain, data)
        if helper:
            creds = _helper_get(helper, key)
            if creds is not None:
                return creds
        entry = _find_auth_entry(data.get("auths") or {}, domain)
        return _decode_entry(entry, self.path) if entry else None

    # -- writing ------------------------------------------------------------------
    def store(self, domain: str, creds: Credentials) -> str | None:
        """Save credentials; returns the helper used, or None when saved in the file."""
        import base64
        import json

        data = self._load()
        key = config_key(domain)
        helper = self.helper_for(domain, data)
        if helper:
            _run_helper(helper, "store", json.dumps({"ServerURL": key, "Username": creds.username,
                                                     "Secret": creds.secret}))
            return helper
        auths = data.setdefault("auths", {})
        for stale in [k for k in auths if k != key and normalize_server(k) == domain]:
            del auths[stale]
        if creds.identity_token:
            auths[key] = {"identitytoken": creds.secret}
        else:
            raw = f"{creds.username}:{creds.secret}".encode()
            auths[key] = {"auth": base64.b64encode(raw).decode()}
        self._save(data)
        return None

    def erase(self, domain: str) -> bool:
        """Forget credentials; False when there were none."""
        data = self._load()
        key = config_key(domain)
        found = False
        helper = self.helper_for(domain, data)
        if helper and _helper_get(helper, key) is not None:
            _run_helper(helper, "erase", key)
            found = True
        auths = data.get("auths") or {}
        for k in [k for k in auths if normalize_server(k) == domain]:
            del auths[k]
            found = True
        if found:
            self._save(data)
        return found

    def _save(self, data: dict) -> None:
        import json
        import tempfile  # only login and logout write: push and pull start without it

        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".config.json.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent="\t")
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise


def _find_auth_entry(auths: dict, domain: str) -> dict | None:
    key = config_key(domain)
    if isinstance(auths.get(key), dict):
        return auths[key]
    # docker also accepts keys written with a scheme or path (`https://host/v1/`)
    for k, v in auths.items():
        if isinstance(v, dict) and normalize_server(k) == domain:
            return v
    return None


def _decode_entry(entry: dict, path: str) -> Credentials | None:
    if entry.get("identitytoken"):
        return Credentials(TOKEN_USERNAME, str(entry["identitytoken"]))
    if entry.get("auth"):
        import base64

        try:
            raw = base64.b64decode(str(entry["auth"]), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"invalid auth entry in {path}") from None
        user, sep, password = raw.partition(":")
        if not sep:
            raise CredentialsError(f"invalid auth entry in {path}: want base64(user:password)")
        return Credentials(user, password)
    if entry.get("username") and entry.get("password"):
        return Credentials(str(entry["username"]), str(entry["password"]))
    return None


def _helper_get(helper: str, key: str) -> Credentials | None:
    out = _run_helper(helper, "get", key, not_found_ok=True)
    if out is None:
        return None
    import json

    try:
        doc = json.loads(out)
        user, secret = doc.get("Username") or "", doc.get("Secret") or ""
    except (ValueError, AttributeError):
        raise CredentialsError(f"docker-credential-{helper}: invalid output") from None
    return Credentials(user, secret) if secret else None


def _run_helper(helper: str, action: str, stdin: str, *, not_found_ok: bool = False) -> str | None:
    import subprocess  # only a configured credential helper runs: push and pull start without it

    prog = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([prog, action], input=stdin.encode(), capture_output=True,
                              timeout=HELPER_TIMEOUT, close_fds=True)
    except FileNotFoundError:
        raise CredentialsError(f"error getting credentials - err: exec: \"{prog}\": executable file not found in $PATH") from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(f"{prog} {action}: timed out after {HELPER_TIMEOUT}s") from None
    out = proc.stdout.decode(errors="replace").strip()
    if proc.returncode != 0:
        if not_found_ok and "credentials not found" in out.lower():
            return None
        msg = out or proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise CredentialsError(f"{prog} {action}: {msg.splitlines()[0]}")
    return out
