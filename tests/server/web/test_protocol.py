"""The play protocol's models: the client-message parser's error codes, and README.md's table against the models."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel
from reelfork.server.web.protocol import (
    CLIENT_MESSAGES,
    SERVER_MESSAGES,
    Choose,
    Clip,
    EpisodeInfo,
    ErrorCode,
    LineText,
    Locked,
    Offer,
    PersonaChoice,
    PersonaInfo,
    PriceInfo,
    Progress,
    ProtocolError,
    Resume,
    SceneMessage,
    Session,
    Start,
    Unlock,
    error,
    message_type,
    parse,
)

README = Path(__file__).parents[3] / "README.md"


def protocol_section() -> str:
    text = README.read_text()
    start = text.index("## The play protocol (v1)")
    return text[start : text.index("\n## ", start + 1)]


def table_rows(section: str, header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header row starts with ``| header |``."""
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([cell.strip() for cell in cells])
    return rows


def key_paths(example: str) -> list[str]:
    """The keys of a README example frame, nested ones dotted: ``choices.id`` for ``"choices":[{"id":…}]``."""
    paths: list[str] = []
    parents: list[str | None] = []
    last: str | None = None
    for token in re.finditer(r'"(\w+)":|[{}]', example):
        if token.group(0) == "{":
            parents.append(last)
        elif token.group(0) == "}":
            parents.pop()
        else:
            last = token.group(1)
            paths.append(".".join([parent for parent in parents if parent] + [last]))
    return paths


def model_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The keys a model puts on the wire, nested models' keys dotted after their field's."""
    paths: list[str] = []
    for name, field in model.model_fields.items():
        paths.append(prefix + name)
        for nested in nested_models(field.annotation):
            paths += model_paths(nested, f"{prefix}{name}.")
    return paths


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in nested_models(argument)]


def readme_messages() -> dict[str, tuple[str, list[str]]]:
    """Each README row's message type: its direction and its keys."""
    messages: dict[str, tuple[str, list[str]]] = {}
    for direction, example, _ in table_rows(protocol_section(), "direction"):
        kind = re.search(r'"type":"(\w+)"', example)
        assert kind, example
        assert kind.group(1) not in messages, f"{kind.group(1)} has two rows"
        messages[kind.group(1)] = (direction, key_paths(example))
    return messages


def test_the_readme_table_lists_every_message_with_its_fields() -> None:
    documented = readme_messages()
    expected = {message_type(model): ("→", model_paths(model)) for model in CLIENT_MESSAGES}
    expected |= {message_type(model): ("←", model_paths(model)) for model in SERVER_MESSAGES}
    assert documented == expected


def test_the_readme_lists_every_error_code() -> None:
    rows = table_rows(protocol_section(), "error code")
    assert [code.strip("`") for code, _ in rows] == [code.value for code in ErrorCode]


