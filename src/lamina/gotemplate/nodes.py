"""Parse-tree nodes of a Go template (text/template/parse/node.go).

`str(node)` gives Go's node String(), which execution errors quote as `<...>`."""

from __future__ import annotations


class Node:
    pos = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self})"


class ListNode(Node):
    def __init__(self, pos: int):
        self.pos, self.nodes = pos, []

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class TextNode(Node):
    def __init__(self, pos: int, text: str):
        self.pos, self.text = pos, text

    def __str__(self) -> str:
        from lamina.quoting import go_quote

        return go_quote(self.text)


class PipeNode(Node):
    def __init__(self, pos: int, line: int):
        self.pos, self.line = pos, line
        self.decl: list[VariableNode] = []
        self.is_assign = False
        self.cmds: list[CommandNode] = []

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class ActionNode(Node):
    def __init__(self, pos: int, line: int, pipe: PipeNode):
        self.pos, self.line, self.pipe = pos, line, pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class CommandNode(Node):
    def __init__(self, pos: int):
        self.pos, self.args = pos, []

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


class IdentifierNode(Node):
    def __init__(self, pos: int, name: str):
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class VariableNode(Node):
    """`$x.A.B`: ident[0] is the variable, the rest a field chain."""

    def __init__(self, pos: int, text: str):
        self.pos, self.ident = pos, text.split(".")

    def __str__(self) -> str:
        return ".".join(self.ident)


class FieldNode(Node):
    def __init__(self, pos: int, text: str):
        self.pos, self.ident = pos, text[1:].split(".")

    def __str__(self) -> str:
        return "." + ".".join(self.ident)


class ChainNode(Node):
    """`(pipeline).A.B` or `$x.A` after a parenthesis."""

    def __init__(self, pos: int, node: Node):
        self.pos, self.node, self.fields = pos, node, []

    def __str__(self) -> str:
        s = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return s + "".join("." + f for f in self.fields)


class DotNode(Node):
    def __init__(self, pos: int):
        self.pos = pos

    def __str__(self) -> str:
        return "."


class NilNode(Node):
    def __init__(self, pos: int):
        self.pos = pos

    def __str__(self) -> str:
        return "nil"


class BoolNode(Node):
    def __init__(self, pos: int, value: bool):
        self.pos, self.value = pos, value

    def __str__(self) -> str:
        return "true" if self.value else "false"


class NumberNode(Node):
    """A numeric constant: `value` is an int, or a float for a literal with a
    fraction or exponent (Go's ideal constants become int or float64)."""

    def __init__(self, pos: int, text: str, value):
        self.pos, self.text, self.value = pos, text, value

    def __str__(self) -> str:
        return self.text


class StringNode(Node):
    def __init__(self, pos: int, quoted: str, text: str):
        self.pos, self.quoted, self.text = pos, quoted, text

    def __str__(self) -> str:
        return self.quoted


class BranchNode(Node):
    keyword = ""

    def __init__(self, pos: int, line: int, pipe: PipeNode, list_: ListNode, else_list: ListNode | None):
        self.pos, self.line, self.pipe, self.list, self.else_list = pos, line, pipe, list_, else_list

    def __str__(self) -> str:
        s = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


class IfNode(BranchNode):
    keyword = "if"


class RangeNode(BranchNode):
    keyword = "range"


class WithNode(BranchNode):
    keyword = "with"


class TemplateNode(Node):
    def __init__(self, pos: int, line: int, name: str, pipe: PipeNode | None):
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def __str__(self) -> str:
        from lamina.quoting import go_quote

        tail = f" {self.pipe}" if self.pipe is not None else ""
        return "{{template " + go_quote(self.name) + tail + "}}"


class BreakNode(Node):
    def __init__(self, pos: int, line: int):
        self.pos, self.line = pos, line

    def __str__(self) -> str:
        return "{{break}}"


class ContinueNode(Node):
    def __init__(self, pos: int, line: int):
        self.pos, self.line = pos, line

    def __str__(self) -> str:
        return "{{continue}}"


class _Marker(Node):
    """{{end}} and {{else}}: returned by itemList, never kept in a tree."""

    def __init__(self, pos: int, line: int, word: str):
        self.pos, self.line, self.word = pos, line, word

    def __str__(self) -> str:
        return "{{" + self.word + "}}"
