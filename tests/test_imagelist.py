"""engine/imagelist.py: `lamina images`' rows from the tables, without the reference parser."""

from __future__ import annotations

import pytest

from lamina.engine.imagelist import familiar_repository
from lamina.reference import parse


@pytest.mark.parametrize("name", ["busybox", "library/busybox", "docker.io/library/busybox", "foo/bar",
                                  "docker.io/foo/bar", "index.docker.io/foo", "localhost/x", "localhost:5000/a/b",
                                  "quay.io/library/x", "host.example.com:443/library/y", "a/library/b",
                                  "docker.io/library/a/b", "[::1]:5000/z"])
def test_familiar_repository_is_the_references(name):
    """The stored (normalised) repository, made familiar from its text, is what the
    parsed reference gives (the listing splits stored names instead of parsing them)."""
    ref = parse(name)
    assert familiar_repository(ref.repository) == ref.familiar_repository
    stored, _, tag = ref.name.rpartition(":")  # a stored tag's row: `domain/path:tag`
    assert (stored, tag) == (ref.repository, ref.tag)


def _id(c: str) -> str:
    return "sha256:" + c * 64


def test_rows_as_docker_lists_them(tmp_path):
    """One row per tag, newest image first; an untagged parent of a tagged image is
    intermediate (only with `all`), an untagged leaf is `<none>`; repo digests shown when
    asked; a repository argument keeps its tags only (engine/images.list_images: the same
    rows with the image store's records)."""
    from lamina.engine.images import list_images
    from lamina.engine.imagelist import image_rows
    from lamina.system import System

    system = System(str(tmp_path / "store"))
    try:
        db = system.db
        for image_id, parent, created in ((_id("a"), None, 1.0), (_id("b"), None, 2.0),
                                          (_id("c"), _id("b"), 3.0), (_id("d"), None, 4.0)):
            db.execute("INSERT INTO images(id, manifest, parent, created, size, added) VALUES (?,?,?,?,?,?)",
                       (image_id, _id("f"), parent, created, 100, created))
        for name, image_id in (("docker.io/library/bb:1", _id("a")), ("docker.io/foo/bar:2", _id("a")),
                               ("localhost:5000/x:y", _id("a")), ("docker.io/library/child:1", _id("c"))):
            db.execute("INSERT INTO tags(name, image_id, tagged) VALUES (?,?,0)", (name, image_id))
        for name, image_id in ((f"docker.io/library/bb@{_id('1')}", _id("a")),
                               (f"docker.io/library/old@{_id('2')}", _id("d"))):
            db.execute("INSERT INTO repo_digests(name, image_id) VALUES (?,?)", (name, image_id))

        def listed(**options):
            rows = image_rows(system, **options)
            return [(repo, tag, digest, image_id[7:8]) for repo, tag, digest, image_id, *_ in rows]

        assert listed() == [("<none>", "<none>", "<none>", "d"), ("child", "1", "<none>", "c"),
                            ("foo/bar", "2", "<none>", "a"), ("bb", "1", "<none>", "a"),
                            ("localhost:5000/x", "y", "<none>", "a")]
        assert listed(all=True, digests=True) == [
            ("<none>", "<none>", _id("2"), "d"), ("child", "1", "<none>", "c"), ("<none>", "<none>", "<none>", "b"),
            ("foo/bar", "2", "<none>", "a"), ("bb", "1", _id("1"), "a"), ("localhost:5000/x", "y", "<none>", "a")]
        assert listed(repository="bb") == [("bb", "1", _id("1"), "a")]
        assert listed(repository="docker.io/library/bb:2") == []
        assert listed(repository="localhost:5000/x:y") == [("localhost:5000/x", "y", "<none>", "a")]
        records = list_images(system, all=True)
        rows = image_rows(system, all=True)
        assert [(repo, tag, str(rec.id), rec.created, rec.size) for repo, tag, _, rec in records] == \
            [(repo, tag, image_id, created, size) for repo, tag, _, image_id, created, size in rows]
    finally:
        system.close()
