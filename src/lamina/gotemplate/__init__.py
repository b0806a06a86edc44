"""Go's text/template, as the docker CLI uses it for `--format` and `inspect -f`.

    tmpl = gotemplate.parse("{{.Name}}: {{json .Labels}}")
    text = tmpl.execute(data)

Modelled on Go's text/template/parse and exec (lexer, parser, executor in their
own modules); the docker CLI's added functions are in funcs.DOCKER.  Errors are
TemplateParseError / TemplateExecError with Go's messages.
"""

from __future__ import annotations

from lamina.gotemplate.errors import TemplateError, TemplateExecError, TemplateParseError
from lamina.gotemplate.values import MISSING, GoMap, GoStruct

__all__ = ["parse", "Template", "TemplateError", "TemplateExecError", "TemplateParseError", "GoMap", "GoStruct",
           "MISSING"]


class Template:
    def __init__(self, text: str, name: str = "", funcs=None):
        from lamina.gotemplate.funcs import BUILTINS, DOCKER
        from lamina.gotemplate.parser import parse as parse_trees

        self.text, self.name = text, name
        self.funcs = {**BUILTINS, **DOCKER, **(funcs or {})}
        self.trees = parse_trees(text, self.funcs, name)

    def execute(self, data, missing_key: str = "default", escape=None, funcs=None) -> str:
        """The output for `data`.  missing_key="error" makes an absent key of a
        plain dict an error (docker inspect's fallback); `escape` is applied to
        each printed value; `funcs` replaces functions by name (docker's header
        functions for `table`)."""
        return self._run(data, missing_key, escape, funcs, partial=False)

    def partial_execute(self, data, missing_key: str = "default", escape=None, funcs=None) -> str:
        """Like execute, but an error ends the output instead of raising (docker's
        table header ignores errors)."""
        return self._run(data, missing_key, escape, funcs, partial=True)

    def _run(self, data, missing_key: str, escape, funcs, partial: bool) -> str:
        from lamina.gotemplate.execute import State

        state = State(self.text, self.trees, {**self.funcs, **(funcs or {})}, self.name, missing_key, escape)
        state.push("$", data)
        try:
            state.walk(data, self.trees[self.name])
        except RecursionError:
            if not partial:
                raise TemplateExecError(f"template: {self.name}: exceeded maximum template depth (100000)") from None
        except TemplateError:
            if not partial:
                raise
        return "".join(state.out)


def parse(text: str, name: str = "", funcs=None) -> Template:
    """Parse `text` (Go's template.New(name).Funcs(funcs).Parse(text)); TemplateParseError if invalid."""
    return Template(text, name, funcs)
