"""Conditions and effects as data: a small typed expression tree, never ``eval`` of creator text.

An expression is a literal (``true``, ``3``, ``"ally"``), a variable (``{var: trust}``), a visit count
(``{visits: scene-id}``) or an operation (``{op: ">=", args: [{var: trust}, 2]}``). Effects change
variables: ``{set: trust, to: 3}`` and ``{add: trust, by: 1}``. :func:`check` infers types and finds
unknown names; :func:`evaluate` computes a value; :func:`fold` computes what is known before play.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, StrictInt, StrictStr, Tag, model_validator
from reelfork.narrative.ids import Identifier

Value = bool | int | str
VarType = Literal["bool", "int", "string"]
Operator = Literal["==", "!=", "<", "<=", ">", ">=", "and", "or", "not", "+", "-"]

MAX_DEPTH = 32
"""Deepest expression accepted: deeper trees are an error, not a recursion crash."""

ARITY: dict[str, tuple[int, int]] = {
    "==": (2, 2), "!=": (2, 2), "<": (2, 2), "<=": (2, 2), ">": (2, 2), ">=": (2, 2),
    "and": (2, 16), "or": (2, 16), "not": (1, 1), "+": (2, 16), "-": (2, 2),
}


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class Var(_Node):
    """The current value of a declared story variable."""

    var: Identifier


class Visits(_Node):
    """How many times this viewer has entered a scene (0 before the first visit)."""

    visits: Identifier


class Op(_Node):
    """An operation: comparisons and ``and``/``or``/``not`` give a bool, ``+``/``-`` an int."""

    op: Operator
    args: list[Expr]

    @model_validator(mode="after")
    def _arity(self) -> Op:
        low, high = ARITY[self.op]
        if not low <= len(self.args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise ValueError(f"{self.op!r} takes {wanted} args, got {len(self.args)}")
        return self


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "string"
    if isinstance(value, BaseModel):
        kinds: dict[type[BaseModel], str] = {Var: "var", Visits: "visits", Op: "op"}
        return kinds.get(type(value))
    if isinstance(value, dict):
        return next((key for key in ("var", "visits", "op") if key in value), None)
    return None


Expr = Annotated[
    Annotated[StrictBool, Tag("bool")]
    | Annotated[StrictInt, Tag("int")]
    | Annotated[StrictStr, Tag("string")]
    | Annotated[Var, Tag("var")]
    | Annotated[Visits, Tag("visits")]
    | Annotated[Op, Tag("op")],
    Discriminator(
        _kind,
        custom_error_type="expression",
        custom_error_message="an expression is true/false, a number, a string, {var: name}, {visits: scene} "
        "or {op: '>=', args: [...]}",
    ),
]
Op.model_rebuild()


class SetEffect(_Node):
    """Give a variable a new value: ``{set: met_lily, to: true}``."""

    set: Identifier
    to: Expr


class AddEffect(_Node):
    """Add to an int variable (a negative ``by`` subtracts): ``{add: trust, by: 1}``."""

    add: Identifier
    by: Expr


def _effect_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        kinds: dict[type[BaseModel], str] = {SetEffect: "set", AddEffect: "add"}
        return kinds.get(type(value))
    if isinstance(value, dict):
        return next((key for key in ("set", "add") if key in value), None)
    return None


Effect = Annotated[
    Annotated[SetEffect, Tag("set")] | Annotated[AddEffect, Tag("add")],
    Discriminator(
        _effect_kind,
        custom_error_type="effect",
        custom_error_message="an effect is {set: name, to: value} or {add: name, by: number}",
    ),
]

ZERO: dict[str, Value] = {"bool": False, "int": 0, "string": ""}


def type_of(value: Value) -> VarType:
    if isinstance(value, bool):
        return "bool"
    return "int" if isinstance(value, int) else "string"


class Variable(_Node):
    """A declared story variable: its type, and the value every viewer starts with."""

    type: VarType
    default: StrictBool | StrictInt | StrictStr | None = Field(default=None, exclude_if=lambda v: v is None)
    """When absent: false, 0 or the empty string."""

    @model_validator(mode="after")
    def _default_matches(self) -> Variable:
        if self.default is not None and type_of(self.default) != self.type:
            raise ValueError(f"default {self.default!r} is not a {self.type}")
        return self

    @property
    def initial(self) -> Value:
        return ZERO[self.type] if self.default is None else self.default


# -- checking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A type or name error inside one expression; ``path`` is relative, like ``.args[1]``."""

    path: str
    message: str


