"""Rejection-sampling fine-tuning (RFT) on teacher trajectories.

Keeps the trajectories that resolved their task (rejection sampling over `swerve
teach` output), tokenises each with the student's own chat template and marks the
assistant tokens (`swerve.agents.trajectory.assistant_token_mask`), and trains a
LoRA adapter on the attention and MLP projections with TRL's `SFTTrainer`. The
dataset is handed over pre-tokenised with an `assistant_masks` column, from which
TRL builds labels with -100 on every non-assistant token: the loss covers the
assistant's turns only, also for templates (Qwen3's among them) that have no
`{% generation %}` markers for TRL's own `assistant_only_loss`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from swerve.rl.trainer import DEFAULT_LORA_TARGETS
from swerve.schema import Trajectory


@dataclass
class RFTConfig:
    """Settings of `train_rft`; saved beside the adapter as `rft_config.json`."""

    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = DEFAULT_LORA_TARGETS
    learning_rate: float = 2e-4
    epochs: float = 1.0
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    max_length: int = 8192
    seed: int = 0
    require_submitted: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def load_teacher_trajectories(source: str | os.PathLike) -> list[Trajectory]:
    """Trajectories from `swerve teach`/`swerve run` output: a run directory, its
    teacher/ folder, or a trajectories JSONL file."""
    from swerve.agents.trajectory import read_trajectories

    path = Path(source)
    candidates = [path] if path.is_file() else [
        path / "teacher" / "trajectories.jsonl", path / "trajectories.jsonl"
    ]
    for candidate in candidates:
        if candidate.is_file():
            return read_trajectories(candidate)
    raise FileNotFoundError(
        f"no trajectories at {path}: pass a trajectories .jsonl file or a `swerve teach --out` directory"
    )


def select_resolved(trajectories: list[Trajectory], *, require_submitted: bool = True) -> list[Trajectory]:
    """Rejection sampling: the trajectories that were graded resolved."""
    from swerve.agents.teach import keep_for_teaching

    return [t for t in trajectories if keep_for_teaching(t, require_submitted)]


def build_rft_dataset(trajectories: list[Trajectory], tokenizer: Any, max_length: int):
    """Pre-tokenised rows (`input_ids`, `assistant_masks`), truncated to `max_length`;
    rows left without any assistant token (the prompt alone fills `max_length`) are dropped."""
    from swerve.agents.trajectory import to_sft_dataset

    dataset = to_sft_dataset(trajectories, tokenizer=tokenizer)

    def truncate(row):
        return {"input_ids": row["input_ids"][:max_length], "assistant_masks": row["assistant_masks"][:max_length]}

    dataset = dataset.map(truncate).filter(lambda row: 1 in row["assistant_masks"])
    return dataset.select_columns(["input_ids", "assistant_masks"])


def train_rft(
    model_path: str | os.PathLike,
    teacher_data: str | os.PathLike | list[Trajectory],
    out_dir: str | os.PathLike,
    config: RFTConfig | None = None,
) -> Path:
    """Fine-tune a LoRA adapter of `model_path` on the resolved teacher trajectories;
    returns the adapter folder (loadable with `peft.PeftModel.from_pretrained`)."""
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from swerve.fileio import atomic_write_json

    config = config or RFTConfig()
    trajectories = teacher_data if isinstance(teacher_data, list) else load_teacher_trajectories(teacher_data)
    kept = select_resolved(trajectories, require_submitted=config.require_submitted)
    if not kept:
        raise ValueError(
            f"none of the {len(trajectories)} teacher trajectories is resolved; RFT trains only on resolved ones "
            "(run `swerve teach` with a stronger teacher, or check the grades)"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dataset = build_rft_dataset(kept, tokenizer, config.max_length)
    if len(dataset) == 0:
        raise ValueError(
            f"cut to max_length={config.max_length} tokens, none of the {len(kept)} resolved trajectories keeps an "
            "assistant token (the prompt alone is longer); raise max_length (--max-length)"
        )
    model = AutoModelForCausalLM.from_pretrained(str(model_path))
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=[t for t in config.lora_targets if t in present],
        task_type="CAUSAL_LM",
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    args = SFTConfig(
        output_dir=str(out / "checkpoints"),
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_length=config.max_length,
        seed=config.seed,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not _has_cuda(),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora)
    result = trainer.train()
    adapter = out / "adapter"
    trainer.model.save_pretrained(str(adapter))
    tokenizer.save_pretrained(str(adapter))
    settings = asdict(config)
    settings["lora_targets"] = list(config.lora_targets)
    atomic_write_json(
        out / "rft_config.json",
        {
            "trainer": "rft",
            "base_model": str(model_path),
            "trajectories": len(trajectories),
            "kept_resolved": [t.instance_id for t in kept],
            "training_loss": getattr(result, "training_loss", None),
            "log_history": trainer.state.log_history,
            **settings,
        },
    )
    return adapter


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
