"""Differential test: our parser against BuildKit's own (Go) parser.

The PyPI package `dockerfile` wraps BuildKit v0.12's frontend/dockerfile/parser.  Every
file of tests/data/dockerfiles/ is parsed by both and compared node by node: keyword,
ONBUILD trigger, flags, argument list, JSON form, original text, line range and heredoc
bodies.  Files under negative/ must fail in both.

What the binding cannot show is tested in test_build_parser.py instead: heredoc
`expand`/`chomp`, heredocs attached to ONBUILD, the `check` directive (newer than
v0.12), warnings, and our error messages and line numbers.  The Go *parser* accepts
unknown keywords (BuildKit's instruction layer rejects them later, as we do in the
parser), so a Go result containing one counts as a failure here.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lamina.builder.parser import INSTRUCTIONS, Node, parse
from lamina.errors import BuildError

dockerfile = pytest.importorskip("dockerfile")

DATA = Path(__file__).parent / "data" / "dockerfiles"
CORPUS = sorted(DATA.glob("*.Dockerfile"))
NEGATIVE = sorted((DATA / "negative").glob("*.Dockerfile"))


def read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:  # keep CRLF and BOM as written
        return f.read()


class Unrepresentable(Exception):
    """BuildKit produced a string that is not UTF-8 (it splits flags between bytes)."""


def go_parse(text: str) -> list[dict] | None:
    """BuildKit's AST as comparable dicts, or None when BuildKit would reject the file."""
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError:
        return None
    except UnicodeDecodeError:
        raise Unrepresentable from None
    if any((c.cmd or "").lower() not in INSTRUCTIONS for c in commands):
        return None  # unknown instruction: an error in BuildKit's instructions.Parse
    return [
        {
            "cmd": c.cmd.lower(),
            "sub": c.sub_cmd.lower() if c.sub_cmd else None,
            "json": c.json,
            "original": c.original,
            "lines": (c.start_line, c.end_line),
            "flags": tuple(c.flags),
            "value": tuple(c.value),
            "heredocs": tuple((h.name, h.file_descriptor, h.content) for h in c.heredocs),
        }
        for c in commands
    ]


def ours_as_go(node: Node) -> dict:
    original, heredocs = node.original, tuple((h.name, h.fd, h.content) for h in node.heredocs)
    sub, value = None, node.args
    if node.keyword == "onbuild" and node.inner is not None:
        # the binding reports the trigger's keyword and arguments, and drops its heredocs
        sub, value, heredocs = node.inner.keyword, node.inner.args, ()
        if node.inner.keyword == "onbuild":
            # the binding does not descend into a second ONBUILD
            value = ("",) if node.inner.inner is not None else ()
    elif node.heredocs:
        # the binding appends each body and terminator to the original text
        original += "".join("\n" + h.content + h.name for h in node.heredocs) + "\n"
    return {
        "cmd": node.keyword, "sub": sub, "json": node.json_form, "original": original,
        "lines": (node.start_line, node.end_line), "flags": node.flags, "value": value,
        "heredocs": heredocs,
    }  # fmt: skip


def our_parse(text: str) -> list[dict] | None:
    try:
        return [ours_as_go(n) for n in parse(text).nodes]
    except BuildError:
        return None


def test_corpus_is_big_enough():
    assert len(CORPUS) >= 40
    assert len(NEGATIVE) >= 10


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_same_ast_as_buildkit(path):
    text = read(path)
    expected = go_parse(text)
    assert expected is not None, "corpus files must be valid for BuildKit"
    assert our_parse(text) == expected


@pytest.mark.parametrize("path", NEGATIVE, ids=[p.stem for p in NEGATIVE])
def test_both_reject(path):
    text = read(path)
    assert go_parse(text) is None
    with pytest.raises(BuildError, match=r"^Dockerfile:\d+: "):
        parse(text)


@pytest.mark.parametrize("size,ok", [(65534, True), (65535, True), (65536, False), (70000, False)])
@pytest.mark.parametrize("ending", ["\n", "", "\r\n"])
def test_line_length_limit_matches(size, ok, ending):
    text = "FROM a\nRUN " + "x" * (size - 4) + ending
    if ending == "\r\n" and size == 65535:
        ok = False  # the \r counts: 65535 + \r\n does not fit the 64 KiB buffer
    assert (go_parse(text) is not None) is ok
    assert (our_parse(text) is not None) is ok
    if ok:
        assert our_parse(text) == go_parse(text)


# -- random mutations of the corpus, compared with BuildKit --------------------------

_PIECES = ["\\", "\\\n", "`", "\n", "\r\n", " ", "\t", "#", "# escape=`\n", "# escape=\\\n", '"', "'",
           "[", "]", '["a", "b"]', "--", "--mount=type=cache,target=/x ", "<<EOF", "<<-EOF", "\nEOF\n",
           "\tEOF\n", "$", "${A}", "=", "ENV ", "RUN ", "COPY ", "ONBUILD ", "FROM a\n", "é", "\u00a0",
           "\ufeff", ",", "{", "}", "<<'EOF'", "3<<EOF"]  # fmt: skip


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(text))
        op = rng.random()
        if op < 0.5:
            text = text[:pos] + rng.choice(_PIECES) + text[pos:]
        elif op < 0.8:
            text = text[:pos] + text[pos + rng.randint(1, 8) :]
        else:
            end = min(len(text), pos + rng.randint(1, 40))
            text = text[:pos] + text[pos:end] * 2 + text[end:]
    return text


def test_random_mutations_agree_with_buildkit():
    rng = random.Random(20240601)
    sources = [read(p) for p in CORPUS]
    mismatches = []
    for _ in range(1000):
        text = mutate(rng, rng.choice(sources))
        if "check=" in text or "\\u0000" in text:
            continue  # v0.12 predates the check directive; the binding cuts strings at NUL
        try:
            go = go_parse(text)
        except Unrepresentable:
            continue
        if go != our_parse(text):
            mismatches.append(text)
    assert mismatches == []