@dataclass(frozen=True)
class Names:
    """What an expression may refer to."""

    variables: Mapping[str, Variable]
    scenes: Container[str]


def check(expr: Expr, names: Names, path: str = "", depth: int = 0) -> tuple[VarType | None, list[Finding]]:
    """The expression's type (``None`` when unknown because of an error) and every error inside it."""
    if depth > MAX_DEPTH:
        return None, [Finding(path, f"expression nested deeper than {MAX_DEPTH} levels")]
    if isinstance(expr, bool | int | str):
        return type_of(expr), []
    if isinstance(expr, Var):
        declared = names.variables.get(expr.var)
        if declared is None:
            return None, [Finding(f"{path}.var", _unknown_variable(expr.var, names.variables))]
        return declared.type, []
    if isinstance(expr, Visits):
        if expr.visits not in names.scenes:
            return "int", [Finding(f"{path}.visits", f"visits of unknown scene {expr.visits!r}")]
        return "int", []
    return _check_op(expr, names, path, depth)


def _check_op(expr: Op, names: Names, path: str, depth: int) -> tuple[VarType | None, list[Finding]]:
    findings: list[Finding] = []
    types: list[VarType | None] = []
    for index, arg in enumerate(expr.args):
        arg_type, inner = check(arg, names, f"{path}.args[{index}]", depth + 1)
        types.append(arg_type)
        findings.extend(inner)
    wanted: VarType | None = None
    if expr.op in {"and", "or", "not"}:
        wanted = "bool"
    elif expr.op in {"<", "<=", ">", ">=", "+", "-"}:
        wanted = "int"
    if wanted is not None:
        for index, arg_type in enumerate(types):
            if arg_type is not None and arg_type != wanted:
                findings.append(
                    Finding(f"{path}.args[{index}]", f"{expr.op!r} needs {_article(wanted)}, got {_article(arg_type)}")
                )
    elif None not in types and types[0] != types[1]:
        findings.append(
            Finding(f"{path}.args", f"{expr.op!r} compares {_article(types[0])} with {_article(types[1])}; "
                                    "compare values of the same type")
        )
    result: VarType = "int" if expr.op in {"+", "-"} else "bool"
    return result, findings


def check_effect(effect: SetEffect | AddEffect, names: Names, path: str = "") -> list[Finding]:
    """Unknown variables and type mismatches in one effect."""
    name, field, value = (effect.set, "to", effect.to) if isinstance(effect, SetEffect) else (
        effect.add, "by", effect.by)
    key = "set" if isinstance(effect, SetEffect) else "add"
    value_type, findings = check(value, names, f"{path}.{field}")
    declared = names.variables.get(name)
    if declared is None:
        return [Finding(f"{path}.{key}", _unknown_variable(name, names.variables)), *findings]
    if isinstance(effect, AddEffect) and declared.type != "int":
        findings.append(Finding(f"{path}.add", f"'add' needs an int variable; {name!r} is {_article(declared.type)}"))
    elif value_type is not None:
        target = "int" if isinstance(effect, AddEffect) else declared.type
        if value_type != target:
            findings.append(Finding(f"{path}.{field}", f"{name!r} is {_article(target)}, got {_article(value_type)}"))
    return findings


