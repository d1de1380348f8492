"""The publish stage's choices and files, without training: which policy it publishes, the chat
template it writes for each model, and `tunixrt init --upgrade` bringing the stage to a pipeline
written before it existed. What a published model computes is checked on real trained models in
tests/test_real_checkpoints.py (every family), tests/test_pipeline_train.py (the demo model) and
tests/test_rl_stage.py (the GRPO policy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tunixrt.chat_templates import CHAT_TEMPLATES
from tunixrt.errors import ConfigError
from tunixrt.publish.config import PublishConfig
from tunixrt.publish.stage import adapter_config, chosen_policy
from tunixrt.publish.tokenizer_files import chat_template_jinja
from tunixrt.rl.config import RLConfig
from tunixrt.scaffold import pipeline_yaml, upgrade_commands


def test_the_last_policy_trained_is_published_unless_one_is_picked() -> None:
    off, on = RLConfig(enabled=False), RLConfig(enabled=True)
    assert chosen_policy(PublishConfig(), off) == "sft"
    assert chosen_policy(PublishConfig(), on) == "grpo"
    assert chosen_policy(PublishConfig(policy="sft"), on) == "sft"
    with pytest.raises(ConfigError, match=r"publish.policy: 'grpo', but rl.enabled is false"):
        chosen_policy(PublishConfig(policy="grpo"), off)


def test_publish_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_shard_size"):
        PublishConfig(max_shard_size="five gigabytes")
    with pytest.raises(ValueError, match="lora"):
        PublishConfig(lora="both")


@pytest.mark.parametrize("name", sorted(CHAT_TEMPLATES))
def test_the_chat_template_renders_conversations_as_tunixrt_does(name: str) -> None:
    """A system message, two user turns and an answer, rendered by the Jinja publish writes (in
    the sandbox transformers renders with), is the text tunixrt trains on: BOS, the template's
    default system turn, the system prompt first in the user turn, every turn closed."""
    t = CHAT_TEMPLATES[name]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2 + 2?\nThink."},
        {"role": "assistant", "content": "Answer: 4"},
        {"role": "user", "content": 'And "3 + 3"? \\ ok'},
    ]
    text = env.from_string(chat_template_jinja(t)).render(
        messages=messages, bos_token=t.bos, add_generation_prompt=True
    )
    close = t.end_of_turn + t.between_turns
    assert text == (
        f"{t.bos}{t.preamble}{t.user}Answer briefly.\n\nWhat is 2 + 2?\nThink.{close}"
        f'{t.model}Answer: 4{close}{t.user}And "3 + 3"? \\ ok{close}{t.model}'
    )
    plain = env.from_string(chat_template_jinja(t)).render(
        messages=messages[1:2], bos_token=t.bos, add_generation_prompt=False
    )
    assert plain == f"{t.bos}{t.preamble}{t.user}What is 2 + 2?\nThink.{close}"


def test_adapter_config_names_modules_as_peft_does() -> None:
    from tunixrt.manifest.schema import LoraSection

    lora = LoraSection(enabled=True, rank=4, alpha=8.0, module_path=".*")
    every = {f"model.layers.{i}.self_attn.{m}" for i in range(2) for m in ("q_proj", "k_proj")}
    conf = adapter_config(lora, "org/base", sorted(every), every)
    assert conf["target_modules"] == ["k_proj", "q_proj"]  # every module of each name
    assert (conf["r"], conf["lora_alpha"], conf["base_model_name_or_path"]) == (4, 8.0, "org/base")
    some = sorted(m for m in every if ".0." in m)
    assert adapter_config(lora, "b", some, every)["target_modules"] == some  # full names


def test_upgrade_adds_the_publish_stage_to_an_older_pipeline(tmp_path: Path) -> None:
    """A dvc.yaml `tunixrt init` wrote before publish existed gets the stage, where the graph
    puts it, and is then what init writes today."""
    text = pipeline_yaml()
    lines = text.splitlines(keepends=True)
    older = "".join(lines[: lines.index("  publish:\n")] + lines[lines.index("  report:\n") :])
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(older)
    written = upgrade_commands(dvc_yaml)
    assert "dvc.yaml: new stage publish" in written
    assert yaml.safe_load(dvc_yaml.read_text()) == yaml.safe_load(text)
    assert list(yaml.safe_load(dvc_yaml.read_text())["stages"])[-2:] == ["publish", "report"]
