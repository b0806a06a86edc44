"""Parser behaviour with explicit expectations (the differential test covers the AST)."""

from __future__ import annotations

import pytest

from lamina.builder.parser import CheckOptions, Heredoc, detect_syntax, parse, parse_check, parse_heredoc
from lamina.errors import BuildError


def nodes(text: str):
    return parse(text).nodes


def error_of(text: str, filename: str = "Dockerfile") -> str:
    with pytest.raises(BuildError) as info:
        parse(text, filename)
    return str(info.value)


# -- nodes, lines, original text --------------------------------------------------------


def test_node_fields_and_line_ranges():
    (frm, run, cmd) = nodes("FROM alpine AS b\n\nRUN --mount=type=cache,target=/x \\\n  echo hi\nCMD [\"a\", \"b\"]\n")
    assert (frm.keyword, frm.args, frm.start_line, frm.end_line) == ("from", ("alpine", "AS", "b"), 1, 1)
    assert run.flags == ("--mount=type=cache,target=/x",)
    assert run.args == ("echo hi",) and run.rest == "echo hi"
    assert run.original == "RUN --mount=type=cache,target=/x   echo hi"
    assert (run.start_line, run.end_line) == (3, 4)
    assert cmd.json_form and cmd.args == ("a", "b") and cmd.rest == '["a", "b"]'


def test_keywords_are_case_insensitive_and_original_keeps_case():
    (frm, run) = nodes("from a\nRuN b\n")
    assert (frm.keyword, run.keyword) == ("from", "run")
    assert run.original == "RuN b"


def test_original_is_left_trimmed_only():
    (node,) = nodes("   RUN a   \n")
    assert node.original == "RUN a   " and node.args == ("a",)


def test_comments_and_hash_inside_instructions():
    (node,) = nodes("# c\n  # indented\nRUN echo a # b\n")
    assert node.args == ("echo a # b",) and node.start_line == 3


# -- continuation -----------------------------------------------------------------------


def test_continuation_keeps_indentation_and_drops_comments_and_blank_lines():
    result = parse("RUN a \\\n# comment\n\n    # indented comment\n  b \\  \n\tc\n")
    (node,) = result.nodes
    assert node.args == ("a   b \tc",)
    assert (node.start_line, node.end_line) == (1, 6)
    assert [w.rule for w in result.warnings] == ["NoEmptyContinuation"]
    assert result.warnings[0].message == "Empty continuation line found in: RUN a   b \tc"
    assert result.warnings[0].line == 1


def test_escaped_escape_does_not_continue():
    (a, b) = nodes("RUN echo a\\\\\nRUN b\n")
    assert a.args == ("echo a\\\\",) and b.args == ("b",)


def test_continuation_at_eof():
    (node,) = nodes("RUN echo a \\")
    assert node.args == ("echo a",) and node.original == "RUN echo a "


def test_backtick_escape_directive():
    result = parse("# escape=`\nRUN dir c:\\ `\n  /s\n")
    assert result.escape == "`"
    assert result.nodes[0].args == ("dir c:\\   /s",)


# -- line endings, BOM, limits ----------------------------------------------------------


def test_crlf_and_bom():
    (a, b) = nodes("\ufeffFROM x\r\nRUN a \\\r\n  b\r\n")
    assert a.args == ("x",) and a.original == "FROM x"
    assert b.args == ("a   b",)


def test_bom_only_on_first_line():
    assert error_of("FROM a\n\ufeffRUN b\n") == "Dockerfile:2: unknown instruction: \ufeffRUN"


