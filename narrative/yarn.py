"""Import Yarn Spinner (``.yarn``) into the project's format.

A node (``title:`` header, ``---``, body, ``===``) becomes one or more scenes: the lines up to an
options group form a scene whose choices are the options; what follows the group continues in a
further scene of the same node (titled like the node). ``Character: text`` is dialogue, other text
is narration, ``#line:id`` tags become stable line IDs.

- ``-> option`` with an indented body: the body's lines become a scene of their own after the
  choice; ``<<jump Node>>`` sets the target (in the body, or at the end of the option's line);
  ``-> text <<if cond>>`` sets the choice's condition.
- ``<<set $x to …>>`` becomes effects of every choice that enters the scene it is in (a set in the
  start scene changes the variable's default); ``<<declare $x = …>>`` declares a typed variable.
- ``<<if>>/<<elseif>>/<<else>>/<<endif>>`` around options adds their conditions; around anything
  else it becomes one ``Continue`` choice per branch, conditioned so exactly one is offered.
- ``<<stop>>`` ends the story, as does the end of a node with nowhere to go.

Dropped with a warning each: other commands, hashtags other than ``#line:``, conditions on lines,
line groups' randomness, inline ``{$expressions}``, and expressions the format cannot express.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from reelfork.narrative.expressions import ZERO, Expr, Op, SetEffect, Variable, VarType, apply_effect, type_of
from reelfork.narrative.ids import Namer
from reelfork.narrative.importing import MAX_CHOICES, MAX_LABEL, Draft, located
from reelfork.narrative.problems import Problem
from reelfork.narrative.story import NARRATOR, Story
from reelfork.narrative.yarn_expressions import Unsupported, parse_expression, tokens, variable_name

COMMAND = re.compile(r"^<<\s*(\w+)\s*(.*?)\s*>>$")
TRAILING_IF = re.compile(r"\s*<<\s*if\s+(.*?)\s*>>\s*$")
TRAILING_COMMAND = re.compile(r"\s*<<\s*(\w+)\s*((?:(?!>>).)*?)\s*>>\s*$")
SPEAKER = re.compile(r"^([^:{}<>#\[\]$\"]{1,40}?):\s+(.*)$")
HASHTAG = re.compile(r"(?:^|\s)#([^\s#]+)")
LAYOUT_HEADERS = {"position", "colorID", "color", "group", "style"}


class MissingNode(Unsupported):
    """``visited("Title")`` of a node the file does not have."""

    def __init__(self, title: str) -> None:
        super().__init__(f"no node is titled {title!r}")
        self.title = title


@dataclass
class Text:
    line: int
    speaker: str
    text: str
    line_id: str | None = None


@dataclass
class SetVar:
    line: int
    effect: SetEffect


@dataclass
class Jump:
    line: int
    node: str


@dataclass
class Stop:
    line: int


@dataclass
class Option:
    line: int
    label: str
    condition: Expr | None
    body: list[Statement] = field(default_factory=list)


@dataclass
class Branching:
    """An ``<<if>>`` block: (condition or ``None`` for else, body) per branch."""

    line: int
    branches: list[tuple[Expr | None, list[Statement]]]


Statement = Text | SetVar | Jump | Stop | Option | Branching


@dataclass
class Node:
    title: str
    line: int
    tags: list[str]
    body: list[Statement]


@dataclass
class Segment:
    """One scene being built from part of a node."""

    id: str
    node: str
    line: int
    lines: list[dict[str, Any]] = field(default_factory=list)
    choices: list[dict[str, Any]] = field(default_factory=list)
    entry: list[SetEffect] = field(default_factory=list)
    ending: bool = False
    choice_ids: Namer = field(default_factory=lambda: Namer("choice"))


def import_yarn(text: str, *, source: str = "story.yarn") -> tuple[Story, list[Problem]]:
    """A story and the warnings of everything dropped; a malformed file raises a located :class:`StoryError`."""
    importer = _Importer(Draft(source=source, kind="Yarn"))
    return importer.run(text.splitlines())


class _Importer:
    def __init__(self, draft: Draft) -> None:
        self.draft = draft
        self.titles: dict[str, int] = {}
        self.segments: list[Segment] = []
        self.node_tags: dict[str, list[str]] = {}
        self.declared: dict[str, tuple[Variable, int]] = {}
        self.used: dict[str, int] = {}
        self.inferred: dict[str, VarType] = {}
        self.node = ""
        """The title of the node being read, as the author wrote it (for messages)."""

    # -- reading -------------------------------------------------------------------------------

    def run(self, lines: list[str]) -> tuple[Story, list[Problem]]:
        raw_nodes = self._split(lines)
        for title, line, tags, _ in raw_nodes:
            self.titles[title] = line
            self.node_tags[title] = tags
            self.draft.scene_ids(title)
        nodes = []
        for title, line, tags, body in raw_nodes:
            self.node = title
            nodes.append(Node(title, line, tags, self._block(body, 0, len(body))[0]))
        self._variables()
        for node in nodes:
            first = self._segment(node.title, node.line, first=True)
            self._compile(node.body, first, None)
        start = self.draft.scene_ids(nodes[0].title) if "Start" not in self.titles else self.draft.scene_ids("Start")
        self._entry_effects(start)
        self.draft.start = start
        for segment in self.segments:
            self.draft.scenes.append(self._scene(segment))
        return self.draft.story(), self.draft.warnings

    def _split(self, lines: list[str]) -> list[tuple[str, int, list[str], list[tuple[int, str]]]]:
        nodes: list[tuple[str, int, list[str], list[tuple[int, str]]]] = []
        index = 0
        while index < len(lines):
            if not lines[index].strip() or lines[index].lstrip().startswith("//"):
                index += 1
                continue
            start = index + 1
            headers: dict[str, str] = {}
            while index < len(lines) and lines[index].strip() != "---":
                header = lines[index]
                if header.strip() and not header.lstrip().startswith("//"):
                    if ":" not in header:
                        raise located(self.draft.source, index + 1,
                                      f"expected a 'key: value' node header or '---', found {header.strip()[:40]!r}")
                    key, value = header.split(":", 1)
                    headers[key.strip()] = value.strip()
                index += 1
            if index >= len(lines):
                raise located(self.draft.source, start, "node headers are not followed by '---'")
            title = headers.pop("title", "")
            if not title:
                raise located(self.draft.source, start, "a node needs a 'title:' header")
            if title in {t for t, _, _, _ in nodes}:
                first = next(line for t, line, _, _ in nodes if t == title)
                raise located(self.draft.source, start, f"node {title!r} is defined twice (first at line {first})")
            tags = headers.pop("tags", "").split()
            for key in headers:
                if key not in LAYOUT_HEADERS:
                    self.draft.warn(start, f"node header {key!r} dropped")
            index += 1
            body: list[tuple[int, str]] = []
            while index < len(lines) and lines[index].strip() != "===":
                body.append((index + 1, lines[index]))
                index += 1
            if index >= len(lines):
                raise located(self.draft.source, start, f"node {title!r} is not closed with '==='")
            index += 1
            nodes.append((title, start, tags, [(n, t) for n, t in body if t.strip() and not _comment(t)]))
        if not nodes:
            raise located(self.draft.source, 1, "no nodes: a Yarn file needs 'title:', '---', a body and '==='")
        return nodes

    def _block(self, body: list[tuple[int, str]], index: int, stop: int, until: set[str] | None = None
               ) -> tuple[list[Statement], int]:
        """Statements from ``body[index:stop]`` up to a command in ``until`` (``elseif``, ``else``, ``endif``)."""
        statements: list[Statement] = []
        while index < stop:
            number, raw = body[index]
            text = raw.strip()
            command = COMMAND.match(text)
            if command is not None and until is not None and command.group(1) in until:
                return statements, index
            if text.startswith("->"):
                indent = _indent(raw)
                end = index + 1
                while end < stop and _indent(body[end][1]) > indent:
                    end += 1
                statements.append(self._option(text[2:].strip(), number, body, index + 1, end))
                index = end
            elif command is not None and command.group(1) == "if":
                branching, index = self._branching(body, index, stop)
                statements.append(branching)
            else:
                statement = self._simple(text, number)
                if statement is not None:
                    statements.append(statement)
                index += 1
        if until is not None:
            raise located(self.draft.source, body[index - 1][0] if index else 1, "<<if>> is not closed by <<endif>>")
        return statements, index

    def _branching(self, body: list[tuple[int, str]], index: int, stop: int) -> tuple[Branching, int]:
        number, raw = body[index]
        match = COMMAND.match(raw.strip())
        assert match is not None
        branches: list[tuple[Expr | None, list[Statement]]] = []
        condition: Expr | None = self._condition(match.group(2), number)
        index += 1
        while True:
            statements, index = self._block(body, index, stop, {"elseif", "else", "endif"})
            branches.append((condition, statements))
            closing = COMMAND.match(body[index][1].strip())
            assert closing is not None
            keyword, number = closing.group(1), body[index][0]
            index += 1
            if keyword == "endif":
                return Branching(body[index - 1][0], branches), index
            condition = self._condition(closing.group(2), number) if keyword == "elseif" else None

    def _condition(self, text: str, number: int) -> Expr:
        """An ``<<if>>`` condition; one that cannot be read never holds (warned), rather than acting as ``else``."""
        condition = self._expression(text, number)
        if condition is None:
            self.draft.warn(number, "the branch of that unreadable <<if>> is never taken")
            return False
        return condition

    def _option(self, text: str, number: int, body: list[tuple[int, str]], start: int, end: int) -> Option:
        """``-> label <<if cond>>``; other commands at the end of the line (``<<jump Node>>``) run when it is taken,
        before its indented body."""
        condition: Expr | None = None
        inline: list[Statement] = []
        while (found := TRAILING_COMMAND.search(text)) is not None:
            text = text[: found.start()]
            if found.group(1) == "if" and condition is None:
                condition = self._expression(found.group(2), number)
                continue
            statement = self._command(found.group(1), found.group(2), number)
            if statement is not None:
                inline.insert(0, statement)
        label = self._clean(text, number)[1]
        statements, _ = self._block(body, start, end)
        return Option(number, label or "Continue", condition, [*inline, *statements])

    def _simple(self, text: str, number: int) -> Statement | None:
        command = COMMAND.match(text)
        if command is not None:
            return self._command(command.group(1), command.group(2), number)
        if TRAILING_IF.search(text):
            self.draft.warn(number, "a line's <<if>> condition was dropped: the line is shown to every viewer")
            text = TRAILING_IF.sub("", text)
        if text.startswith("=>"):
            self.draft.warn(number, "line group (=>) item kept as an ordinary line: random selection is dropped")
            text = text[2:].strip()
        line_id, text = self._clean(text, number)
        if not text:
            return None
        spoken = SPEAKER.match(text)
        if spoken is not None and len(spoken.group(1).split()) <= 4:
            return Text(number, self.draft.speaker(spoken.group(1)), spoken.group(2), line_id)
        return Text(number, NARRATOR, text, line_id)

    def _command(self, name: str, argument: str, number: int) -> Statement | None:
        if name == "jump":
            if argument.startswith("{"):
                self.draft.warn(number, "<<jump>> to an expression dropped: targets must be node titles")
                return None
            if argument not in self.titles:  # reported with every other missing node when the import ends
                self.draft.fail(number, f"<<jump {argument}>> in node {self.node!r} goes to node {argument!r}, "
                                        "which does not exist")
                return None
            return Jump(number, argument)
        if name == "stop":
            return Stop(number)
        if name == "set":
            return self._set(argument, number)
        if name == "declare":
            self._declare(argument, number)
            return None
        if name in {"elseif", "else", "endif"}:
            raise located(self.draft.source, number, f"<<{name}>> without an opening <<if>>")
        self.draft.warn(number, f"command <<{name}>> dropped: it has no equivalent in the story format")
        return None

    def _set(self, argument: str, number: int) -> SetVar | None:
        match = re.match(r"^\$([A-Za-z_]\w*)\s*(?:to|=)\s*(.+)$", argument)
        if match is None:
            raise located(self.draft.source, number, "expected <<set $name to value>>")
        value = self._expression(match.group(2), number)
        if value is None:
            self.draft.warn(number, f"<<set ${match.group(1)}>> dropped")
            return None
        self.used.setdefault(match.group(1), number)
        if isinstance(value, bool | int | str):
            self.inferred.setdefault(match.group(1), type_of(value))
        return SetVar(number, SetEffect.model_validate({"set": match.group(1), "to": value}))

    def _declare(self, argument: str, number: int) -> None:
        match = re.match(r"^\$([A-Za-z_]\w*)\s*(?:to|=)\s*(.+?)(?:\s+as\s+(\w+))?$", argument)
        if match is None:
            raise located(self.draft.source, number, "expected <<declare $name = value>>")
        value = self._expression(match.group(2), number)
        if not isinstance(value, bool | int | str):
            raise located(self.draft.source, number, "a declared default must be a literal: true, 3 or \"text\"")
        wanted = {"bool": "bool", "number": "int", "string": "string"}.get((match.group(3) or "").lower())
        if match.group(3) and wanted != type_of(value):
            raise located(self.draft.source, number, f"default {match.group(2)!r} is not a {match.group(3)}")
        self.declared[match.group(1)] = (Variable(type=type_of(value), default=value), number)

    def _expression(self, text: str, number: int) -> Expr | None:
        try:
            for token in tokens(text):
                if token.startswith("$"):
                    self.used.setdefault(variable_name(token), number)
            return parse_expression(text, self._node_scene)
        except MissingNode as exc:  # an author's typo, like a jump to a missing node: not an expression to drop
            self.draft.fail(number, f"{text!r} in node {self.node!r} refers to node {exc.title!r}, "
                                    "which does not exist")
            return None
        except Unsupported as exc:
            self.draft.warn(number, f"expression {text!r} dropped: {exc}")
            return None
        except ValueError as exc:
            self.draft.warn(number, f"expression {text!r} dropped: {exc}")
            return None

    def _node_scene(self, title: str) -> str:
        if title not in self.titles:
            raise MissingNode(title)
        return self.draft.scene_ids(title)

    def _clean(self, text: str, number: int) -> tuple[str | None, str]:
        """(the ``#line:`` id, text without hashtags), warning about other hashtags and ``{…}`` inlines."""
        line_id = None
        for tag in HASHTAG.findall(text):
            if tag.startswith("line:") and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", tag[5:]):
                line_id = tag[5:]
            else:
                self.draft.warn(number, f"hashtag #{tag} dropped")
        text = HASHTAG.sub("", text).strip()
        if "{" in text and "}" in text:
            self.draft.warn(number, "inline {expressions} are kept as written: the format has no interpolation")
        return line_id, text

    def _variables(self) -> None:
        for name, line in self.used.items():
            if name in self.declared:
                continue
            var_type = self.inferred.get(name)
            if var_type is None:
                raise located(self.draft.source, line,
                              f"${name} is never declared; add <<declare ${name} = value>> so its type is known")
            self.draft.warn(line, f"${name} is not declared; declared as {var_type} starting at {ZERO[var_type]!r}")
            self.declared[name] = (Variable(type=var_type), line)
        self.draft.variables = {name: v.model_dump(mode="json") for name, (v, _) in self.declared.items()}

    # -- compiling -------------------------------------------------------------------------------

    def _segment(self, node: str, line: int, first: bool = False) -> Segment:
        scene_id = self.draft.scene_ids(node if first else f"{node}.{len(self.segments)}")
        segment = Segment(scene_id, node, line)
        self.segments.append(segment)
        return segment

    def _compile(self, statements: list[Statement], segment: Segment, after: str | None) -> None:
        """Fill ``segment`` from ``statements``; running off their end leads to ``after`` (``None``: the end)."""
        for index, statement in enumerate(statements):
            if isinstance(statement, Text):
                segment.lines.append(self.draft.line(statement.speaker, statement.text, statement.line,
                                                     statement.line_id))
            elif isinstance(statement, SetVar):
                segment.entry.append(statement.effect)
            elif isinstance(statement, Jump | Stop):
                if index + 1 < len(statements):
                    self.draft.warn(statements[index + 1].line, "unreachable after <<jump>> or <<stop>>; dropped")
                if isinstance(statement, Stop):
                    segment.ending = True
                else:
                    self._continue(segment, self.draft.scene_ids(statement.node))
                return
            else:
                group_end = _group_end(statements, index)
                rest = statements[group_end:]
                follow = after
                if rest:
                    follow_segment = self._segment(segment.node, rest[0].line)
                    self._compile(rest, follow_segment, after)
                    follow = follow_segment.id
                for option in _flatten(statements[index:group_end], None):
                    self._choice(segment, option, follow)
                return
        if after is None:
            segment.ending = True
        else:
            self._continue(segment, after)

    def _continue(self, segment: Segment, target: str) -> None:
        segment.choices.append({"id": segment.choice_ids.fresh("Continue"), "label": "Continue", "target": target})

    def _choice(self, segment: Segment, option: Option, follow: str | None) -> None:
        if len(segment.choices) >= MAX_CHOICES:
            self.draft.warn(option.line, f"option {option.label!r} dropped: a scene offers at most {MAX_CHOICES}")
            return
        choice: dict[str, Any] = {
            "id": segment.choice_ids.fresh(option.label),
            "label": self.draft.fit(option.label, MAX_LABEL, option.line, "an option"),
        }
        if option.condition is not None:
            choice["condition"] = option.condition
        simple = all(isinstance(s, SetVar) for s in option.body[:-1]) and (
            not option.body or isinstance(option.body[-1], SetVar | Jump))
        if simple:
            choice["effects"] = [s.effect for s in option.body if isinstance(s, SetVar)]
            last = option.body[-1] if option.body else None
            target = self.draft.scene_ids(last.node) if isinstance(last, Jump) else follow
        else:
            inner = self._segment(segment.node, option.line)
            self._compile(option.body, inner, follow)
            target = inner.id
        choice["target"] = target if target is not None else self._ending(segment.node, option.line)
        segment.choices.append(choice)

    def _ending(self, node: str, line: int) -> str:
        segment = self._segment(node, line)
        segment.ending = True
        return segment.id

    def _entry_effects(self, start: str) -> None:
        """Each segment's ``<<set>>``s become effects of the choices entering it; the start's set the defaults."""
        entry = {segment.id: segment.entry for segment in self.segments if segment.entry}
        for segment in self.segments:
            for choice in segment.choices:
                choice.setdefault("effects", [])
                choice["effects"] = [*choice["effects"], *entry.get(choice["target"], [])]
        defaults: dict[str, bool | int | str] = {
            name: Variable.model_validate(v).initial for name, v in self.draft.variables.items()
        }
        for effect in entry.get(start, []):
            apply_effect(effect, defaults, {})
        for name, value in defaults.items():
            self.draft.variables[name] = {"type": type_of(value), "default": value}

    def _scene(self, segment: Segment) -> dict[str, Any]:
        lines = segment.lines
        if not lines:
            self.draft.warn(segment.line, f"scene {segment.id!r} has no lines of its own; the narrator says the "
                                          "node's title so it can be shown")
            lines = [self.draft.line(NARRATOR, segment.node, segment.line)]
        title = self.draft.fit(segment.node, MAX_LABEL, segment.line, "a node title")
        scene: dict[str, Any] = {
            "id": segment.id, "title": title, "place": title, "lines": lines,
            "choices": [] if segment.ending else segment.choices, "ending": segment.ending or not segment.choices,
        }
        if segment.id == self.draft.scene_ids(segment.node):
            scene["tags"] = [tag[:64] for tag in self.node_tags.get(segment.node, [])][:32]
        return scene


def _comment(text: str) -> bool:
    return text.lstrip().startswith("//")


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" \t"))