def _unknown_variable(name: str, variables: Mapping[str, Variable]) -> str:
    from difflib import get_close_matches

    close = get_close_matches(name, list(variables), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; declare it under the story's 'variables'"
    return f"unknown variable {name!r}{hint}"


def _article(var_type: VarType | None) -> str:
    return {"bool": "a bool", "int": "an int", "string": "a string", None: "an unknown type"}[var_type]


# -- evaluating --------------------------------------------------------------------------------


Lookup = Callable[[Var | Visits], Value | None]
"""Resolve a name to its value, or ``None`` when the value is not known (for :func:`fold`)."""


def evaluate(expr: Expr, variables: Mapping[str, Value], visits: Mapping[str, int]) -> Value:
    """The value of a well-typed expression for one viewer. Unknown variables raise ``KeyError``."""

    def lookup(ref: Var | Visits) -> Value:
        return variables[ref.var] if isinstance(ref, Var) else visits.get(ref.visits, 0)

    value = fold(expr, lookup)
    if value is None:  # pragma: no cover - lookup never answers None
        raise KeyError(expr)
    return value


def fold(expr: Expr, lookup: Lookup) -> Value | None:
    """The value of an expression when ``lookup`` knows enough, else ``None``.

    ``and``/``or`` short-circuit, so ``false and unknown`` folds to ``false``.
    """
    if isinstance(expr, bool | int | str):
        return expr
    if isinstance(expr, Var | Visits):
        return lookup(expr)
    if expr.op in {"and", "or"}:
        return _fold_logic(expr, lookup)
    values = [fold(arg, lookup) for arg in expr.args]
    if any(value is None for value in values):
        return None
    return _apply(expr.op, values)


def _fold_logic(expr: Op, lookup: Lookup) -> bool | None:
    decisive = expr.op == "or"
    unknown = False
    for arg in expr.args:
        value = fold(arg, lookup)
        if value is None:
            unknown = True
        elif bool(value) == decisive:
            return decisive
    return None if unknown else not decisive


def _apply(op: str, values: list[Any]) -> Value:
    first = values[0]
    if op == "not":
        return not first
    if op == "+":
        return int(sum(values))
    if op == "-":
        return int(first - values[1])
    second = values[1]
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: type_of(a) == type_of(b) and a == b,
        "!=": lambda a, b: type_of(a) != type_of(b) or a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return comparisons[op](first, second)


def apply_effect(effect: SetEffect | AddEffect, variables: dict[str, Value], visits: Mapping[str, int]) -> None:
    """Change ``variables`` in place by one effect."""
    if isinstance(effect, SetEffect):
        variables[effect.set] = evaluate(effect.to, variables, visits)
    else:
        variables[effect.add] = int(variables[effect.add]) + int(evaluate(effect.by, variables, visits))


def written_variables(effects: list[SetEffect | AddEffect]) -> set[str]:
    return {effect.set if isinstance(effect, SetEffect) else effect.add for effect in effects}


# -- coverage ------------------------------------------------------------------------------------

MAX_ATOMS = 10
NEGATED = {"<": ">=", ">": "<=", "!=": "=="}


def always_one(conditions: list[Expr]) -> bool:
    """Whether at least one of ``conditions`` holds whatever the variables, proven by a truth table.

    Comparisons and variables are atoms (``x < 1`` is read as ``not x >= 1``), so if/elseif/else
    chains (``c``, ``not c``) are proven complete. ``False`` means "not proven", not "can fail".
    """
    atoms: dict[str, int] = {}
    for condition in conditions:
        _collect_atoms(condition, atoms)
    if len(atoms) > MAX_ATOMS:
        return False
    for bits in range(2 ** len(atoms)):
        truth = {key: bool(bits >> index & 1) for key, index in atoms.items()}
        if not any(_truth(condition, truth) for condition in conditions):
            return False
    return True


def _atom(expr: Expr) -> tuple[str, bool]:
    """The key of an atom and whether the expression is its negation."""
    if isinstance(expr, Op) and expr.op in NEGATED:
        return Op.model_validate({"op": NEGATED[expr.op], "args": expr.args}).model_dump_json(), True
    if isinstance(expr, BaseModel):
        return expr.model_dump_json(), False
    return repr(expr), False


def _collect_atoms(expr: Expr, atoms: dict[str, int]) -> None:
    if isinstance(expr, bool):
        return
    if isinstance(expr, Op) and expr.op in {"and", "or", "not"}:
        for arg in expr.args:
            _collect_atoms(arg, atoms)
        return
    key, _ = _atom(expr)
    atoms.setdefault(key, len(atoms))


def _truth(expr: Expr, truth: Mapping[str, bool]) -> bool:
    if isinstance(expr, bool):
        return expr
    if isinstance(expr, Op) and expr.op in {"and", "or", "not"}:
        values = [_truth(arg, truth) for arg in expr.args]
        return not values[0] if expr.op == "not" else all(values) if expr.op == "and" else any(values)
    key, negated = _atom(expr)
    return truth[key] != negated
