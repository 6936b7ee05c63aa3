"""The agent's action space and the parsing of model output into actions.

Three tools, described as OpenAI function schemas: `bash` (a persistent shell in
the environment), `str_replace_editor` (view / create / str_replace / insert /
undo_edit) and `submit`. Models reach them three ways, tried in this order:

1. native tool calls, already parsed by the policy (`Completion.tool_calls`);
2. the Qwen3 / Hermes text format ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``;
3. a single fenced ```bash block, as a last fallback for plain chat models.

One action per turn: when a turn holds several tool calls the first one runs and
the observation tells the model the others were ignored (`ParsedTurn.ignored`).
That keeps every step a single (action, observation) pair, which is what
trajectories, replay and RL credit assignment need.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from swerve.schema import Completion, ToolCall

EDITOR_COMMANDS = ("view", "create", "str_replace", "insert", "undo_edit")

BASH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": (
            "Run a bash command in a persistent shell inside the repository's environment. "
            "The working directory and exported variables persist between calls. "
            "There is no network access. Long outputs are truncated (head and tail kept); "
            "commands that run too long are killed."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The bash command to run."},
            },
            "required": ["command"],
        },
    },
}

EDITOR_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "str_replace_editor",
        "description": (
            "View, create and edit files in the repository.\n"
            "* `view` shows a file with line numbers (optionally only `view_range`), or lists a directory.\n"
            "* `create` writes a new file; it refuses to overwrite an existing one.\n"
            "* `str_replace` replaces `old_str` with `new_str`; `old_str` must match exactly one place "
            "in the file, whitespace included.\n"
            "* `insert` inserts `new_str` after line `insert_line` (0 inserts at the top).\n"
            "* `undo_edit` reverts the last edit made to `path` by this tool.\n"
            "Paths are absolute or relative to the repository root and must stay inside the repository."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "enum": list(EDITOR_COMMANDS), "description": "The editor command."},
                "path": {"type": "string", "description": "File or directory, inside the repository."},
                "file_text": {"type": "string", "description": "`create`: the content of the new file."},
                "old_str": {"type": "string", "description": "`str_replace`: the exact text to replace."},
                "new_str": {
                    "type": "string",
                    "description": "`str_replace`: the replacement (default empty); `insert`: the text to insert.",
                },
                "insert_line": {
                    "type": "integer",
                    "description": "`insert`: the line number after which `new_str` goes (0 = top of file).",
                },
                "view_range": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "`view`: [first, last] line numbers, 1-based and inclusive; last = -1 means to the end.",
                },
            },
            "required": ["command", "path"],
        },
    },
}

SUBMIT_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "submit",
        "description": (
            "Finish the task. The repository's current changes (its git diff against the base "
            "commit) are submitted as your patch. Call it once you have verified the fix."
        ),
        "parameters": {"type": "object", "properties": {}, "required": []},
    },
}

TOOLS: list[dict[str, Any]] = [BASH_TOOL, EDITOR_TOOL, SUBMIT_TOOL]
TOOL_NAMES = tuple(tool["function"]["name"] for tool in TOOLS)

_REQUIRED_BY_COMMAND = {
    "view": (),
    "create": ("file_text",),
    "str_replace": ("old_str",),
    "insert": ("insert_line", "new_str"),
    "undo_edit": (),
}

_THINK_BLOCK = re.compile(r"<think>.*?(</think>|\Z)", re.DOTALL)
_TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL_CLOSE = "</tool_call>"
_BASH_FENCE = re.compile(r"```(?:bash|sh|shell|console)[ \t]*\n(.*?)```", re.DOTALL)



def format_help(tools: tuple[str, ...] | list[str] = TOOL_NAMES) -> str:
    """How to call a tool, naming the enabled `tools` (shown in the system prompt and format errors)."""
    return (
        "Call exactly one tool per turn, either as a native tool call or as\n"
        '<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>\n'
        f"Available tools: {', '.join(tools)}."
    )


FORMAT_HELP = format_help(TOOL_NAMES)


def tool_schemas() -> list[dict[str, Any]]:
    """A fresh copy of the tool schemas (callers may mutate theirs)."""
    return json.loads(json.dumps(TOOLS))


@dataclass
class ParsedTurn:
    """The outcome of parsing one assistant turn.

    `action` is the call to execute (None on a format error); `source` says how it
    was found ("native", "text", "bash_block"); `ignored` holds further calls of the
    same turn that are not executed; `error` explains a malformed turn to the model.
    """

    action: ToolCall | None = None
    source: str = ""
    ignored: list[ToolCall] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.action is not None


def parse_turn(
    completion: Completion, tools: tuple[str, ...] | list[str] = TOOL_NAMES, *, fenced_bash: bool = True
) -> ParsedTurn:
    """Turn a policy's completion into one action, or a clear format error.

    `tools` are the enabled tool names (a call to another is a format error); `fenced_bash`
    allows the last-resort fenced ```bash block (only when bash is enabled).
    """
    tools = tuple(tools)
    help_text = format_help(tools)
    if completion.tool_calls:
        calls = [_normalise(call) for call in completion.tool_calls]
        return _first_valid(calls, source="native", tools=tools)
    text = completion.text or ""
    calls, _, error = _scan_tool_call_blocks(text)
    if error:
        return ParsedTurn(error=f"{error}\n{help_text}")
    if calls:
        return _first_valid(calls, source="text", tools=tools)
    prose = _THINK_BLOCK.sub("", text)
    blocks = [block for block in _BASH_FENCE.findall(prose) if block.strip()] if fenced_bash and "bash" in tools else []
    if blocks:
        calls = [ToolCall(name="bash", arguments={"command": block.strip("\n")}) for block in blocks]
        return _first_valid(calls, source="bash_block", tools=tools)
    if not prose.strip():
        return ParsedTurn(error=f"Your reply was empty: no tool call found.\n{help_text}")
    return ParsedTurn(error=f"No tool call found in your reply.\n{help_text}")


def parse_tool_call_blocks(text: str) -> tuple[list[ToolCall], str | None]:
    """Parse every ``<tool_call>{json}</tool_call>`` block in `text` outside ``<think>`` blocks.

    The JSON object is decoded with a real JSON decoder, so tags or braces inside
    string values (a command that prints "</tool_call>") cannot cut a call short.
    A missing closing tag is accepted at the very end of the text (generation often
    stops on it). Returns the calls parsed and the first error, if any.
    """
    calls, _, error = _scan_tool_call_blocks(text)
    return calls, error


def strip_tool_call_blocks(text: str) -> str:
    """The assistant's prose without the ``<tool_call>`` blocks that parsed (the calls go to `tool_calls`).

    It cuts exactly the blocks `parse_tool_call_blocks` turns into calls, so a call is
    never kept both in the prose and in `tool_calls`.
    """
    _, spans, _ = _scan_tool_call_blocks(text)
    kept, position = [], 0
    for start, end in spans:
        kept.append(text[position:start])
        position = end
    kept.append(text[position:])
    return "".join(kept).strip()


def _scan_tool_call_blocks(text: str) -> tuple[list[ToolCall], list[tuple[int, int]], str | None]:
    """The calls in `text`, the (start, end) span of each call's block, and the first error."""
    decoder = json.JSONDecoder()
    thinking = [match.span() for match in _THINK_BLOCK.finditer(text)]
    calls: list[ToolCall] = []
    spans: list[tuple[int, int]] = []
    position = 0
    while (start := _next_tool_call_open(text, position, thinking)) >= 0:
        number = len(calls) + 1
        cursor = start + len(_TOOL_CALL_OPEN)
        while cursor < len(text) and text[cursor].isspace():
            cursor += 1
        try:
            payload, end = decoder.raw_decode(text, cursor)
        except json.JSONDecodeError as exc:
            return calls, spans, f"Tool call #{number} is not valid JSON ({exc.msg} at character {exc.pos - cursor})."
        rest = text[end:]
        stripped = rest.lstrip()
        if stripped.startswith(_TOOL_CALL_CLOSE):
            position = end + (len(rest) - len(stripped)) + len(_TOOL_CALL_CLOSE)
        elif not stripped:
            position = len(text)
        else:
            return calls, spans, f"Tool call #{number} has text after its JSON object where {_TOOL_CALL_CLOSE} should be."
        if not isinstance(payload, dict):
            return calls, spans, f"Tool call #{number} must be a JSON object with 'name' and 'arguments'."
        try:
            calls.append(_call_from_payload(payload))
        except ValueError as exc:
            return calls, spans, f"Tool call #{number}: {exc}"
        spans.append((start, position))
    return calls, spans, None


def _next_tool_call_open(text: str, position: int, thinking: list[tuple[int, int]]) -> int:
    """Where the next ``<tool_call>`` tag outside the `thinking` spans starts, or -1."""
    while (start := text.find(_TOOL_CALL_OPEN, position)) >= 0:
        block_end = next((end for first, end in thinking if first <= start < end), None)
        if block_end is None:
            return start
        position = block_end
    return -1


def _call_from_payload(payload: dict[str, Any]) -> ToolCall:
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("missing 'name' (a string).")
    arguments = payload.get("arguments", payload.get("parameters", {}))
    return _normalise(ToolCall(name=name, arguments=_decode_arguments(arguments)))


def _decode_arguments(arguments: Any) -> Any:
    """OpenAI sends arguments as a JSON string; some models nest them as one too."""
    if isinstance(arguments, str):
        text = arguments.strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return arguments
    return {} if arguments is None else arguments


def _normalise(call: ToolCall) -> ToolCall:
    arguments = _decode_arguments(call.arguments) if not isinstance(call.arguments, dict) else call.arguments
    if isinstance(arguments, str):
        arguments = {"__unparsed__": arguments}
    return ToolCall(name=call.name, arguments=arguments, id=call.id)


def _first_valid(calls: list[ToolCall], source: str, tools: tuple[str, ...] = TOOL_NAMES) -> ParsedTurn:
    first, ignored = calls[0], calls[1:]
    error = validate_call(first, tools)
    if error:
        return ParsedTurn(error=f"{error}\n{format_help(tools)}", ignored=ignored, source=source)
    return ParsedTurn(action=first, source=source, ignored=ignored)


def validate_call(call: ToolCall, tools: tuple[str, ...] | list[str] = TOOL_NAMES) -> str | None:
    """A one-line explanation of what is wrong with `call`, or None when it is usable
    (`tools`: the enabled tool names)."""
    if call.name not in tools:
        return f"Unknown tool {call.name!r}; the tools are: {', '.join(tools)}."
    arguments = call.arguments
    if "__unparsed__" in arguments:
        return f"The arguments of {call.name!r} are not a JSON object: {str(arguments['__unparsed__'])[:200]!r}."
    if call.name == "bash":
        command = arguments.get("command")
        if not isinstance(command, str) or not command.strip():
            return "bash needs a non-empty string argument 'command'."
        return None
    if call.name == "submit":
        return None
    command = arguments.get("command")
    if command not in EDITOR_COMMANDS:
        return f"str_replace_editor needs 'command', one of: {', '.join(EDITOR_COMMANDS)} (got {command!r})."
    if not isinstance(arguments.get("path"), str) or not arguments["path"].strip():
        return f"str_replace_editor {command} needs a string argument 'path'."
    missing = [name for name in _REQUIRED_BY_COMMAND[command] if name not in arguments]
    if missing:
        return f"str_replace_editor {command} needs the argument(s): {', '.join(missing)}."
    for name in ("file_text", "old_str", "new_str"):
        if name in arguments and not isinstance(arguments[name], str):
            return f"str_replace_editor argument {name!r} must be a string."
    if "insert_line" in arguments and not _is_int(arguments["insert_line"]):
        return "str_replace_editor argument 'insert_line' must be an integer."
    view_range = arguments.get("view_range")
    if view_range is not None and (
        not isinstance(view_range, list) or len(view_range) != 2 or not all(_is_int(v) for v in view_range)
    ):
        return "str_replace_editor argument 'view_range' must be a list of two integers [first, last]."
    return None


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


def canonical_action(call: ToolCall) -> str:
    """A stable text form of an action, to detect a model repeating itself."""
    return json.dumps({"name": call.name, "arguments": call.arguments}, sort_keys=True, default=str)


def openai_tool_call(call: ToolCall, call_id: str) -> dict[str, Any]:
    """The assistant-message `tool_calls` entry (OpenAI chat format) for `call`."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
    }
