"""RFT: the loss mask covers the assistant turns and nothing else, and RFT on oracle
teacher trajectories (made by `swerve teach` in Docker) yields a loadable LoRA adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rl_fixtures import MESSAGES, TASKS_FILE, TOOLS, teacher_trajectory
from token_masks import masked_runs

pytestmark = pytest.mark.rl

# The assistant turns of MESSAGES as the tiny model's Qwen3-style template renders them
# after its generation prompt `<|im_start|>assistant\n`: content, Hermes tool-call block,
# end of turn.
ASSISTANT_TEXTS = [
    'Let me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call><|im_end|>\n',
    "Fixed it; submitting.<|im_end|>\n",
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    from swerve.agents.policies.tiny_model import make_tiny_qwen3

    return make_tiny_qwen3(tmp_path_factory.mktemp("tiny-rft"))


def test_loss_mask_covers_exactly_the_assistant_turns(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from swerve.rl.rft import build_rft_dataset

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    row = build_rft_dataset([teacher_trajectory()], tokenizer, max_length=4096)[0]
    ids, mask = row["input_ids"], row["assistant_masks"]
    assert len(ids) == len(mask)
    assert ids == tokenizer.apply_chat_template(MESSAGES, tools=TOOLS, tokenize=True, return_dict=False)
    assert [tokenizer.decode(run) for run in masked_runs(ids, mask)] == ASSISTANT_TEXTS
    unmasked = tokenizer.decode([t for t, m in zip(ids, mask) if not m])
    for text in ("SYSTEM-TEXT", "USER-TEXT", "TOOL-TEXT", "<tools>", "<|im_start|>assistant\n"):
        assert text in unmasked

    # What TRL trains on: labels are -100 everywhere the mask is 0.
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    dataset = build_rft_dataset([teacher_trajectory()], tokenizer, max_length=4096)
    args = SFTConfig(output_dir=str(tiny_model_dir.parent / "sft-probe"), report_to=[], use_cpu=True, max_length=4096)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    labels = trainer.train_dataset[0]["labels"]
    trained = [label for label in labels if label != -100]
    assert tokenizer.decode(trained) == "".join(ASSISTANT_TEXTS)


def test_truncation_keeps_mask_aligned(tiny_model_dir):
    from transformers import AutoTokenizer

    from swerve.rl.rft import build_rft_dataset

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    full = build_rft_dataset([teacher_trajectory()], tokenizer, max_length=4096)[0]
    first = full["assistant_masks"].index(1)
    row = build_rft_dataset([teacher_trajectory()], tokenizer, max_length=first + 5)[0]
    assert row["input_ids"] == full["input_ids"][: first + 5]
    assert row["assistant_masks"] == [0] * first + [1] * 5
    assert len(build_rft_dataset([teacher_trajectory()], tokenizer, max_length=first)) == 0, \
        "a row cut before its first assistant token has nothing to train on and is dropped"


def test_rft_refuses_teacher_data_without_a_resolved_trajectory(tiny_model_dir, tmp_path):
    from swerve.rl.rft import train_rft

    unresolved = teacher_trajectory(resolved=False)
    with pytest.raises(ValueError, match="none of the 1 teacher trajectories is resolved"):
        train_rft(tiny_model_dir, [unresolved], tmp_path / "out")


def test_rft_says_when_max_length_leaves_no_assistant_token(tiny_model_dir, tmp_path):
    from swerve.rl.rft import RFTConfig, train_rft

    with pytest.raises(ValueError, match="raise max_length"):
        train_rft(tiny_model_dir, [teacher_trajectory()], tmp_path / "out", RFTConfig(max_length=32))


def _lora_b_norm(model) -> float:
    return sum(float(p.abs().sum()) for name, p in model.named_parameters() if "lora_B" in name)


@pytest.mark.docker
def test_rft_on_oracle_teacher_trajectories_from_docker_gives_a_loadable_adapter(docker_client, tiny_model_dir,
                                                                                  tmp_path):
    """The whole path: `swerve teach` (oracle policy, Docker, graded) -> RFT -> adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from swerve.agents.policies.scripted import scripted_policy
    from swerve.agents.teach import teach
    from swerve.harness.tasks import load_tasks
    from swerve.rl.rft import RFTConfig, train_rft

    task = load_tasks(TASKS_FILE)[0]
    taught = teach([task], lambda t: scripted_policy("oracle", t), out_dir=tmp_path / "teach", backend="docker",
                   progress=False)
    assert taught.kept == [task.instance_id], "the oracle resolves the task and its trajectory is kept"

    config = RFTConfig(lora_rank=4, lora_alpha=8, epochs=1, max_length=4096, learning_rate=1e-3)
    adapter = train_rft(tiny_model_dir, tmp_path / "teach", tmp_path / "rft", config)
    assert (adapter / "adapter_config.json").exists()
    saved = json.loads((tmp_path / "rft" / "rft_config.json").read_text())
    assert saved["kept_resolved"] == [task.instance_id] and saved["lora_rank"] == 4
    assert saved["training_loss"] is not None

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(adapter))
    assert _lora_b_norm(model) > 0, "LoRA B starts at zero; a trained adapter has moved it"