def test_the_key_parser_sees_nested_keys() -> None:
    example = '{"a":1,"b":[{"c":"…","d":2}],"e":{"f":s}\\|null,"g":bool}'
    assert key_paths(example) == ["a", "b", "b.c", "b.d", "e", "e.f", "g"]
    assert "choices.label" in model_paths(SceneMessage) and "choice_window.closes_at" in model_paths(SceneMessage)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('{"type":"start","story":"last-ferry"}', Start(type="start", story="last-ferry")),
        ('{"type":"resume","session":"TOKEN"}', Resume(type="resume", session="TOKEN")),
        ('{"type":"choose","choice":"captain"}', Choose(type="choose", choice="captain")),
        (
            '{"type":"progress","scene":"blackout","position":4.2}',
            Progress(type="progress", scene="blackout", position=4.2),
        ),
        (
            '{"type":"progress","scene":"blackout","position":4.2,"playing":false}',
            Progress(type="progress", scene="blackout", position=4.2, playing=False),
        ),
        ('{"type":"start","story":"s","viewer":"acct:42.a_b-c"}',
         Start(type="start", story="s", viewer="acct:42.a_b-c")),
        ('{"type":"choose","choice":"c","scene":"s"}', Choose(type="choose", choice="c", scene="s")),
        ('{"type":"unlock","entitlement":"a.b.c"}', Unlock(type="unlock", entitlement="a.b.c")),
    ],
)
def test_parse_reads_every_client_message(frame: str, message: BaseModel) -> None:
    assert parse(frame) == message


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", ErrorCode.BAD_JSON),
        ("", ErrorCode.BAD_JSON),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE),
        ('"start"', ErrorCode.INVALID_MESSAGE),
        ("{}", ErrorCode.UNKNOWN_TYPE),
        ('{"type":"dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":["start"]}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":"start"}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"start","story":"../../etc/passwd"}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"start","story":"last-ferry","extra":1}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"resume","session":""}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"choose","choice":7}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"progress","scene":"blackout","position":-3}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"progress","scene":"blackout","position":"soon"}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"progress","scene":"blackout","position":3,"playing":"no"}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"start","story":"last-ferry","viewer":"a b"}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"start","story":"last-ferry","viewer":""}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"start","story":"last-ferry","viewer":"' + "x" * 129 + '"}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"unlock","entitlement":""}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"unlock","entitlement":"' + "x" * 8193 + '"}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"choose","choice":"captain","scene":""}', ErrorCode.INVALID_MESSAGE),
        ('{"type":"start","story":' + "9" * 5000 + "}", ErrorCode.BAD_JSON),
        ("[" * 1000 + "]" * 1000, ErrorCode.BAD_JSON),
        ('{"type":"choose","choice":' + "[" * 900 + "]" * 900 + "}", ErrorCode.INVALID_MESSAGE),
        ('{"type":' + "[" * 900 + "]" * 900 + "}", ErrorCode.UNKNOWN_TYPE),
    ],
)
def test_parse_refuses_with_the_right_code(frame: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse(frame)
    assert refused.value.code == code
    assert refused.value.message


def test_an_invalid_field_is_named_in_the_message() -> None:
    with pytest.raises(ProtocolError, match=r"^progress: position: "):
        parse('{"type":"progress","scene":"blackout","position":-3}')


def test_server_frames_keep_their_wire_format() -> None:
    episode = EpisodeInfo(number=1, title="One", free=True)
    line = LineText(id="l1", speaker="Zoë", text="Hi, Zoë.", machine_translated=False)
    scene = SceneMessage(scene="a", title="A", lines=[line], clip=None, subtitles=None, duration=None, choices=[],
                         choice_window=None, episode=episode, ending=True, position=0)
    assert scene.model_dump_json() == (
        '{"type":"scene","scene":"a","title":"A","lines":[{"id":"l1","speaker":"Zoë","text":"Hi, Zoë.",'
        '"machine_translated":false}],"clip":null,"stream":null,"subtitles":null,"poster":null,"duration":null,'
        '"choices":[],"choice_window":null,"episode":{"number":1,"title":"One","free":true},"ending":true,"position":0.0}'
    )
    offer = Offer(id="b", label="B", default=True, stream="http://h/v1/streams/s/index.m3u8")
    assert offer.model_dump_json() == (
        '{"id":"b","label":"B","default":true,"stream":"http://h/v1/streams/s/index.m3u8"}'
    )
    streamed = Clip(scene="a", url=None, stream="http://h/s.m3u8", subtitles="http://h/a.vtt", duration=6.0,
                    choice_window=None)
    assert streamed.model_dump_json() == (
        '{"type":"clip","scene":"a","url":null,"stream":"http://h/s.m3u8","poster":null,"subtitles":"http://h/a.vtt",'
        '"duration":6.0,"choice_window":null}'
    )
    locked = Locked(episode=EpisodeInfo(number=2, title="Two", free=False), price=PriceInfo(coins=60))
    assert locked.model_dump_json() == (
        '{"type":"locked","episode":{"number":2,"title":"Two","free":false},"price":{"coins":60}}'
    )
    session = Session(session="T", viewer="v-1", story="s", version=1, locale="es",
                      persona=PersonaInfo(name="Zoë", look="storm"))
    assert session.model_dump_json() == (
        '{"type":"session","session":"T","viewer":"v-1","protocol":2,"story":"s","version":1,"locale":"es",'
        '"persona":{"name":"Zoë","look":"storm"}}'
    )
    refusal = error(ErrorCode.NOT_READY, "wait")
    assert refusal.model_dump_json() == '{"type":"error","code":"not_ready","message":"wait"}'


def test_start_takes_a_locale_and_a_persona_and_leaves_names_to_the_server() -> None:
    message = parse('{"type":"start","story":"s","locale":"zh","persona":{"name":"Zoë","look":"storm"}}')
    assert message == Start(type="start", story="s", locale="zh", persona=PersonaChoice(name="Zoë", look="storm"))
    # A name of any length parses: the server refuses it as invalid_name, not as an invalid message.
    long = parse(json.dumps({"type": "start", "story": "s", "persona": {"name": "a" * 500}}))
    assert isinstance(long, Start) and long.persona is not None and long.persona.name == "a" * 500
    with pytest.raises(ProtocolError) as refused:
        parse('{"type":"start","story":"s","persona":{"nickname":"x"}}')
    assert refused.value.code == ErrorCode.INVALID_MESSAGE
