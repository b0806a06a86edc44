"""Fuzz: random mutations of the corpus never escape as anything but BuildError.

hypothesis is not available, so this is a seeded loop over mutated corpus files and
random fragments, bounded in time.  Every stage of the frontend is exercised: parsing,
typed instructions, word expansion of the raw words and .dockerignore matching.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from lamina.builder.dockerignore import IgnoreMatcher, read_ignore_file
from lamina.builder.instructions import parse_mount, parse_stages
from lamina.builder.parser import parse
from lamina.builder.shell import ShellLex
from lamina.errors import BuildError

DATA = Path(__file__).parent / "data"
PIECES = ["\\", "\\\n", "`", "\n", "\r", "\r\n", " ", "\t", "#", "# escape=`\n", "# check=skip=all\n", '"', "'",
          "[", "]", '["a"]', "[1]", "--", "--mount=", "type=cache,", "--x", "<<EOF", "<<-'E'", "\nEOF\n", "$", "${",
          "${A:-", "${A#", "${A/", "}", ":", "=", "FROM a\n", "ONBUILD ", "HEALTHCHECK --interval=", "ms", "é",
          "\u00a0", "\ufeff", "\x00", ",", "**", "!", "[a-", "\\x"]  # fmt: skip


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 6)):
        pos = rng.randint(0, len(text))
        if rng.random() < 0.6:
            text = text[:pos] + rng.choice(PIECES) + text[pos:]
        else:
            text = text[:pos] + text[pos + rng.randint(1, 12) :]
    return text


def exercise(text: str) -> None:
    try:
        result = parse(text)
        stages, global_args = parse_stages(result)
    except BuildError:
        return
    lex = ShellLex(result.escape)
    env = {"A": "a b", "B": "", "PWD": "/"}
    for node in result.nodes:
        for word in node.args + node.flags:
            try:
                lex.process_word(word, env)
                lex.process_words(word, env)
            except BuildError:
                pass
        for flag in node.flags:
            if flag.startswith("--mount="):
                try:
                    parse_mount(flag[8:], lambda v: lex.process_word(v, env))
                except BuildError:
                    pass
    try:
        IgnoreMatcher(read_ignore_file(text)).matches("a/b/c.md")
    except BuildError:
        pass


def test_fuzz_only_build_errors():
    rng = random.Random(7)
    sources = [p.read_text() for p in sorted((DATA / "dockerfiles").rglob("*.Dockerfile"))]
    deadline = time.monotonic() + 3.0
    runs = 0
    while time.monotonic() < deadline:
        exercise(mutate(rng, rng.choice(sources)))
        exercise("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30))))
        runs += 2
    assert runs > 200
