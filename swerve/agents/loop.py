"""The edit-execute-retry loop: `run_episode(task, env, policy, limits) -> Trajectory`.

The same code drives benchmark runs, teacher-trajectory generation and RL
rollouts. Each turn the policy sees the conversation and the tool schemas and
returns one completion; the loop parses one action from it, runs it in the
environment, and appends the observation. Every way an episode can end is
recorded in `Trajectory.exit_status`, and every ending submits the repository's
current diff. Infrastructure failures (`InfraError`) propagate: they are never
recorded as the model's result.

The prompts (Jinja templates), the tools offered, the parser and the limits come from
an agent configuration (swerve.agents.config; the shipped default is
swerve/agents/configs/default.yaml); `EpisodeLimits` holds the limits.

`Episode` is that loop one turn at a time (`start`, `turn`, `limit_reached`,
`finish`); `run_episode` drives it with a Policy and swerve.rl.gym_env.SweEnv with the
turns a trainer generates.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import swerve
from swerve.agents.editor import StrReplaceEditor
from swerve.agents.tools import (
    ParsedTurn,
    canonical_action,
    openai_tool_call,
    parse_turn,
    strip_tool_call_blocks,
)
from swerve.errors import SwerveError
from swerve.schema import Completion, Step, Task, ToolCall, Trajectory

@dataclass(frozen=True)
class EpisodeLimits:
    """When an episode stops, and how much the model sees of each observation.

    `max_total_tokens` counts prompt + completion tokens over all model calls (what an
    API bills), using the usage the policy reports (or its token ids); None = no limit.
    `keep_malformed_turns` keeps unparseable turns and their error message in the
    model's history (they are always kept in the trajectory).
    """

    max_steps: int = 50
    max_total_tokens: int | None = None
    wall_clock_s: float | None = 1800.0
    command_timeout_s: float = 120.0
    max_repeated_actions: int = 4
    max_format_errors: int = 3
    observation_limit_bytes: int = 16_000
    keep_malformed_turns: bool = True


class EpisodeCancelled(SwerveError):
    """The caller asked the episode to stop (a batch being interrupted); not a result."""


def build_messages(task: Task, workdir: str, limits: EpisodeLimits, agent: Any = None) -> list[dict[str, Any]]:
    """The system and user messages that open an episode, rendered from `agent`'s templates
    (a swerve.agents.config.AgentConfig; default: the shipped configs/default.yaml)."""
    from swerve.agents.config import default_agent_config

    return (agent or default_agent_config()).render(task, workdir, limits)


def truncate_observation(text: str, limit_bytes: int) -> str:
    """Keep the head and tail of `text` within `limit_bytes` (UTF-8), saying how much was cut."""
    data = text.encode("utf-8", errors="replace")
    if limit_bytes <= 0 or len(data) <= limit_bytes:
        return text
    keep = max(limit_bytes - 120, 64)
    head = data[: keep // 2].decode("utf-8", errors="ignore")
    tail = data[len(data) - keep // 2 :].decode("utf-8", errors="ignore")
    cut = len(data) - len(head.encode()) - len(tail.encode())
    return f"{head}\n[... {cut} of {len(data)} bytes cut from the middle of this output ...]\n{tail}"


def run_episode(
    task: Task,
    env: Any,
    policy: Any,
    limits: EpisodeLimits | None = None,
    *,
    cancel: Any = None,
    messages: list[dict[str, Any]] | None = None,
    agent: Any = None,
) -> Trajectory:
    """Run one episode of `policy` on `task` in `env` and return its trajectory.

    `cancel` (a threading.Event, optional) stops the episode between steps by raising
    EpisodeCancelled. `messages` overrides the opening system/user messages. `agent`
    (a swerve.agents.config.AgentConfig) gives the prompts, tools and parser; `limits`
    defaults to its limits.
    """
    limits = limits or (agent.limits if agent is not None else EpisodeLimits())
    episode = Episode(task, env, limits, policy=policy, agent=agent)
    episode.start(messages)
    status = None
    for _ in range(limits.max_steps):
        if cancel is not None and cancel.is_set():
            raise EpisodeCancelled(f"episode on {task.instance_id} was cancelled")
        status = episode.limit_reached()
        if status:
            break
        began = time.monotonic()
        completion = policy.act(list(episode.messages), episode.tools)
        status = episode.turn(completion, model_time_s=time.monotonic() - began)
        if status:
            break
    return episode.finish(status or "step_limit")


class Episode:
    """One episode driven a turn at a time: the history, counters and editor undo stack.

    `run_episode` drives it with a Policy; swerve.rl.gym_env.SweEnv drives it with turns a
    trainer generated, so both share every rule of the loop. Call `start()` once, then
    per assistant completion `turn()` until it or `limit_reached()` returns an exit
    status, then `finish(status)` for the Trajectory.
    `policy` is only described in the manifest (its `name` and `describe()`); when the
    turns come from elsewhere, leave it out and pass `policy_info` to describe them.
    `agent` (a swerve.agents.config.AgentConfig, default the shipped default) gives the
    prompt templates, the tools offered and the parser; `limits` stay separate.
    """

    def __init__(
        self,
        task: Task,
        env: Any,
        limits: EpisodeLimits | None = None,
        *,
        policy: Any = None,
        policy_info: dict[str, Any] | None = None,
        agent: Any = None,
    ) -> None:
        from swerve.agents.config import default_agent_config

        self.agent = agent or default_agent_config()
        self.task = task
        self.env = env
        self.limits = limits or EpisodeLimits()
        self.policy = policy
        self.policy_info = dict(policy_info or {"policy": "external"})
        self.workdir = getattr(getattr(env, "info", None), "workdir", "") or task.workdir
        self.editor = StrReplaceEditor(env, root=self.workdir)
        self.tools = self.agent.tool_schemas()
        self.messages: list[dict[str, Any]] = []
        self.steps: list[Step] = []
        self.total_tokens = 0
        self.model_time = 0.0
        self.env_time = 0.0
        self.format_errors_in_a_row = 0
        self.format_errors = 0
        self.last_action = ""
        self.repeats = 0
        self.last_diff = ""
        self.started = time.monotonic()
        self.created_at = ""
        self.deadline: float | None = None

    def start(self, messages: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Open the episode (clock, history); returns the initial messages.

        `messages` replaces the default system/user opening built from the task.
        """
        self.started = time.monotonic()
        if self.limits.wall_clock_s is not None:
            self.deadline = self.started + self.limits.wall_clock_s
        self.created_at = datetime.now(timezone.utc).isoformat()
        self.messages = list(messages) if messages else build_messages(self.task, self.workdir, self.limits, self.agent)
        return list(self.messages)

    def limit_reached(self) -> str | None:
        """The exit status of the first limit the episode has hit (steps, wall clock, tokens), or None."""
        if len(self.steps) >= self.limits.max_steps:
            return "step_limit"
        if self.limits.wall_clock_s is not None and time.monotonic() - self.started >= self.limits.wall_clock_s:
            return "time_limit"
        if self.limits.max_total_tokens is not None and self.total_tokens >= self.limits.max_total_tokens:
            return "token_limit"
        return None

    def turn(self, completion: Completion, *, model_time_s: float = 0.0) -> str | None:
        """Apply one assistant turn: parse it, run its tool, append the observation.

        Returns the exit status when this turn ends the episode (submitted, too many
        format errors or repeats), else None. `model_time_s` is how long the model took
        to produce the turn (recorded in the step and the stats).
        """
        index = len(self.steps)
        self.model_time += model_time_s
        self.total_tokens += _tokens_used(completion)
        parsed = parse_turn(completion, self.agent.tools, fenced_bash=self.agent.fenced_bash)
        step = Step(
            index=index,
            assistant=completion.text,
            model_time_s=round(model_time_s, 4),
            prompt_token_ids=completion.prompt_token_ids,
            completion_token_ids=completion.completion_token_ids,
            logprobs=completion.logprobs,
            native_tool_calls=[call.model_dump() for call in completion.tool_calls],
            parse_source=parsed.source,
            finish_reason=completion.finish_reason,
            usage=dict(completion.usage),
        )
        self.steps.append(step)
        if not parsed.ok:
            return self._format_error(step, completion, parsed)
        self.format_errors_in_a_row = 0
        action = parsed.action
        step.action = action
        key = canonical_action(action)
        self.repeats = self.repeats + 1 if key == self.last_action else 1
        self.last_action = key
        if action.name == "submit":
            step.observation = "Submitted."
            step.exit_code = 0
            step.diff = self.last_diff = self.env.diff()
            self._record_turn(index, completion, parsed, step.observation)
            return "submitted"
        began = time.monotonic()
        observation, exit_code = self._execute(action)
        step.env_time_s = round(time.monotonic() - began, 4)
        self.env_time += step.env_time_s
        if parsed.ignored:
            observation = (
                f"[Only the first of your {1 + len(parsed.ignored)} tool calls was run; "
                "call one tool per turn.]\n" + observation
            )
        step.observation = truncate_observation(observation, self.limits.observation_limit_bytes)
        step.exit_code = exit_code
        step.diff = self.last_diff = self.env.diff()
        self._record_turn(index, completion, parsed, step.observation)
        if self.limits.max_repeated_actions and self.repeats >= self.limits.max_repeated_actions:
            return "repeated_action"
        return None

    def finish(self, status: str) -> Trajectory:
        """Submit the repository's current diff and build the episode's Trajectory.

        After a `submit` turn nothing has run since its diff was taken, so that diff is reused.
        """
        final_patch = self.last_diff if status == "submitted" else self.env.diff()
        return Trajectory(
            instance_id=self.task.instance_id,
            manifest=self._manifest(),
            messages=self.messages,
            tools=self.tools,
            steps=self.steps,
            final_patch=final_patch,
            exit_status=status,
            stats={
                "steps": len(self.steps),
                "total_tokens": self.total_tokens,
                "format_errors": self.format_errors,
                "model_time_s": round(self.model_time, 3),
                "env_time_s": round(self.env_time, 3),
                "wall_time_s": round(time.monotonic() - self.started, 3),
            },
        )

    def _execute(self, action: ToolCall) -> tuple[str, int]:
        if action.name == "bash":
            timeout = self.limits.command_timeout_s
            if self.deadline is not None:
                timeout = min(timeout, max(1.0, self.deadline - time.monotonic()))
            result = self.env.exec(action.arguments["command"], timeout=timeout)
            notes = []
            if result.timed_out:
                notes.append(f"[The command timed out after {timeout:g}s and was killed.]")
            if result.shell_restarted:
                notes.append("[The shell was restarted: the working directory and variables were reset.]")
            if result.exit_code != 0 and not result.timed_out:
                notes.append(f"[exit code {result.exit_code}]")
            output = result.output if result.output.strip() else "(no output)"
            return "\n".join([output.rstrip("\n"), *notes]), result.exit_code
        outcome = self.editor.run(action.arguments)
        return outcome.output, 0 if outcome.ok else 1

    def _format_error(self, step: Step, completion: Completion, parsed: ParsedTurn) -> str | None:
        self.format_errors += 1
        self.format_errors_in_a_row += 1
        step.format_error = parsed.error
        step.observation = f"Format error: {parsed.error}"
        step.diff = self.last_diff
        if self.limits.keep_malformed_turns:
            self._record_turn(step.index, completion, parsed, step.observation)
        if self.format_errors_in_a_row >= self.limits.max_format_errors:
            return "format_error"
        return None

    def _record_turn(self, index: int, completion: Completion, parsed: ParsedTurn, observation: str) -> None:
        """Append the assistant turn and its observation in OpenAI chat format.

        Tool calls (native or parsed from <tool_call> text) become `tool_calls` with one
        `tool` reply per call, as OpenAI-compatible servers and chat templates expect; a
        fenced bash block or an unparseable text turn stays plain text with a user reply.
        """
        if completion.tool_calls:
            calls = list(completion.tool_calls)
            content = completion.text or ""
        elif parsed.source == "text" and parsed.action is not None:
            calls = [parsed.action, *parsed.ignored]
            content = strip_tool_call_blocks(completion.text or "")
        else:
            self.messages.append({"role": "assistant", "content": completion.text or ""})
            self.messages.append({"role": "user", "content": observation})
            return
        entries = [openai_tool_call(call, call.id or f"call_{index}_{n}") for n, call in enumerate(calls)]
        self.messages.append({"role": "assistant", "content": content, "tool_calls": entries})
        for n, entry in enumerate(entries):
            reply = observation if n == 0 else "Not run: only one tool call per turn is executed."
            self.messages.append(
                {"role": "tool", "tool_call_id": entry["id"], "name": entry["function"]["name"], "content": reply}
            )

    def _manifest(self) -> dict[str, Any]:
        if self.policy is not None:
            policy_name = getattr(self.policy, "name", type(self.policy).__name__)
            described = dict(self.policy.describe() or {})
        else:
            policy_name, described = "external", dict(self.policy_info)
        info = getattr(self.env, "info", None)
        environment = {}
        if info is not None:
            environment = {
                key: getattr(info, key, "")
                for key in ("backend", "image", "image_digest", "workdir", "base_commit")
            }
        return {
            "swerve_version": swerve.__version__,
            "created_at": self.created_at,
            "instance_id": self.task.instance_id,
            "policy_name": policy_name,
            "policy": described,
            "seed": described.get("seed"),
            "environment": environment,
            "limits": asdict(self.limits),
            "agent_config": self.agent.describe(),
            "tools": [tool["function"]["name"] for tool in self.tools],
        }


def _tokens_used(completion: Completion) -> int:
    usage = completion.usage or {}
    if usage.get("total_tokens"):
        return int(usage["total_tokens"])
    if usage.get("prompt_tokens") or usage.get("completion_tokens"):
        return int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0))
    return len(completion.prompt_token_ids or []) + len(completion.completion_token_ids or [])
