"""The executor of Go's text/template (text/template/exec.go) over Python values.

Walks the parse tree with a dot and a variable stack; fields look up map keys or
GoStruct fields/methods; functions get their arguments checked against their Go
parameter types; errors carry Go's location and context:
`template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"`.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.gotemplate import nodes as N
from lamina.gotemplate.errors import TemplateExecError
from lamina.gotemplate.values import (
    MISSING, OMITTED, GoMap, GoStruct, StructDict, sort_keys, sprint_value, truth, type_name,
)
from lamina.quoting import go_quote

NO_FINAL = object()  # Go's missingVal: no value piped in from a previous command


class Func:
    """A template function: `params` are Go parameter kinds ("any", "string", "int",
    "[]string", "value"); `variadic` the kind of a trailing ...param."""

    def __init__(self, fn, params=(), variadic: str | None = None):
        self.fn, self.params, self.variadic = fn, tuple(params), variadic


class FuncError(Exception):
    """Raised by a function: reported as `error calling NAME: msg`."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class State:
    def __init__(self, text: str, trees: dict, funcs: Mapping[str, Func], name: str, missing_key: str,
                 escape=None):
        self.text, self.trees, self.funcs, self.name = text, trees, funcs, name
        self.tmpl_name = name
        self.missing_key = missing_key
        self.escape = escape
        self.out: list[str] = []
        self.vars: list[list] = []
        self.node = None
        self.depth = 0

    # ------------------------------------------------------------------ errors
    def errorf(self, msg: str):
        if self.node is None:
            raise TemplateExecError(f"template: {self.tmpl_name}: {msg}")
        pos = self.node.pos
        before = self.text[:pos]
        line = 1 + before.count("\n")
        col = len(before[before.rfind("\n") + 1:].encode("utf-8", "surrogateescape"))
        context = str(self.node)
        raise TemplateExecError(f"template: {self.name}:{line}:{col}: executing {go_quote(self.tmpl_name)} "
                                f"at <{context}>: {msg}")

    def at(self, node) -> None:
        self.node = node

    # ------------------------------------------------------------------ variables
    def push(self, name: str, value) -> None:
        self.vars.append([name, value])

    def set_var(self, name: str, value) -> None:
        for v in reversed(self.vars):
            if v[0] == name:
                v[1] = value
                return
        self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str):
        for v in reversed(self.vars):
            if v[0] == name:
                return v[1]
        self.errorf(f"undefined variable: {name}")

    # ------------------------------------------------------------------ walking
    def walk(self, dot, node) -> None:
        self.at(node)
        if isinstance(node, N.ActionNode):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, N.TextNode):
            self.out.append(node.text)
        elif isinstance(node, N.ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, (N.IfNode, N.WithNode)):
            mark = len(self.vars)
            val = self.eval_pipeline(dot, node.pipe)
            if truth(val):
                self.walk(val if isinstance(node, N.WithNode) else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
            del self.vars[mark:]
        elif isinstance(node, N.RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, N.TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, N.BreakNode):
            raise _Break
        elif isinstance(node, N.ContinueNode):
            raise _Continue
        else:
            self.errorf(f"unknown node: {node}")

    def walk_range(self, dot, r: N.RangeNode) -> None:
        val = self.eval_pipeline(dot, r.pipe)
        mark = len(self.vars)
        decl = r.pipe.decl

        def one(index, elem) -> bool:
            if decl:
                if r.pipe.is_assign:
                    self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
                    if len(decl) > 1:
                        self.set_var(decl[1].ident[0], elem)
                else:
                    self.vars[-1][1] = elem
                    if len(decl) > 1:
                        self.vars[-2][1] = index
            try:
                self.walk(elem, r.list)
            except _Continue:
                pass
            except _Break:
                return False
            finally:
                del self.vars[mark:]
            return True

        if isinstance(val, (list, tuple)):
            if val:
                for i, elem in enumerate(val):
                    if not one(i, elem):
                        break
                return
        elif isinstance(val, Mapping) and not isinstance(val, StructDict):  # a struct is no range
            if val:
                for k in sort_keys(val):
                    if not one(k, val[k]):
                        break
                return
        elif isinstance(val, int) and not isinstance(val, bool):
            if len(decl) > 1:
                self.errorf("can't use %d to iterate over more than one variable" % val)
            if val > 0:
                for i in range(val):
                    if not one(i, i):
                        break
                return
        elif val is MISSING or val is None:
            pass
        else:
            self.errorf(f"range can't iterate over {sprint_value(val)}")
        if r.else_list is not None:
            self.walk(dot, r.else_list)

    def walk_template(self, dot, t: N.TemplateNode) -> None:
        self.at(t)
        tree = self.trees.get(t.name)
        if tree is None:
            self.errorf(f"template {go_quote(t.name)} not defined")
        if self.depth >= 10000:
            self.errorf("exceeded maximum template depth (100000)")
        new_dot = self.eval_pipeline(dot, t.pipe) if t.pipe is not None else MISSING
        saved = (self.vars, self.tmpl_name)
        self.vars, self.tmpl_name = [["$", new_dot]], t.name
        self.depth += 1
        try:
            self.walk(new_dot, tree)
        finally:
            self.depth -= 1
            self.vars, self.tmpl_name = saved

    def print_value(self, node, val) -> None:
        self.at(node)
        if isinstance(val, Func) or callable(val) and not isinstance(val, GoStruct):
            self.errorf(f"can't print {node} of type func")
        text = "<no value>" if val is MISSING else sprint_value(val)
        self.out.append(self.escape(text) if self.escape else text)

    # ------------------------------------------------------------------ evaluation
    def eval_pipeline(self, dot, pipe: N.PipeNode):
        if pipe is None:
            return MISSING
        self.at(pipe)
        value = NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.push(var.ident[0], value)
        return value

    def not_a_function(self, args, final) -> None:
        if (args is not None and len(args) > 1) or final is not NO_FINAL:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot, cmd: N.CommandNode, final):
        first = cmd.args[0]
        if isinstance(first, N.FieldNode):
            self.at(first)
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if isinstance(first, N.ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, N.IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, N.PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, N.VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, N.BoolNode):
            return first.value
        if isinstance(first, N.DotNode):
            return dot
        if isinstance(first, N.NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, N.NumberNode):
            return first.value
        if isinstance(first, N.StringNode):
            return first.text
        self.errorf(f"can't evaluate command {first}")

    def eval_chain(self, dot, chain: N.ChainNode, args, final):
        self.at(chain)
        if isinstance(chain.node, N.NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "any", chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable(self, dot, var: N.VariableNode, args, final):
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, ident, args, final):
        for name in ident[:-1]:
            receiver = self.eval_field(dot, name, node, None, NO_FINAL, receiver)
        return self.eval_field(dot, ident[-1], node, args, final, receiver)

    def eval_field(self, dot, name: str, node, args, final, receiver):
        if receiver is MISSING:
            if self.missing_key == "error":
                self.errorf(f"nil data; no entry for key {go_quote(name)}")
            return MISSING
        has_args = (args is not None and len(args) > 1) or final is not NO_FINAL
        if isinstance(receiver, GoStruct):
            if name in receiver.methods:
                return self.eval_call(dot, receiver.methods[name], False, node, name, args, final)
            if name in receiver.fields:
                if has_args:
                    if receiver.fields_are_methods:
                        given = (len(args) - 1 if args else 0) + (final is not NO_FINAL)
                        self.errorf(f"wrong number of args for {name}: want 0 got {given}")
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
        elif isinstance(receiver, Mapping):
            methods = getattr(receiver, "methods", None)
            if methods and name in methods:
                return self.eval_call(dot, methods[name], False, node, name, args, final)
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            key = receiver.field_key(name) if isinstance(receiver, StructDict) else name
            if key is not None and key in receiver:
                value = receiver[key]
                return None if value is OMITTED else value
            if isinstance(receiver, StructDict) and receiver.type_name:  # a typed struct: no such field
                self.errorf(f"can't evaluate field {name} in type {receiver.type_name}")
            if self.missing_key == "error" and not isinstance(receiver, GoMap):
                self.errorf(f"map has no entry for key {go_quote(name)}")
            return MISSING
        elif receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        # missingkey=error is docker's pass over decoded JSON, where every value is an interface{}
        typ = "interface {}" if self.missing_key == "error" else type_name(receiver)
        self.errorf(f"can't evaluate field {name} in type {typ}")

    def eval_function(self, dot, ident: N.IdentifierNode, cmd, args, final):
        self.at(ident)
        fn = self.funcs.get(ident.name)
        if fn is None:
            self.errorf(f"{go_quote(ident.name)} is not a defined function")
        return self.eval_call(dot, fn, True, cmd, ident.name, args, final)

    def eval_call(self, dot, fn, is_builtin: bool, node, name: str, args, final):
        if not isinstance(fn, Func):
            fn = Func(fn)
        args = list(args[1:]) if args is not None else []
        num_in = len(args) + (final is not NO_FINAL)
        fixed = len(fn.params)
        if fn.variadic is not None:
            if num_in < fixed:
                self.errorf(f"wrong number of args for {name}: want at least {fixed} got {len(args)}")
        elif num_in != fixed:
            self.errorf(f"wrong number of args for {name}: want {fixed} got {num_in}")
        if is_builtin and name in ("and", "or"):
            v = MISSING
            for arg in args:
                v = self.eval_arg(dot, "value", arg)
                if truth(v) == (name == "or"):
                    return v
            if final is not NO_FINAL:
                v = final
            return v
        values = [str(args[0])] if is_builtin and name == "call" and args else []  # call names its operand
        for i, arg in enumerate(args):
            kind = fn.params[i] if i < fixed else fn.variadic
            values.append(self.eval_arg(dot, kind, arg))
        if final is not NO_FINAL:
            kind = fn.params[-1] if fn.variadic is None else (fn.variadic if num_in > fixed else fn.params[-1])
            values.append(self.validate(final, kind))
        try:
            return fn.fn(*values)
        except FuncError as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")

    def validate(self, value, kind: str):
        """Go's validateType: an argument value against the parameter's type."""
        if value is MISSING:
            if kind in ("any", "[]string"):
                return None
            if kind == "value":
                return MISSING
            self.errorf(f"invalid value; expected {kind}")
        if kind in ("any", "value"):
            return value
        ok = {"string": lambda v: isinstance(v, str),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "bool": lambda v: isinstance(v, bool),
              "[]string": lambda v: v is None or isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v)}
        if not ok[kind](value):
            got = "[]interface {}" if kind == "[]string" and isinstance(value, (list, tuple)) else type_name(value)
            self.errorf(f"wrong type for value; expected {kind}; got {got}")
        return value

    def eval_arg(self, dot, kind: str, n):
        self.at(n)
        if isinstance(n, N.DotNode):
            return self.validate(dot, kind)
        if isinstance(n, N.NilNode):
            if kind in ("any", "[]string", "value"):
                return None
            self.errorf(f"cannot assign nil to {'reflect.Value' if kind == 'value' else kind}")
        if isinstance(n, N.FieldNode):
            return self.validate(self.eval_field_chain(dot, dot, n, n.ident, [n], NO_FINAL), kind)
        if isinstance(n, N.VariableNode):
            return self.validate(self.eval_variable(dot, n, None, NO_FINAL), kind)
        if isinstance(n, N.PipeNode):
            return self.validate(self.eval_pipeline(dot, n), kind)
        if isinstance(n, N.IdentifierNode):
            return self.validate(self.eval_function(dot, n, n, None, NO_FINAL), kind)
        if isinstance(n, N.ChainNode):
            return self.validate(self.eval_chain(dot, n, None, NO_FINAL), kind)
        if kind in ("any", "value"):
            if isinstance(n, N.BoolNode):
                return n.value
            if isinstance(n, N.NumberNode):
                return n.value
            if isinstance(n, N.StringNode):
                return n.text
        elif kind == "string" and isinstance(n, N.StringNode):
            return n.text
        elif kind == "int" and isinstance(n, N.NumberNode) and isinstance(n.value, int):
            return n.value
        elif kind == "bool" and isinstance(n, N.BoolNode):
            return n.value
        if kind not in ("string", "int", "bool"):
            self.errorf(f"can't handle {n} for arg of type {kind}")
        expected = {"string": "string", "int": "integer", "bool": "bool"}[kind]
        self.errorf(f"expected {expected}; found {n}")
