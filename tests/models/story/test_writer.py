"""The real transformers path on the tiny LM: full precision, 8-bit and 4-bit, with and without a LoRA."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from storyloom.errors import InvalidInput, JobCanceled, ModelUnavailable
from storyloom.models.story.prompts import STORYTELLER_SYSTEM_PROMPT, story_request
from storyloom.models.story.writer import StoryWriter, TextRequest

torch = pytest.importorskip("torch")

PROMPT = TextRequest("Write a story about a cat.", system=STORYTELLER_SYSTEM_PROMPT, max_new_tokens=24)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(config, **story):
    return config.model_copy(update={"story": config.story.model_copy(update=story)})


@pytest.fixture(scope="module")
def base_config(tmp_path_factory, tiny_models):
    from storyloom.models.runtime.tiny import make_tiny_config

    return make_tiny_config(tmp_path_factory.mktemp("writer"), tiny_models)


@pytest.fixture(scope="module")
def writer(base_config) -> StoryWriter:
    return StoryWriter.from_config(base_config)


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, tiny_models) -> Path:
    """A LoRA saved by peft, with random (not zero) B matrices so it changes what the model writes."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_models.llama)
    lora = LoraConfig(
        r=8,
        lora_alpha=32,
        target_modules=["q_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    target = tmp_path_factory.mktemp("adapter") / "story-lora"
    model.save_pretrained(target)
    assert (target / "adapter_config.json").is_file()
    return target


def test_generate_is_seeded_and_reports_its_cost(writer):
    first = writer.generate(PROMPT, seed=1)
    again = writer.generate(PROMPT, seed=1)
    other = writer.generate(PROMPT, seed=2)
    assert first.text == again.text and first.text != other.text
    assert 0 < first.new_tokens <= 24 and first.prompt_tokens == writer.prompt_tokens(PROMPT)
    assert first.finish_reason in {"eos", "length"} and first.tokens_per_second > 0


def test_min_new_tokens_fixes_the_length(writer):
    result = writer.generate(TextRequest("Once", max_new_tokens=20, min_new_tokens=20), seed=3)
    assert result.new_tokens == 20 and result.finish_reason == "length"


def test_generation_really_stops_at_a_stop_string(writer):
    """Find text the model writes with seed 4, then ask it to stop there: generation ends early."""
    request = TextRequest("Once upon a time", chat=False, max_new_tokens=40, min_new_tokens=40)
    full = writer.generate(request, seed=4)
    assert full.new_tokens == 40
    middle = len(full.text) // 2
    pieces = [full.text[start : start + 3] for start in range(middle, len(full.text) - 3)]
    stop = next(piece for piece in pieces if piece.isalpha() and piece.isascii() and full.text.find(piece) > 0)
    stopped = writer.generate(TextRequest(request.prompt, chat=False, max_new_tokens=40, stop=(stop,)), seed=4)
    assert stopped.finish_reason == "stop"
    assert stopped.new_tokens < 40
    assert stop not in stopped.text and full.text.startswith(stopped.text)


def test_storyteller_request_is_the_exact_training_template():
    request = story_request("A cat sails.", prompt_format="storyteller", pages=4, max_new_tokens=100)
    assert request.prompt == (
        "You are a storyteller. Given a summary of a children's story, generate the full story. Make sure your story "
        "follows the same plot points of the summary and expands on each point. Make sure your story has a clear "
        "beginning, multiple plot points that build on each other, and a clear ending. \n Summary: A cat sails. END "
        "\n Full story:"
    )
    assert request.stop == ("END",) and not request.chat


def test_chat_requests_use_the_chat_template_with_the_system_prompt(writer):
    text = writer.tokenizer.decode(writer.encode(PROMPT)["input_ids"][0])
    assert text.startswith("<|system|>\n" + STORYTELLER_SYSTEM_PROMPT)
    assert text.endswith("<|assistant|>\n")


def test_templates_without_a_system_role_get_it_in_the_user_turn(base_config):
    writer = StoryWriter.from_config(base_config)
    writer.tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ '[' + m['role'] + '] ' + m['content'] }}{% endfor %}{{ '[assistant] ' }}"
    )
    text = writer.tokenizer.decode(writer.encode(PROMPT)["input_ids"][0])
    assert text.startswith("[user] " + STORYTELLER_SYSTEM_PROMPT)


def test_progress_and_cancel(writer):
    seen = []
    writer.generate(PROMPT, seed=1, progress=seen.append)
    assert seen and seen[-1].stage == "writing" and seen[-1].total == 24
    with pytest.raises(JobCanceled):
        writer.generate(PROMPT, seed=1, should_cancel=lambda: True)


def test_a_prompt_longer_than_the_context_is_refused(base_config):
    writer = StoryWriter.from_config(_config(base_config, context_tokens=256))
    with pytest.raises(InvalidInput, match="too long"):
        writer.generate(TextRequest("cat " * 400), seed=1)


@pytest.mark.parametrize(("quantization", "layer"), [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_quantized_loading_runs_on_cpu(base_config, writer, quantization, layer):
    quantized = StoryWriter.from_config(_config(base_config, quantization=quantization))
    assert type(quantized.model.model.layers[0].self_attn.q_proj).__name__ == layer
    result = quantized.generate(PROMPT, seed=1)
    assert 0 < result.new_tokens <= 24 and isinstance(result.text, str)
    assert quantized.context_window == writer.context_window


def test_adapter_changes_the_output_and_can_be_switched_off(base_config, writer, adapter_dir):
    adapted = StoryWriter.from_config(_config(base_config, adapter=str(adapter_dir)))
    assert adapted.has_adapter and not writer.has_adapter
    greedy = TextRequest("Once upon a time", chat=False, max_new_tokens=16, min_new_tokens=16, temperature=0.01)
    with_lora = adapted.generate(greedy, seed=1).text
    without = writer.generate(greedy, seed=1).text
    assert with_lora != without
    base_only = replace(greedy, use_adapter=False)
    assert adapted.generate(base_only, seed=1).text == without


def test_adapter_on_a_4bit_model(base_config, adapter_dir):
    adapted = StoryWriter.from_config(_config(base_config, adapter=str(adapter_dir), quantization="4bit"))
    assert adapted.has_adapter
    assert adapted.generate(PROMPT, seed=1).new_tokens > 0


def test_a_missing_adapter_is_a_clear_error(base_config, tmp_path):
    with pytest.raises(ModelUnavailable, match="adapter"):
        StoryWriter.from_config(_config(base_config, adapter=str(tmp_path / "nope")))
