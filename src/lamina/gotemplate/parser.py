"""The parser of Go's text/template (text/template/parse/parse.go): tokens to trees.

Same grammar, same checks at parse time (undefined functions and variables,
`{{break}}` outside range) and the same error texts: `template: NAME:LINE: msg`.
"""

from __future__ import annotations

from lamina.gotemplate import lex
from lamina.gotemplate.errors import TemplateParseError
from lamina.quoting import go_quote
from lamina.gotemplate.nodes import (
    ActionNode, BoolNode, BreakNode, ChainNode, CommandNode, ContinueNode, DotNode, FieldNode,
    IdentifierNode, IfNode, ListNode, NilNode, NumberNode, PipeNode, RangeNode, StringNode, TemplateNode,
    TextNode, VariableNode, WithNode, _Marker,
)

_OPERAND_START = frozenset((lex.BOOL, lex.CHAR, lex.DOT, lex.FIELD, lex.IDENT, lex.NUMBER, lex.NIL, lex.RAW,
                            lex.STRING, lex.VAR, lex.LPAREN))


def parse(text: str, funcs, name: str = "") -> dict[str, ListNode]:
    """All templates defined by `text`: the main one under `name`, then each
    `{{define}}`/`{{block}}` under its own name."""
    trees: dict[str, ListNode] = {}
    _Parser(text, funcs, name, trees).parse_top()
    return trees


def is_empty_tree(node) -> bool:
    if isinstance(node, ListNode):
        return all(is_empty_tree(n) for n in node.nodes)
    return isinstance(node, TextNode) and not node.text.strip()  # comments never reach the tree