def _options_only(statement: Statement) -> bool:
    if isinstance(statement, Option):
        return True
    return isinstance(statement, Branching) and all(
        body and all(_options_only(s) for s in body) for _, body in statement.branches
    )


def _group_end(statements: list[Statement], index: int) -> int:
    """The end of the choice group at ``index``: consecutive options (and ``<<if>>``s of options only)."""
    if not _options_only(statements[index]):
        return index + 1
    end = index + 1
    while end < len(statements) and _options_only(statements[end]):
        end += 1
    return end


def _flatten(statements: list[Statement], guard: Expr | None) -> list[Option]:
    """Options of a group, each conditioned on the ``<<if>>`` branches around it."""
    options: list[Option] = []
    for statement in statements:
        if isinstance(statement, Option):
            options.append(Option(statement.line, statement.label, _and(guard, statement.condition), statement.body))
            continue
        if not isinstance(statement, Branching):
            continue
        earlier: list[Expr] = []
        for condition, body in statement.branches:
            branch = _and(guard, _and(_none_of(earlier), condition))
            if _options_only_body(body):
                options.extend(_flatten(body, branch))
            else:
                options.append(Option(statement.line, "Continue", branch, body))
            if condition is not None:
                earlier.append(condition)
        if statement.branches[-1][0] is not None and not _options_only(statement):
            options.append(Option(statement.line, "Continue", _and(guard, _none_of(earlier)), []))
    return options


def _options_only_body(body: list[Statement]) -> bool:
    return bool(body) and all(_options_only(s) for s in body)


def _and(left: Expr | None, right: Expr | None) -> Expr | None:
    if left is None:
        return right
    if right is None:
        return left
    return Op(op="and", args=[left, right])


def _none_of(conditions: list[Expr]) -> Expr | None:
    if not conditions:
        return None
    either = conditions[0] if len(conditions) == 1 else Op(op="or", args=conditions[:16])
    return Op(op="not", args=[either])
