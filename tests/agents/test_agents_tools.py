"""Parsing model output into one action: native calls, <tool_call> text, bash blocks, errors."""

from __future__ import annotations

import json

import pytest

from swerve.agents.tools import (
    TOOL_NAMES,
    parse_tool_call_blocks,
    parse_turn,
    strip_tool_call_blocks,
    tool_schemas,
    validate_call,
)
from swerve.schema import Completion, ToolCall


def text_turn(text: str) -> Completion:
    return Completion(text=text)


def test_schemas_are_openai_function_tools():
    schemas = tool_schemas()
    assert [s["function"]["name"] for s in schemas] == list(TOOL_NAMES) == ["bash", "str_replace_editor", "submit"]
    for schema in schemas:
        assert schema["type"] == "function"
        assert schema["function"]["parameters"]["type"] == "object"
    editor = schemas[1]["function"]["parameters"]
    assert editor["properties"]["command"]["enum"] == ["view", "create", "str_replace", "insert", "undo_edit"]
    schemas[0]["function"]["name"] = "changed"
    assert tool_schemas()[0]["function"]["name"] == "bash"


def test_native_tool_call_with_json_string_arguments():
    parsed = parse_turn(Completion(tool_calls=[ToolCall.model_construct(name="bash", arguments='{"command": "ls -la"}', id="c1")]))
    assert parsed.ok and parsed.source == "native"
    assert parsed.action.arguments == {"command": "ls -la"}
    assert parsed.action.id == "c1"


def test_hermes_text_tool_call():
    text = 'Let me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "cat setup.py"}}\n</tool_call>'
    parsed = parse_turn(text_turn(text))
    assert parsed.ok and parsed.source == "text"
    assert parsed.action == ToolCall(name="bash", arguments={"command": "cat setup.py"})
    assert strip_tool_call_blocks(text) == "Let me look."


def test_arguments_given_as_json_string_inside_text_call():
    text = '<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"pwd\\"}"}</tool_call>'
    parsed = parse_turn(text_turn(text))
    assert parsed.action.arguments == {"command": "pwd"}


def test_nested_tags_and_braces_inside_string_values_do_not_cut_the_call():
    command = 'echo "</tool_call> {not json} <tool_call>"'
    text = "<tool_call>" + json.dumps({"name": "bash", "arguments": {"command": command}}) + "</tool_call>"
    parsed = parse_turn(text_turn(text))
    assert parsed.ok
    assert parsed.action.arguments["command"] == command
    assert parsed.ignored == []


def test_nested_objects_in_arguments():
    payload = {"name": "str_replace_editor",
               "arguments": {"command": "view", "path": "a.py", "view_range": [1, 5]}}
    parsed = parse_turn(text_turn(f"<tool_call>{json.dumps(payload)}</tool_call>"))
    assert parsed.ok
    assert parsed.action.arguments["view_range"] == [1, 5]


def test_missing_close_tag_at_end_is_accepted():
    parsed = parse_turn(text_turn('<tool_call>\n{"name": "submit", "arguments": {}}'))
    assert parsed.ok and parsed.action.name == "submit"


def test_multiple_calls_run_the_first_and_report_the_rest():
    text = (
        '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>\n'
        '<tool_call>{"name": "bash", "arguments": {"command": "pwd"}}</tool_call>'
    )
    parsed = parse_turn(text_turn(text))
    assert parsed.action.arguments["command"] == "ls"
    assert [c.arguments["command"] for c in parsed.ignored] == ["pwd"]
    native = parse_turn(Completion(tool_calls=[ToolCall(name="submit"), ToolCall(name="bash", arguments={"command": "x"})]))
    assert native.action.name == "submit" and len(native.ignored) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ('<tool_call>{"name": "bash", "arguments": {"command": "ls"</tool_call>', "not valid JSON"),
        ("<tool_call>[1, 2]</tool_call>", "JSON object"),
        ('<tool_call>{"arguments": {}}</tool_call>', "missing 'name'"),
        ('<tool_call>{"name": "bash", "arguments": {"command": "ls"}} trailing</tool_call>', "text after"),
        ('<tool_call>{"name": "python", "arguments": {}}</tool_call>', "Unknown tool 'python'"),
        ('<tool_call>{"name": "bash", "arguments": {}}</tool_call>', "non-empty string argument 'command'"),
        ('<tool_call>{"name": "str_replace_editor", "arguments": {"command": "explode", "path": "a"}}</tool_call>',
         "one of: view"),
        ('<tool_call>{"name": "str_replace_editor", "arguments": {"command": "create", "path": "a"}}</tool_call>',
         "file_text"),
        ("I think the bug is in foo.py.", "No tool call found"),
        ("", "empty"),
    ],
)
def test_malformed_turns_get_a_clear_error(text, message):
    parsed = parse_turn(text_turn(text))
    assert not parsed.ok
    assert message in parsed.error
    assert "<tool_call>" in parsed.error  # the error shows the expected format


def test_fenced_bash_block_is_the_last_fallback():
    parsed = parse_turn(text_turn("Run the tests:\n```bash\npytest -x\n```\n"))
    assert parsed.ok and parsed.source == "bash_block"
    assert parsed.action == ToolCall(name="bash", arguments={"command": "pytest -x"})
    python_block = parse_turn(text_turn("```python\nprint(1)\n```"))
    assert not python_block.ok


def test_tool_call_mentioned_inside_think_block_is_ignored():
    text = "<think>maybe <tool_call>{bad</tool_call></think>\n```bash\nls\n```"
    parsed = parse_turn(text_turn(text))
    assert parsed.ok and parsed.action.arguments == {"command": "ls"}


def test_stray_tool_call_tag_inside_think_does_not_keep_the_real_call_in_the_prose():
    call = '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>'
    text = f"<think>should I emit <tool_call> now?</think>\nListing.\n{call}"
    parsed = parse_turn(text_turn(text))
    assert parsed.ok and parsed.action == ToolCall(name="bash", arguments={"command": "ls"})
    prose = strip_tool_call_blocks(text)
    assert prose == "<think>should I emit <tool_call> now?</think>\nListing."
    assert call not in prose


def test_tool_call_text_takes_precedence_over_bash_block():
    text = '```bash\nrm -rf /\n```\n<tool_call>{"name": "submit", "arguments": {}}</tool_call>'
    assert parse_turn(text_turn(text)).action.name == "submit"


def test_validate_call_checks_argument_types():
    assert validate_call(ToolCall(name="str_replace_editor", arguments={
        "command": "insert", "path": "a", "insert_line": "x", "new_str": "y"})) is not None
    assert validate_call(ToolCall(name="str_replace_editor", arguments={
        "command": "view", "path": "a", "view_range": [1]})) is not None
    assert validate_call(ToolCall(name="str_replace_editor", arguments={
        "command": "str_replace", "path": "a", "old_str": 3})) is not None
    assert validate_call(ToolCall(name="str_replace_editor", arguments={
        "command": "insert", "path": "a", "insert_line": 3, "new_str": "y"})) is None


def test_parse_blocks_returns_calls_before_an_error():
    calls, error = parse_tool_call_blocks(
        '<tool_call>{"name": "submit", "arguments": {}}</tool_call><tool_call>{oops}</tool_call>'
    )
    assert [c.name for c in calls] == ["submit"]
    assert "Tool call #2" in error