def test_line_limit():
    ok = "FROM a\nRUN " + "x" * (65535 - 4) + "\n"
    assert len(nodes(ok)) == 2
    assert error_of(ok.replace("RUN ", "RUN x")) == (
        "Dockerfile:2: dockerfile line greater than max allowed size of 65535"
    )
    # the lines before the long one are still parsed, and their errors come first
    assert error_of("FROOM a\nRUN " + "x" * 70000) == "Dockerfile:1: unknown instruction: FROOM"
    assert error_of("# only comments\n" + "x" * 70000) == "Dockerfile:1: file with no instructions"


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "Dockerfile:1: the Dockerfile cannot be empty"),
        ("# c\n\n# d\n", "Dockerfile:3: file with no instructions"),
        ("\n\n", "Dockerfile:2: file with no instructions"),
        ("FROM a\nRUN b\nFOOBAR x\n", "Dockerfile:3: unknown instruction: FOOBAR"),
        ("FROM a\nfooBar x\n", "Dockerfile:2: unknown instruction: fooBar"),
        ("FROM a\nCMD [\"a\", [\"b\"]]\n", "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"),
        ("FROM a\nENV PATH\n", "Dockerfile:2: ENV must have two arguments"),
        ("FROM a\nLABEL a=b c\n", 'Dockerfile:2: Syntax error - can\'t find = in "c". Must be of the form: name=value'),
        ("FROM a\nRUN <<EOF\nbody\n", "Dockerfile:2: unterminated heredoc"),
        ("# escape=\\\n# escape=`\nFROM a\n", "Dockerfile:2: only one escape parser directive can be used"),
        ("# escape=x\nFROM a\n", "Dockerfile:1: invalid escape token 'x' does not match ` or \\"),
        ("# check=bogus\nFROM a\n", 'Dockerfile:1: invalid check option "bogus"'),
    ],
)
def test_errors_name_file_and_line(text, message):
    assert error_of(text) == message


def test_error_uses_given_filename():
    assert error_of("FROM a\nNOPE\n", "app.Dockerfile").startswith("app.Dockerfile:2: ")


# -- JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rest",
    ["['a']", '["a"', '[ "a", "b ]', "[1e999]", "[NaN]", '[ "a" "b" ]', '["a",]', "{\"a\": 1}"],
)
def test_invalid_json_falls_back_to_shell_form(rest):
    (node,) = nodes(f"CMD {rest}\n")
    assert not node.json_form and node.args == (rest,)


def test_json_details():
    assert nodes('CMD ["a"] trailing\n')[0].args == ("a",)  # like Go's json.Decoder
    assert nodes('CMD ["\\ud800"]\n')[0].args == ("\ufffd",)  # lone surrogate
    assert nodes("CMD []\n")[0].json_form
    assert nodes('COPY ["a b", "/c"]\n')[0].args == ("a b", "/c")
    assert nodes("COPY a   b\tc\n")[0].args == ("a", "b", "c")


# -- heredocs ---------------------------------------------------------------------------


def test_heredoc_fields():
    text = "RUN <<EOF <<-'TAB' 3<<E\"O\"F cat\n$x\nEOF\n\tA\n\tTAB\nb\nEOF\nRUN next\n"
    (run, nxt) = nodes(text)
    assert run.heredocs == (
        Heredoc("EOF", "$x\n", expand=True, chomp=False, fd=0),
        Heredoc("TAB", "\tA\n", expand=False, chomp=True, fd=0),
        Heredoc("EOF", "b\n", expand=False, chomp=False, fd=3),
    )
    assert run.heredocs[1].body == "A\n"
    assert (run.start_line, run.end_line, nxt.start_line) == (1, 7, 8)
    assert run.original == "RUN <<EOF <<-'TAB' 3<<E\"O\"F cat"


def test_heredoc_bodies_are_not_comment_stripped_or_joined():
    (node,) = nodes("RUN <<EOF\n# comment \\\n\n  x\\\nEOF\n")
    assert node.heredocs[0].content == "# comment \\\n\n  x\\\n"


def test_quoted_or_escaped_heredoc_markers_are_not_heredocs():
    for text in ['RUN cat "<<EOF"\n', "RUN cat '<<EOF'\n", "RUN cat \\<<EOF\n", 'RUN ["<<EOF"]\n']:
        assert nodes(text)[0].heredocs == ()


def test_heredoc_in_onbuild_is_attached_to_both_nodes():
    (node,) = nodes("ONBUILD COPY <<A /a\nbody\nA\n")
    assert node.heredocs == node.inner.heredocs == (Heredoc("A", "body\n", True, False, 0),)
    assert node.end_line == 3


def test_heredoc_only_for_run_copy_add():
    (node,) = nodes("CMD <<EOF\n")
    assert node.heredocs == ()
    assert error_of("CMD <<EOF\nEOF\n") == "Dockerfile:2: unknown instruction: EOF"


def test_parse_heredoc_word():
    assert parse_heredoc("<<-EOF") == Heredoc("EOF", "", True, True, 0)
    assert parse_heredoc("12<<'X'") == Heredoc("X", "", False, False, 12)
    for word in ("<<", "<<a<b", "x<<EOF", "<<'a b' c"):
        assert parse_heredoc(word) is None


# -- directives -------------------------------------------------------------------------


