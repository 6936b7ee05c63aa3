"""Policy specs for the policies that need no model: `oracle`, `oracle-detours`,
`oracle-stochastic:p=P,repro=R`, `noop`, `replay:PATH`.

`scripted_policy(spec, task)` builds one for a task, or returns None when the spec
names something else (a model backend), so a registry can try it first. Kept
apart from the model backends so the scripted ones work without any model extra.
"""

from __future__ import annotations

from typing import Any

from swerve.schema import Task


def scripted_policy(spec: str, task: Task, *, seed: int = 0) -> Any | None:
    """The scripted policy `spec` names, built for `task`; None for any other spec."""
    kind, _, argument = spec.partition(":")
    if kind == "oracle":
        from swerve.agents.policies.oracle import OraclePolicy

        detours = argument in ("detours", "detour")
        return OraclePolicy(task, detours=detours, seed=seed)
    if kind == "oracle-detours":
        from swerve.agents.policies.oracle import OraclePolicy

        return OraclePolicy(task, detours=True, seed=seed)
    if kind == "oracle-stochastic":
        from swerve.agents.policies.stochastic import StochasticOraclePolicy, parse_stochastic_argument

        settings = parse_stochastic_argument(spec, argument)
        return StochasticOraclePolicy(task, p=settings.p, seed=seed, repro=settings.repro)
    if kind == "noop":
        from swerve.agents.policies.noop import NoopPolicy

        return NoopPolicy()
    if kind == "replay":
        if not argument:
            raise ValueError("policy spec 'replay' needs a file: use replay:PATH/TO/trajectories.jsonl")
        from swerve.agents.policies.replay import load_replay_policy

        return load_replay_policy(argument, task.instance_id)
    return None
