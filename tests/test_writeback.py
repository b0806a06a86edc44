"""lamina/writeback.py: a big blob's and a big extracted file's writeback is started as
they are written, so the final fsync/syncfs finds the data on disk; what is stored is
the same bytes."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

from lamina import writeback


def test_the_kernel_takes_the_call_on_a_file_and_refuses_it_on_a_pipe(tmp_path):
    with open(tmp_path / "f", "wb") as f:
        f.write(os.urandom(1 << 20))
        f.flush()
        assert writeback.start(f.fileno()) is True
        assert writeback.start(f.fileno(), 4096, 8192) is True
    r, w = os.pipe()
    try:
        assert writeback.start(w) is False  # ESPIPE: advisory, never raised
    finally:
        os.close(r)
        os.close(w)


def test_a_big_blob_starts_its_writeback_in_steps_over_all_its_bytes(tmp_path, monkeypatch):
    from lamina.store import content

    started = []
    real = writeback.start
    monkeypatch.setattr(writeback, "start", lambda fd, off=0, n=0: started.append((off, n)) or real(fd, off, n))
    store = content.ContentStore(str(tmp_path / "store"))
    data = os.urandom(1 << 20) * 40
    with store.writer() as w:
        for i in range(0, len(data), 1 << 20):
            w.write(data[i:i + (1 << 20)])
        digest = w.commit()
    assert digest.hex == hashlib.sha256(data).hexdigest()
    with open(store.path(digest), "rb") as f:
        assert f.read() == data
    step = content._WRITEBACK_STEP
    assert started == [(i * step, step) for i in range(len(data) // step)]  # contiguous, from the start


def test_extraction_starts_the_writeback_of_big_files_only(tmp_path, monkeypatch):
    from lamina.archive.extract import _WRITEBACK_MIN, apply_layer

    sizes = []
    monkeypatch.setattr(writeback, "start", lambda fd, off=0, n=0: sizes.append(os.fstat(fd).st_size) or True)
    buf = io.BytesIO()
    payload = {"big": os.urandom(_WRITEBACK_MIN * 4), "small": b"x" * 100}
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, body in payload.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    root = tmp_path / "root"
    root.mkdir()
    apply_layer(io.BytesIO(buf.getvalue()), str(root), overlay_whiteouts=False, owners=False)
    assert sizes == [len(payload["big"])]
    assert {p.name: p.read_bytes() for p in root.iterdir()} == payload