def test_directives_recorded():
    result = parse("# syntax = docker/dockerfile:1.7 extra\n#ESCAPE=`\n# check=skip=JSONArgsRecommended,StageNameCasing;error=true\nFROM a\n")
    assert [(d.name, d.value, d.line) for d in result.directives] == [
        ("syntax", "docker/dockerfile:1.7 extra", 1),
        ("escape", "`", 2),
        ("check", "skip=JSONArgsRecommended,StageNameCasing;error=true", 3),
    ]
    assert result.syntax == "docker/dockerfile:1.7"
    assert result.directive("escape") == "`" and result.escape == "`"
    assert result.check == CheckOptions(skip=frozenset({"JSONArgsRecommended", "StageNameCasing"}), error=True)


@pytest.mark.parametrize(
    "text",
    [
        "FROM a\n# escape=`\nRUN b\\\n c\n",  # after an instruction
        "# comment\n# escape=`\nRUN b\\\n c\n",  # after a plain comment
        "\n# escape=`\nRUN b\\\n c\n",  # after a blank line
        "#!/bin/sh\n# escape=`\nRUN b\\\n c\n",  # after a shebang
    ],
)
def test_directives_only_in_leading_block(text):
    result = parse(text)
    assert result.escape == "\\" and result.directive("escape") is None
    assert result.nodes[-1].args == ("b c",)


def test_check_directive_lets_later_directives_apply():
    # newer BuildKit knows `check`, so it does not end the directive block
    result = parse("# check=skip=all\n# escape=`\nRUN a`\n b\n")
    assert result.check.skip_all and result.nodes[0].args == ("a b",)


def test_parse_check_forms():
    assert parse_check("") == CheckOptions()
    assert parse_check("skip=all;experimental=all") == CheckOptions(skip_all=True, experimental_all=True)
    assert parse_check(" error = 0 ") == CheckOptions(error=False)
    for bad in ("error=maybe", "nope=1", "skip"):
        with pytest.raises(ValueError):
            parse_check(bad)


def test_detect_syntax_forms():
    assert detect_syntax("#!/bin/x\n# syntax=a/b:1\nFROM x\n") == "a/b:1"
    assert detect_syntax("// syntax = c/d\nFROM x\n") == "c/d"
    assert detect_syntax('{"syntax": "e/f"}') == "e/f"
    assert detect_syntax("FROM x\n# syntax=late\n") is None
    assert parse("#!/bin/x\n# syntax=a/b:1\nFROM x\n").syntax == "a/b:1"


# -- flags, ONBUILD ---------------------------------------------------------------------


def test_flags_extraction():
    (a, b, c, d) = nodes('RUN --x="a b" --y=\'c\'d -- --z w\nRUN -- a\nRUN --a --\nCOPY --from=x -x y\n')
    assert a.flags == ("--x=a b", "--y=cd") and a.args == ("--z w",)
    assert b.flags == () and b.args == ("a",)
    assert c.flags == ("--a",) and c.args == ()
    assert d.flags == ("--from=x",) and d.args == ("-x", "y")


def test_onbuild_nests_the_trigger():
    (node,) = nodes("ONBUILD --o=1 RUN --mount=type=tmpfs,target=/t [\"echo\", \"x\"]\n")
    assert node.flags == ("--o=1",)
    assert node.args == ("RUN", "echo", "x") and node.json_form
    inner = node.inner
    assert inner.keyword == "run" and inner.flags == ("--mount=type=tmpfs,target=/t",)
    assert inner.args == ("echo", "x") and inner.original == 'RUN --mount=type=tmpfs,target=/t ["echo", "x"]'
    assert (inner.start_line, inner.end_line) == (1, 1)


def test_onbuild_with_unknown_trigger_is_not_a_parse_error():
    (node,) = nodes("ONBUILD FROBNICATE x\n")
    assert node.inner.keyword == "frobnicate" and node.inner.args == ("",)


def test_healthcheck_and_env_shapes():
    (hc, none, env, legacy) = nodes("HEALTHCHECK --interval=5s CMD [\"a\"]\nHEALTHCHECK NONE\nENV a=1 b=\"2 3\"\nENV k v w\n")
    assert hc.args == ("CMD", "a") and hc.json_form and hc.flags == ("--interval=5s",)
    assert none.args == ("NONE",)
    assert env.args == ("a", "1", "b", '"2 3"')
    assert legacy.args == ("k", "v w")
