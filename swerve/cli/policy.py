"""`swerve policy ...`: try a policy spec on one prompt; build the tiny test model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from swerve.cli import app

policy_app = typer.Typer(help="Model-backed policies: check a spec, build the tiny test model.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
console = Console(stderr=True)


@policy_app.command("try")
def try_policy(
    spec: str = typer.Argument(..., help="policy spec, e.g. 'openai:MODEL@http://127.0.0.1:8000/v1?max_tokens=64' or 'hf:tiny'"),
    prompt: str = typer.Option("List the files in the repository.", "--prompt", help="the user message"),
    tools: bool = typer.Option(True, "--tools/--no-tools", help="offer swerve's agent tools (bash, editor, submit)"),
    full: bool = typer.Option(False, "--full", help="print token ids and logprobs in full (default: counts only)"),
) -> None:
    """Send one user message through SPEC and print the completion as JSON (checks a server or model before a run).

    Example: swerve policy try 'hf:tiny?max_new_tokens=16'
    """
    from swerve.agents.policies import make_policy
    from swerve.errors import SwerveError

    try:
        policy = make_policy(spec)
        offered = []
        if tools:
            from swerve.agents.tools import tool_schemas

            offered = tool_schemas()
        completion = policy.act([{"role": "user", "content": prompt}], offered)
    except (SwerveError, ValueError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    shown = completion.model_dump()
    if not full:
        for key in ("prompt_token_ids", "completion_token_ids", "logprobs"):
            if shown[key] is not None:
                shown[key] = f"<{len(shown[key])} values>"
    print(json.dumps({"policy": policy.describe(), "completion": shown}, indent=2, default=str))


@policy_app.command("tiny-model")
def tiny_model(
    out: Optional[Path] = typer.Option(None, "--out", help="folder to write (default: swerve's cache)"),
    hidden_size: int = typer.Option(64, "--hidden-size", help="model width"),
    layers: int = typer.Option(2, "--layers", help="transformer layers"),
    heads: int = typer.Option(4, "--heads", help="attention heads"),
    kv_heads: int = typer.Option(2, "--kv-heads", help="key/value heads"),
    seed: int = typer.Option(0, "--seed", help="weight initialisation seed (same seed, same files)"),
) -> None:
    """Build (or reuse) the tiny random Qwen3 test model and print its folder.

    Example: transformers serve "$(swerve policy tiny-model)" --host 127.0.0.1 --port 8011
    """
    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    try:
        folder = make_tiny_qwen3(out, hidden_size=hidden_size, layers=layers, heads=heads, kv_heads=kv_heads, seed=seed)
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/] --out {out}: {escape(str(exc))}" if isinstance(exc, OSError)
                      else f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    print(folder)
