"""Yarn Spinner expressions (``$gold >= 10 and not visited("Cave")``) read into
:mod:`reelfork.narrative.expressions` trees.

Supported: ``$variables``, whole numbers, strings, ``true``/``false``; ``and or not && || !``;
``== != < <= > >=`` and their word forms (``is eq neq lt gt lte gte``); ``+ -``; parentheses;
``visited("Node")`` and ``visited_count("Node")``. Anything else raises :class:`Unsupported`,
which the importer turns into a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from reelfork.narrative.expressions import Expr, Op, Var, Visits

TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<string>\"(?:\\.|[^\"\\])*\")|(?P<var>\$[A-Za-z_]\w*)"
    r"|(?P<word>[A-Za-z_]\w*)|(?P<op>==|!=|<=|>=|&&|\|\||[<>!+\-*/%(),=]))"
)
WORDS = {
    "is": "==",
    "eq": "==",
    "neq": "!=",
    "lt": "<",
    "gt": ">",
    "lte": "<=",
    "gte": ">=",
    "&&": "and",
    "||": "or",
    "!": "not",
    "=": "==",
}
BINARY = [{"or"}, {"and"}, {"==", "!="}, {"<", "<=", ">", ">="}, {"+", "-"}]


class Unsupported(ValueError):
    """An expression the story format cannot express (or that is not valid Yarn)."""


def tokens(text: str) -> list[str]:
    found: list[str] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise Unsupported(f"cannot read {text[position : position + 20]!r}")
        found.append(match.group().strip())
        position = match.end()
    return [WORDS.get(token, token) for token in found]


def variable_name(token: str) -> str:
    """``$has_key`` → ``has_key``; the story variable holding a Yarn variable."""
    return token[1:]


def parse_expression(text: str, name_of_node: Callable[[str], str]) -> Expr:
    """The expression tree of Yarn ``text``; ``name_of_node`` maps a node title to its scene id."""
    parser = _Parser(tokens(text), name_of_node)
    expr = parser.binary(0)
    if parser.position != len(parser.items):
        raise Unsupported(f"unexpected {parser.items[parser.position]!r}")
    return expr


class _Parser:
    def __init__(self, items: list[str], name_of_node: Callable[[str], str]) -> None:
        self.items = items
        self.position = 0
        self.name_of_node = name_of_node

    def peek(self) -> str | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected or 'more'}, found {token or 'the end'}")
        self.position += 1
        return token

    def binary(self, level: int) -> Expr:
        if level == len(BINARY):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in BINARY[level]:
            op = self.take()
            right = self.binary(level + 1)
            left = Op.model_validate({"op": op, "args": [left, right]})
        return left

    def unary(self) -> Expr:
        token = self.peek()
        if token == "not":
            self.take()
            return Op(op="not", args=[self.unary()])
        if token == "-":
            self.take()
            return Op(op="-", args=[0, self.unary()])
        return self.atom()

    def atom(self) -> Expr:
        token = self.take()
        if token == "(":
            inner = self.binary(0)
            self.take(")")
            return inner
        if token.startswith("$"):
            return Var(var=variable_name(token))
        if token.startswith('"'):
            return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if token in {"true", "false"}:
            return token == "true"
        if token[0].isdigit():
            number = float(token)
            if not number.is_integer():
                raise Unsupported(f"{token} is not a whole number; the story format has ints only")
            return int(number)
        if token in {"visited", "visited_count"}:
            self.take("(")
            node = self.take()
            self.take(")")
            if not node.startswith('"'):
                raise Unsupported(f"{token}() needs a node title in quotes")
            visits = Visits(visits=self.name_of_node(node[1:-1]))
            return Op(op=">", args=[visits, 0]) if token == "visited" else visits
        raise Unsupported(
            f"{token!r} is not supported (functions other than visited and visited_count, "
            "'*', '/', '%' and 'xor' have no equivalent)"
        )