class _Parser:
    def __init__(self, text: str, funcs, name: str, trees: dict, tokens: list | None = None, index: int = 0):
        self.text, self.funcs, self.name, self.trees = text, funcs, name, trees
        self.tokens = tokens if tokens is not None else lex.tokenize(text)
        self.i = index
        self.vars = ["$"]
        self.range_depth = 0

    # ------------------------------------------------------------------ tokens
    def next(self) -> lex.Token:
        tok = self.tokens[min(self.i, len(self.tokens) - 1)]  # EOF repeats
        self.i += 1
        return tok

    def backup(self, n: int = 1) -> None:
        self.i -= n

    def peek(self) -> lex.Token:
        return self.tokens[min(self.i, len(self.tokens) - 1)]

    def next_non_space(self) -> lex.Token:
        tok = self.next()
        while tok.kind == lex.SPACE:
            tok = self.next()
        return tok

    def peek_non_space(self) -> lex.Token:
        tok = self.next_non_space()
        self.backup()
        return tok

    def errorf(self, msg: str, tok: lex.Token | None = None):
        line = (tok or self.tokens[min(max(self.i - 1, 0), len(self.tokens) - 1)]).line
        raise TemplateParseError(f"template: {self.name}:{line}: {msg}")

    def expect(self, kind: str, context: str) -> lex.Token:
        tok = self.next_non_space()
        if tok.kind != kind:
            self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: lex.Token, context: str):
        if tok.kind == lex.ERROR:
            self.errorf(tok.val, tok)
        self.errorf(f"unexpected {tok} in {context}", tok)

    # ------------------------------------------------------------------ structure
    def parse_top(self) -> None:
        root = ListNode(self.peek().pos)
        while self.peek().kind != lex.EOF:
            if self.peek().kind == lex.LEFT_DELIM:
                start = self.i
                self.next()
                tok = self.next_non_space()
                if tok.kind == lex.KEYWORD and tok.val == "define":
                    self.parse_definition()
                    continue
                self.i = start
            node = self.text_or_action()
            if isinstance(node, _Marker):
                self.errorf(f"unexpected {node}")
            root.nodes.append(node)
        self.add(self.name, root)

    def add(self, name: str, root: ListNode) -> None:
        old = self.trees.get(name)
        if old is None or is_empty_tree(old):
            self.trees[name] = root
        elif not is_empty_tree(root):
            self.errorf(f"template: multiple definition of template {go_quote(name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        tok = self.next_non_space()
        if tok.kind not in (lex.STRING, lex.RAW):
            self.unexpected(tok, context)
        name = self.unquote(tok)
        self.expect(lex.RIGHT_DELIM, context)
        sub = _Parser(self.text, self.funcs, self.name, self.trees, self.tokens, self.i)
        root, end = sub.item_list()
        if end.word != "end":
            self.errorf(f"unexpected {end} in {context}")
        self.i = sub.i
        self.add(name, root)

    def item_list(self) -> tuple[ListNode, _Marker]:
        nodes = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().kind != lex.EOF:
            n = self.text_or_action()
            if isinstance(n, _Marker):
                return nodes, n
            nodes.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        tok = self.next_non_space()
        if tok.kind == lex.TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.kind == lex.LEFT_DELIM:
            return self.action()
        self.unexpected(tok, "input")

    def action(self):
        tok = self.next_non_space()
        if tok.kind == lex.KEYWORD:
            word = tok.val
            if word in ("if", "range", "with"):
                return self.control(word, tok)
            if word == "end":
                return _Marker(self.expect(lex.RIGHT_DELIM, "end").pos, tok.line, "end")
            if word == "else":
                peek = self.peek_non_space()
                if peek.kind == lex.KEYWORD and peek.val in ("if", "with"):
                    return _Marker(peek.pos, peek.line, "else")  # {{else if}}: the "if" stays pending
                return _Marker(self.expect(lex.RIGHT_DELIM, "else").pos, tok.line, "else")
            if word in ("break", "continue"):
                nxt = self.next_non_space()
                if nxt.kind != lex.RIGHT_DELIM:
                    self.unexpected(nxt, "{{" + word + "}}")
                if not self.range_depth:
                    self.errorf("{{" + word + "}} outside {{range}}")
                return (BreakNode if word == "break" else ContinueNode)(tok.pos, tok.line)
            if word == "template":
                return self.template_control()
            if word == "block":
                return self.block_control()
            if word == "define":
                self.unexpected(tok, "command")
        self.backup()
        tok = self.peek()
        return ActionNode(tok.pos, tok.line, self.pipeline("command"))

    def control(self, word: str, tok: lex.Token):
        mark = len(self.vars)
        if word == "range":
            self.range_depth += 1
        pipe = self.pipeline(word)
        body, nxt = self.item_list()
        if word == "range":
            self.range_depth -= 1
        else_list = None
        if nxt.word == "else":
            pending = self.peek()
            if word in ("if", "with") and pending.kind == lex.KEYWORD and pending.val == word:
                kw = self.next()
                else_list = ListNode(nxt.pos)
                else_list.nodes.append(self.control(kw.val, kw))  # `else if`/`else with`: one {{end}} for all
            else:
                else_list, nxt = self.item_list()
                if nxt.word != "end":
                    self.errorf(f"expected end; found {nxt}")
        del self.vars[mark:]
        cls = {"if": IfNode, "range": RangeNode, "with": WithNode}[word]
        return cls(pipe.pos, pipe.line, pipe, body, else_list)

    def template_control(self):
        tok = self.next_non_space()
        name = self.template_name(tok, "template clause")
        pipe = None
        if self.next_non_space().kind != lex.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline("template clause")
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def block_control(self):
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context)
        sub = _Parser(self.text, self.funcs, self.name, self.trees, self.tokens, self.i)
        root, end = sub.item_list()
        if end.word != "end":
            self.errorf(f"unexpected {end} in {context}")
        self.i = sub.i
        self.add(name, root)
        return TemplateNode(tok.pos, tok.line, name, pipe)

    def template_name(self, tok: lex.Token, context: str) -> str:
        if tok.kind not in (lex.STRING, lex.RAW):
            self.unexpected(tok, context)
        return self.unquote(tok)

    # ------------------------------------------------------------------ pipelines
    def pipeline(self, context: str) -> PipeNode:
        tok = self.peek_non_space()
        pipe = PipeNode(tok.pos, tok.line)
        while True:  # declarations: `$x :=`, `$x =`, `$i, $v :=` (range only)
            start = self.i
            v = self.next_non_space()
            if v.kind != lex.VAR:
                self.i = start
                break
            nxt = self.peek_non_space()
            if nxt.kind in (lex.ASSIGN, lex.DECLARE):
                pipe.is_assign = nxt.kind == lex.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val))
                self.vars.append(v.val)
                break
            if nxt.kind == lex.COMMA:
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in (lex.VAR, lex.RIGHT_DELIM, lex.RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            self.i = start  # not a declaration: the variable is an operand
            break
        while True:
            tok = self.next_non_space()
            if tok.kind in (lex.RIGHT_DELIM, lex.RPAREN):
                self.check_pipeline(pipe, context, tok)
                if tok.kind == lex.RPAREN:
                    self.backup()
                return pipe
            if tok.kind in _OPERAND_START:
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: PipeNode, context: str, tok) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}", tok)
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 2}", tok)

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind == lex.SPACE:
                continue
            if tok.kind == lex.ERROR:
                self.errorf(tok.val, tok)
            if tok.kind in (lex.RIGHT_DELIM, lex.RPAREN):
                self.backup()
            elif tok.kind != lex.PIPE:
                self.errorf(f"unexpected {tok} in operand", tok)
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == lex.FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().kind == lex.FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, str(chain))
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, str(chain))
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {go_quote(str(node))}")
            return chain
        return node

    def term(self):
        tok = self.next_non_space()
        k = tok.kind
        if k == lex.ERROR:
            self.errorf(tok.val, tok)
        if k == lex.IDENT:
            if tok.val not in self.funcs:
                self.errorf(f"function {go_quote(tok.val)} not defined", tok)
            return IdentifierNode(tok.pos, tok.val)
        if k == lex.DOT:
            return DotNode(tok.pos)
        if k == lex.NIL:
            return NilNode(tok.pos)
        if k == lex.VAR:
            name = tok.val.split(".")[0]
            if name not in self.vars:
                self.errorf(f"undefined variable {go_quote(name)}", tok)
            return VariableNode(tok.pos, tok.val)
        if k == lex.FIELD:
            return FieldNode(tok.pos, tok.val)
        if k == lex.BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if k in (lex.NUMBER, lex.CHAR):
            return NumberNode(tok.pos, tok.val, self.number(tok))
        if k == lex.LPAREN:
            pipe = self.pipeline("parenthesized pipeline")
            nxt = self.next()
            if nxt.kind != lex.RPAREN:
                self.errorf(f"unclosed right paren: unexpected {nxt}", nxt)
            return pipe
        if k in (lex.STRING, lex.RAW):
            return StringNode(tok.pos, tok.val, self.unquote(tok))
        self.backup()
        return None

    # ------------------------------------------------------------------ literals
    def unquote(self, tok: lex.Token) -> str:
        from lamina.gotemplate.literals import unquote

        try:
            return unquote(tok.val)
        except ValueError:
            self.errorf("invalid syntax", tok)

    def number(self, tok: lex.Token):
        from lamina.gotemplate.literals import parse_number

        try:
            return parse_number(tok.val)
        except ValueError as e:
            self.errorf(str(e), tok)
