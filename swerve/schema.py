"""The shared vocabulary of swerve: tasks, predictions, command results, grades,
steps and trajectories.

Every other package speaks in these models. They are pydantic models so that bad
input fails early with a message naming the field; list fields that SWE-bench
publishes as JSON strings (FAIL_TO_PASS, PASS_TO_PASS) are accepted either way.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_WORKDIR = "/testbed"


def _as_list(value: Any) -> Any:
    """SWE-bench stores list fields as JSON strings; accept both forms."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"expected a JSON list of test names, got {text[:80]!r}") from exc
        return parsed
    return value


class Task(BaseModel):
    """One SWE-bench-style task (a superset of a SWE-bench row).

    SWE-bench's own fields keep their names. swerve's additions all have defaults,
    so a published SWE-bench row is a valid Task as it stands.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    instance_id: str = Field(min_length=1)
    repo: str = Field(min_length=1, description="owner/name, as in SWE-bench")
    base_commit: str = Field(
        default="",
        description="commit the task starts from; empty means the source's own commit",
    )
    patch: str = Field(default="", description="the gold fix")
    test_patch: str = Field(default="", description="adds or changes the hidden tests")
    problem_statement: str = ""
    hints_text: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    created_at: str = ""
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)

    # swerve's own fields
    repo_source: str = Field(
        default="",
        description=(
            "where the source comes from: a git URL, a local path, or pypi:NAME==VERSION; "
            "empty means the GitHub URL of `repo`"
        ),
    )
    base_patch: str = Field(
        default="",
        description="applied to the source's commit to produce base_commit (minted tasks)",
    )
    source_commit: str = Field(
        default="",
        description="for git sources with a base_patch: the commit the patch applies to (pins the source)",
    )
    install_cmd: str = Field(
        default="",
        description="shell command that installs the repository in its environment; empty: editable pip install",
    )
    test_cmd: str = Field(
        default="",
        description="command that runs the tests, test ids appended; empty: pytest",
    )
    test_requirements: list[str] = Field(
        default_factory=lambda: ["pytest"],
        description="extra requirements for running tests (pip specifiers)",
    )
    pytest_plugins: list[str] = Field(
        default_factory=list,
        description="third-party pytest plugins the tests need (autoloading is otherwise off)",
    )
    python: str = Field(default="3", description="python version inside the environment")
    pre_install: list[str] = Field(
        default_factory=list,
        description="shell commands run in the environment before install_cmd (a SWE-bench spec's pre_install)",
    )
    env_requirements: list[str] = Field(
        default_factory=list,
        description=(
            "pinned requirements of the environment (pip specifiers): a SWE-bench spec's packages and "
            "pip_packages plus its requirements file read at environment_setup_commit"
        ),
    )
    eval_commands: list[str] = Field(
        default_factory=list,
        description="shell lines run before the test command, in the same shell (a SWE-bench spec's eval_commands)",
    )
    test_directives: list[str] = Field(
        default_factory=list,
        description=(
            "arguments appended to test_cmd (test files, or Django test labels); empty: pytest runs the "
            "files of FAIL_TO_PASS/PASS_TO_PASS, else those the test patch touches; other runners run "
            "test_cmd as given"
        ),
    )
    spec_source: str = Field(
        default="",
        description="where the environment fields came from (e.g. the SWE-bench spec table and its version)",
    )
    spec_error: str = Field(
        default="",
        description="why no SWE-bench spec could be applied to this row; evaluating it fails with this line",
    )
    workdir: str = DEFAULT_WORKDIR
    difficulty: dict[str, Any] = Field(default_factory=dict)

    # SWE-bench 5.x rows carry these
    image: str = ""
    eval_script: str = ""
    log_parser: str = ""
    eval_type: str = ""

    @field_validator(
        "FAIL_TO_PASS", "PASS_TO_PASS", "test_requirements", "pytest_plugins", "pre_install", "env_requirements",
        "eval_commands", "test_directives", mode="before",
    )
    @classmethod
    def _json_lists(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return "" if value is None else str(value)

    @model_validator(mode="after")
    def _default_source(self) -> "Task":
        if not self.repo_source:
            self.repo_source = f"https://github.com/{self.repo}.git"
        return self

    @property
    def source_kind(self) -> Literal["pypi", "git", "path"]:
        if self.repo_source.startswith("pypi:"):
            return "pypi"
        if "://" in self.repo_source or self.repo_source.startswith("git@"):
            return "git"
        return "path"


class Prediction(BaseModel):
    """A model's patch for one task, exactly as SWE-bench reads predictions."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    instance_id: str = Field(min_length=1)
    model_name_or_path: str = "unknown"
    model_patch: str | None = None


