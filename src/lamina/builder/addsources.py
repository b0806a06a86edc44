"""What ADD adds to COPY's sources: a local tar archive (plain, gzip, bzip2 or xz,
judged by content, not name) extracted with the confined layer extractor, and an
http(s) URL downloaded (mode 0600 once copied, `--checksum` verified).
"""

from __future__ import annotations

import hashlib
import os
import posixpath

from lamina.errors import BuildError, LaminaError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from lamina.builder.fileops import Writer


def add_archive(w: Writer, ctx, src, dest: str, where: str) -> bool:
    """ADD of a local tar archive (maybe compressed; judged by content): extract it into
    `dest` and feed w.hasher from the same read.  False (nothing done) if `src` is not
    an archive.  The file is opened once, through the context's no-follow walk."""
    from lamina.archive.extract import apply_layer, open_layer_stream
    from lamina.digest import HashingReader

    fd = ctx.open_file(src.follow)
    with os.fdopen(fd, "rb") as f:
        if not is_archive(f):
            return False
        st = os.fstat(f.fileno())
        f.seek(0)
        reader = HashingReader(f)
        try:
            apply_layer(open_layer_stream(reader), w.resolve_dir(dest), overlay_whiteouts=False)
        except LaminaError as e:
            raise BuildError(f"{where}: ADD {posixpath.basename(src.rel)}: {e}") from None
        reader.drain()  # what the extractor left unread is part of the file's hash
    if w.hasher is not None:
        w.hasher.add("", st, data_digest=reader.digest().hex)
    return True


def is_archive(f) -> bool:
    """A tar stream, maybe compressed (gzip, bzip2, xz), judged by content."""
    from lamina.archive.compression import open_stream
    from lamina.builder.stdincontext import is_tar_header

    try:
        head = f.read(6)
        f.seek(0)
        if head.startswith(b"\x1f\x8b") or head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ\x00"):
            try:
                block = open_stream(f).read(512)
            except LaminaError:
                return False
        else:
            block = f.read(512)
    except OSError:
        return False
    return len(block) == 512 and is_tar_header(block)


def download(url: str, checksum: str | None, where: str, tmp_dir: str, cleanups: list):
    """(file name, local path, sha256 hex, mtime) of a downloaded URL."""
    import email.utils
    import tempfile
    import urllib.error
    import urllib.parse
    import urllib.request

    name = posixpath.basename(urllib.parse.urlparse(url).path) or "__unnamed__"
    fd, path = tempfile.mkstemp(dir=tmp_dir, prefix=f"build-{os.getpid()}-url-")
    cleanups.append(lambda: os.path.exists(path) and os.unlink(path))
    h = hashlib.sha256()
    mtime = None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
            modified = resp.headers.get("Last-Modified")
            if modified:
                try:
                    mtime = email.utils.parsedate_to_datetime(modified).timestamp()
                except (TypeError, ValueError):
                    mtime = None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise BuildError(f"{where}: ADD {url}: download failed: {getattr(e, 'reason', e)}") from None
    if checksum:
        algo, _, want = checksum.partition(":")
        if algo != "sha256" or not want:
            raise BuildError(f"{where}: unsupported checksum {checksum!r} (want sha256:<hex>)")
        if want.lower() != h.hexdigest():
            raise BuildError(f"{where}: ADD {url}: digest mismatch sha256:{h.hexdigest()}: expected {checksum}")
    return name, path, h.hexdigest(), mtime
