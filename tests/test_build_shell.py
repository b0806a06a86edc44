"""Word expansion: BuildKit's lexer tables (envVarTest, wordsTest, ProcessWithMatches)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.builder.shell import ShellError, ShellLex
from lamina.errors import BuildError

DATA = Path(__file__).parent / "data" / "shell"
ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _env_var_cases():
    # Same reading rules as lex_test.go: "#" lines and blank lines are skipped, fields
    # are trimmed, U rows are for Unix, W rows for Windows.
    for number, line in enumerate((DATA / "envVarTest").read_text().splitlines(), 1):
        if line.startswith("#") or not line.strip():
            continue
        platform, source, expected = (f.strip() for f in line.strip().split("|"))
        assert platform in ("A", "U", "W"), f"line {number}"
        if platform != "W":
            yield pytest.param(source, expected, id=f"L{number}:{source}")


@pytest.mark.parametrize("source,expected", list(_env_var_cases()))
def test_env_var_table(source, expected):
    lex = ShellLex("\\")
    if expected == "error":
        with pytest.raises(ShellError):
            lex.process_word(source, ENV)
    else:
        assert lex.process_word(source, ENV) == expected


def _words_cases():
    env: dict[str, str] = {}
    for number, line in enumerate((DATA / "wordsTest").read_text().splitlines(), 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            key, _, value = line[3:].lstrip(" ").partition("=")
            env[key] = value
            continue
        source, expected = line.split("|")
        yield pytest.param(source.strip(), expected.lstrip(" ").split(","), dict(env), id=f"L{number}")


@pytest.mark.parametrize("source,expected,env", list(_words_cases()))
def test_words_table(source, expected, env):
    lex = ShellLex("\\")
    try:
        result = lex.process_words(source, env)
    except ShellError:
        result = ["error"]
    assert result == expected


# lex_test.go's TestProcessWithMatches: (input, env, expected or None for an error,
# matched names, unmatched names)
MATCHES = [
    ("x", {"DUMMY": "dummy"}, "x", set(), set()),
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x ", set(), {"UNUSED"}),
    ("x ${FOO}", {"FOO": "y"}, "x y", {"FOO"}, set()),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:-}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${FOO:-}", {}, "", set(), {"FOO"}),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  ", {"FOO", "BAR"}, {"BAZ"}),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, "", {"BAR"}, set()),
    ("${BAZ?ccc}", {"FOO": "xxx", "BAR": ""}, None, set(), {"BAZ"}),
    ("${FOO:?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx", {"FOO"}, set()),
    ("${BAR:?bbb}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${BAZ:?ccc}", {"FOO": "xxx", "BAR": ""}, None, set(), {"BAZ"}),
    ("${BAZ:?}", {"FOO": "xxx", "BAR": ""}, None, set(), {"BAZ"}),
    ("${FOO=aaa}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${FOO=:aaa}", {"FOO": "xxx", "BAR": ""}, None, set(), set()),
    ("${FOO=}", {}, None, set(), set()),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x", {"FOO"}, set()),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx", {"FOO"}, set()),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y", {"FOO"}, set()),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy", {"FOO", "BAR"}, set()),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy", {"FOO"}, set()),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y", {"FOO"}, set()),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy.", {"FOO"}, {"ABC"}),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a", {"FOO"}, set()),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy", {"FOO", "BAR"}, set()),
    ("${FOO:#}", {}, None, set(), set()),
    ("${FOO:##}", {}, None, set(), set()),
    ("${FOO:%}", {}, None, set(), set()),
    ("${FOO:%%}", {}, None, set(), set()),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
     "/foo.*/*.txt - /foo..*.txt", {"FOO", "NEEDLE"}, set()),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
     "/tmp/bar.txt - /bar.txt", {"FOO", "NEEDLE"}, set()),
    ("${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
     {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
     "/foo/b/c.txt - /foo/c.txt", {"FOO", "NEEDLE", "REPLACEMENT"}, set()),
    ("${FOO/$NEEDLE/$REPLACEMENT}", {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
     "https://google.de", {"FOO", "NEEDLE", "REPLACEMENT"}, set()),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt", {"FOO"}, set()),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy", {"FOO", "BAR"}, set()),
    ("${FOO//ww}", {"FOO": "xxyy"}, None, set(), set()),
    ("${FOO//}", {"FOO": "xxyy"}, None, set(), set()),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy", {"FOO"}, set()),
    ("${FOO///}", {}, "", set(), {"FOO"}),
]  # fmt: skip


@pytest.mark.parametrize("source,env,expected,matched,unmatched", MATCHES, ids=[m[0] for m in MATCHES])
def test_process_with_matches(source, env, expected, matched, unmatched):
    lex = ShellLex("\\")
    if expected is None:
        with pytest.raises(ShellError):
            lex.expand(source, env)
        return
    result = lex.expand(source, env)
    assert result.result == expected
    assert result.matched == matched
    assert result.unmatched == unmatched


def test_mandatory_env_vars():
    lex = ShellLex("\\")
    no_empty, no_unset = "${VAR:?message here$ARG}", "${VAR?message here$ARG}"
    assert lex.process_word(no_empty, {"VAR": "plain", "ARG": "x"}) == "plain"
    for env in ({"VAR": "", "ARG": "x"}, {"ARG": "x"}):
        with pytest.raises(ShellError, match="VAR: message herex"):
            lex.process_word(no_empty, env)
    assert lex.process_word(no_unset, {"VAR": "", "ARG": "x"}) == ""
    with pytest.raises(ShellError, match="VAR: message herex"):
        lex.process_word(no_unset, {"ARG": "x"})
    with pytest.raises(ShellError, match="VAR: is not allowed to be unset"):
        lex.process_word("${VAR?}", {})
    with pytest.raises(ShellError, match="VAR: is not allowed to be empty"):
        lex.process_word("${VAR:?}", {"VAR": ""})


def test_backtick_escape_token():
    lex = ShellLex("`")
    assert lex.process_word("a`$b", {"b": "x"}) == "a$b"
    assert lex.process_word("c:\\path\\$b", {"b": "x"}) == "c:\\path\\x"
    assert lex.process_word('"a`"b"', {}) == 'a"b'
    assert lex.process_words("a` b c", {}) == ["a b", "c"]


def test_error_messages_and_type():
    lex = ShellLex()
    with pytest.raises(ShellError) as info:
        lex.process_word("${}", {})
    assert str(info.value) == 'failed to process "${}": syntax error: bad substitution'
    assert isinstance(info.value, BuildError)
    assert str(info.value.at("Dockerfile", 7)).startswith("Dockerfile:7: failed to process")
    for word, message in [
        ("${x", "missing '}'"),
        ("${#x}", "unsupported modifier (x) in substitution"),
        ("${x:1:2}", "unsupported modifier (:1) in substitution"),
        ("${x^^}", "unsupported modifier (^) in substitution"),
        ("${x:#p}", "unsupported modifier (:#) in substitution"),
        ("'a", "matching single-quote"),
        ('"a', "matching double-quote"),
        ("${x#\\a}", "invalid escape '\\a'"),
        ("${x/a", "missing '/' in ${}"),
    ]:
        with pytest.raises(ShellError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")
                           .replace("{", r"\{").replace("}", r"\}").replace("^", r"\^").replace("\\a", r"\\a")):
            lex.process_word(word, {"x": "v"})


def test_raw_modes_used_for_heredoc_detection():
    lex = ShellLex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    assert lex.process_words('RUN <<"EOF" cat \\"x\\" $A ${B:-c}', {}) == [
        "RUN", '<<"EOF"', "cat", '\\"x\\"', "$A", "${B:-c}",
    ]
    assert ShellLex(skip_process_quotes=True).process_word("'$A'", {"A": "x"}) == "'x'"


def test_go_replace_all_semantics():
    # Go skips an empty match right after a match; Python's re.sub would not.
    lex = ShellLex()
    assert lex.process_word("${V//*/-}", {"V": "abc"}) == "-"  # re.sub gives "--"
    assert lex.process_word("${V///-}", {"V": "abc"}) == "-a-b-c-"
    assert lex.process_word("${V//b/<$0>}", {"V": "abc"}) == "a<>c"
    assert lex.process_word("${V//b/\\$\\$}", {"V": "abc"}) == "a\\$\\$c"


def test_deep_nesting_is_an_error_not_a_crash():
    word = "${a:-" * 5000 + "x" + "}" * 5000
    with pytest.raises(ShellError):
        ShellLex().process_word(word, {})


def test_unicode_spaces_split_words_like_go():
    lex = ShellLex()
    assert lex.process_words("a\u00a0b\u2003c\x1cd", {}) == ["a", "b", "c\x1cd"]
