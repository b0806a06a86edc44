"""Reference parsing follows distribution/reference (docker's normalisation)."""

import pytest

from lamina.errors import InvalidReference
from lamina.reference import parse


@pytest.mark.parametrize("text,name,familiar", [
    ("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("ubuntu:18.04", "docker.io/library/ubuntu:18.04", "ubuntu:18.04"),
    ("foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"),
    ("docker.io/ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("index.docker.io/library/ubuntu:x", "docker.io/library/ubuntu:x", "ubuntu:x"),
    ("localhost/x", "localhost/x:latest", "localhost/x:latest"),
    ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b:v1"),
    ("host:5000/x", "host:5000/x:latest", "host:5000/x:latest"),
    ("a_b.c-d__e", "docker.io/library/a_b.c-d__e:latest", "a_b.c-d__e:latest"),
])
def test_normalisation(text, name, familiar):
    ref = parse(text)
    assert ref.name == name
    assert ref.familiar == familiar


def test_digest_reference():
    d = "sha256:" + "a" * 64
    ref = parse(f"ubuntu@{d}")
    assert ref.digest == d and ref.tag is None
    assert ref.name == f"docker.io/library/ubuntu@{d}"


@pytest.mark.parametrize("bad", [
    "Ubuntu", "a//b", "x:t1:t2", ":tag", "", "name@sha256:abc", "-rm", "a/", "/a",
    "host:5000/Repo", "x:" + "t" * 129, "ubuntu@sha256:../../x", "UPPER/case",
])
def test_invalid(bad):
    with pytest.raises(InvalidReference):
        parse(bad)


def test_uppercase_message_like_docker():
    with pytest.raises(InvalidReference, match="repository name must be lowercase"):
        parse("Ubuntu")
