""".dockerignore reading and matching (tables ported from moby/patternmatcher)."""

from __future__ import annotations

import pytest

from lamina.builder.dockerignore import IgnoreMatcher, find_ignore_file, go_clean, read_ignore_file
from lamina.errors import BuildError


def test_read_ignore_file_like_ignorefile_readall():
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    assert read_ignore_file(content) == ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!"]


def test_read_ignore_file_normalises():
    text = "\ufeff*.md\r\n  # not a comment, a pattern\n./a/../b//c/\n/\n.\n  spaced  \n"
    assert read_ignore_file(text) == ["*.md", "# not a comment, a pattern", "b/c", "/", ".", "spaced"]


def test_read_ignore_file_line_limit():
    with pytest.raises(BuildError, match=r"^\.dockerignore:2: "):
        read_ignore_file("a\n" + "x" * 70000)


@pytest.mark.parametrize(
    "path,clean",
    [("", "."), ("a//b/./c/", "a/b/c"), ("/../a", "/a"), ("../../a", "../../a"), ("a/../..", ".."), ("//", "/")],
)
def test_go_clean(path, clean):
    assert go_clean(path) == clean


# patternmatcher_test.go TestMatches: (pattern, path, matches).  Paths with a trailing
# slash are cleaned by our API; the ones that are just "/" have no equivalent.
SINGLE = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**/", "file/", True),
    ("**", "dir/file", True), ("**/", "dir/file", True), ("**", "dir/file/", True), ("**/", "dir/file/", True),
    ("**/**", "dir/file", True), ("**/**", "dir/file/", True), ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True), ("dir/**", "dir/dir2/file", True), ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True), ("**/dir", "dir/file", True), ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True), ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True), ("**file", "file", True), ("**file", "dir/file", True),
    ("**/file", "dir/file", True), ("**file", "dir/dir/file", True), ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True), ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True), ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True), ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False), ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "a/dir/file.txt", True), ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False), ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False), ("a[^b-d]e", "aze", True),
    (".*", ".foo", True), (".*", "foo", False), ("abc.def", "abcdef", False), ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False), ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/foo/bar", True), ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False), ("abc/**", "abc/def", True), ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False), ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False), ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\\\", "a\\", True), ("a\\*b", "a*b", True),
]  # fmt: skip

MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["*"], "fileutils.go", True), (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True), (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False), (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.go", "!fileutils.go"], "fileutils.go", False), (["*.go"], ".", False), ([], "any/path/there", False),
]  # fmt: skip

# Go's filepath.Match table as patternmatcher's TestMatch runs it (None = bad pattern)
GLOB = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*", "ab/c", True), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False), ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False), ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False), ("a?b", "a/b", False),
    ("a*b", "a/b", False), ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("[\\-x]", "-", True), ("[\\-x]", "a", False),
    ("[]a]", "]", None), ("[-]", "-", None), ("[x-]", "x", None), ("[x-]", "-", None), ("[x-]", "z", None),
    ("[-x]", "x", None), ("[-x]", "-", None), ("[-x]", "a", None), ("\\", "a", None), ("[a-b-c]", "a", None),
    ("[", "a", None), ("[^", "a", None), ("[^bc", "a", None), ("a[", "a", None), ("a[", "ab", None), ("*x", "xxx", True),
]  # fmt: skip


@pytest.mark.parametrize("pattern,path,expected", SINGLE)
def test_single_pattern(pattern, path, expected):
    assert IgnoreMatcher([pattern]).matches(path) is expected


@pytest.mark.parametrize("patterns,path,expected", MULTI)
def test_pattern_lists(patterns, path, expected):
    assert IgnoreMatcher(patterns).matches(path) is expected


@pytest.mark.parametrize("pattern,path,expected", GLOB)
def test_filepath_match_table(pattern, path, expected):
    if expected is None:
        with pytest.raises(BuildError, match="syntax error in pattern"):
            IgnoreMatcher([pattern])
    else:
        assert IgnoreMatcher([pattern]).matches(path) is expected


def test_pattern_kinds():
    kinds = {p.text: p.kind for p in IgnoreMatcher(["*", "**", "dir/**", "**/dir", "**/dir2/*", "abc", "a[b]c"]).patterns}
    assert kinds == {"*": "regex", "**": "suffix", "dir/**": "prefix", "**/dir": "suffix", "**/dir2/*": "regex",
                     "abc": "exact", "a[b]c": "regex"}  # fmt: skip


def test_single_exclamation_is_an_error():
    with pytest.raises(BuildError, match='illegal exclusion pattern: "!"'):
        IgnoreMatcher(read_ignore_file("a\n!\n"))


def test_whitespace_and_exceptions_flag():
    matcher = IgnoreMatcher(["docs", "  !docs/README.md  ", ""])
    assert matcher.has_exceptions and len(matcher.patterns) == 2
    assert not IgnoreMatcher(["a"]).has_exceptions


def test_last_match_wins_and_root_relative():
    matcher = IgnoreMatcher(read_ignore_file("*.md\n!README*.md\nREADME-secret.md\n/build\n"))
    assert matcher.matches("CHANGES.md") and not matcher.matches("README.md")
    assert matcher.matches("README-secret.md")
    assert not matcher.matches("sub/CHANGES.md")  # *.md is anchored at the root
    assert matcher.matches("build/x/y") and not matcher.matches("src/build")
    assert matcher.matches("/CHANGES.md") and matcher.matches("./CHANGES.md")
    assert not matcher.matches(".") and not matcher.matches("")


def test_must_descend_for_exceptions_below_excluded_dirs():
    matcher = IgnoreMatcher(read_ignore_file("node_modules\nvendor\n!vendor/keep/**\ndocs\n!docs/*/index.md\n!**/KEEP\n"))
    assert matcher.must_descend("src")  # not excluded at all
    assert matcher.must_descend("vendor") and matcher.must_descend("vendor/keep")
    assert matcher.matches("vendor/other/x") and not matcher.matches("vendor/keep/x/y")
    assert matcher.must_descend("docs") and matcher.must_descend("docs/guide")
    assert not matcher.matches("docs/guide/index.md") and matcher.matches("docs/guide/other.md")
    assert matcher.must_descend("node_modules")  # `!**/KEEP` may re-include something anywhere
    no_wildcard_exception = IgnoreMatcher(["node_modules", "vendor", "!vendor/keep"])
    assert not no_wildcard_exception.must_descend("node_modules")
    assert not no_wildcard_exception.must_descend("vendor/other")
    assert no_wildcard_exception.must_descend("vendor")
    assert not IgnoreMatcher(["tmp"]).must_descend("tmp")


def test_character_class_edge_cases():
    assert IgnoreMatcher(["[[]x"]).matches("[x")  # the documented way to match a literal [
    assert IgnoreMatcher(["a[!b]c"]).matches("a!c")  # ! is literal in Go globs
    assert IgnoreMatcher(["a^b"]).matches("a^b")  # no wildcard: compared as text


def test_find_ignore_file(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dockerfile = tmp_path / "build" / "app.Dockerfile"
    dockerfile.parent.mkdir()
    dockerfile.write_text("FROM x\n")
    assert find_ignore_file(str(ctx), str(dockerfile)) is None
    (ctx / ".dockerignore").write_text("a\n")
    assert find_ignore_file(str(ctx), str(dockerfile)) == str(ctx / ".dockerignore")
    specific = tmp_path / "build" / "app.Dockerfile.dockerignore"
    specific.write_text("b\n")
    assert find_ignore_file(str(ctx), str(dockerfile)) == str(specific)
    assert find_ignore_file(str(ctx), "-") == str(ctx / ".dockerignore")
    assert find_ignore_file(str(ctx)) == str(ctx / ".dockerignore")