class ExecResult(BaseModel):
    """What one command in an environment did."""

    output: str = Field(description="stdout and stderr interleaved; head + tail when truncated")
    exit_code: int
    duration_s: float = 0.0
    timed_out: bool = False
    truncated: bool = False
    output_bytes: int = Field(default=0, description="size of the full output")
    full_output_path: str | None = Field(
        default=None, description="host file holding the full output when truncated"
    )
    shell_restarted: bool = Field(
        default=False,
        description="the persistent shell had to be restarted (cwd and variables were lost)",
    )

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class TestStatus(str, Enum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    ERROR = "ERROR"
    XFAIL = "XFAIL"

    @property
    def counts_as_pass(self) -> bool:
        return self in (TestStatus.PASSED, TestStatus.XFAIL)


class FailureClass(str, Enum):
    """Why an instance did not resolve. Infra failures are never the model's result."""

    NONE = "none"
    EMPTY_PATCH = "empty_patch"
    APPLY_FAILED = "apply_failed"
    PATCH_REFUSED = "patch_refused"
    TIMEOUT = "timeout"
    TEST_ERROR = "test_error"
    TESTS_FAILED = "tests_failed"
    INFRA = "infra"


class Grade(BaseModel):
    """The verdict on one instance, with SWE-bench's report keys among swerve's own."""

    model_config = ConfigDict(extra="allow")

    instance_id: str
    resolved: bool = False
    patch_is_None: bool = False
    patch_exists: bool = False
    patch_successfully_applied: bool = False
    tests_status: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    test_statuses: dict[str, TestStatus] = Field(default_factory=dict)
    apply_method: str | None = None
    failure_class: FailureClass = FailureClass.NONE
    failure_reason: str = ""
    tests_touched: list[str] = Field(default_factory=list)
    tamper_flags: list[str] = Field(default_factory=list)
    flaky_tests: list[str] = Field(default_factory=list)
    durations: dict[str, float] = Field(default_factory=dict)
    patch_hash: str = ""
    test_source: str = Field(default="", description="where statuses came from: junit, stdout parser, eval script")
    test_exit_code: int | None = None
    environment: dict[str, Any] = Field(default_factory=dict, description="backend, image, digest")
    model_name_or_path: str = ""

    @property
    def fail_to_pass_fraction(self) -> float:
        ok = self.tests_status.get("FAIL_TO_PASS", {})
        total = len(ok.get("success", [])) + len(ok.get("failure", []))
        return len(ok.get("success", [])) / total if total else 0.0


class ToolCall(BaseModel):
    """One parsed action: a tool name and its arguments."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Completion(BaseModel):
    """What a policy returned for one turn."""

    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)


class Step(BaseModel):
    """One turn of an episode: what the model said, what ran, what came back."""

    model_config = ConfigDict(extra="allow")

    index: int
    assistant: str = Field(default="", description="the assistant message text as generated")
    action: ToolCall | None = None
    format_error: str | None = None
    observation: str = ""
    exit_code: int | None = None
    model_time_s: float = 0.0
    env_time_s: float = 0.0
    diff: str = Field(default="", description="the repository diff after this step")
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    native_tool_calls: list[dict[str, Any]] | None = None
    parse_source: str | None = Field(default=None, description="how the action was found: native, text (a <tool_call> block) or bash_block")
    finish_reason: str | None = None
    usage: dict[str, int] = Field(default_factory=dict)


class Trajectory(BaseModel):
    """One episode on one task: the manifest, the steps, the outcome."""

    model_config = ConfigDict(extra="allow")

    instance_id: str
    manifest: dict[str, Any] = Field(default_factory=dict)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    final_patch: str = ""
    exit_status: str = Field(
        default="", description="submitted, step_limit, token_limit, time_limit, format_error, repeated_action, infra_error"
    )
    grade: Grade | None = None
    report_path: str | None = None
    stats: dict[str, Any] = Field(default_factory=dict, description="steps, tokens, timings, format errors")
