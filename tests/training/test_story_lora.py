"""train-story on the tiny LLaMA: the loss goes down, the adapter loads in the story writer and changes what it
writes, an interrupted run resumes exactly, QLoRA (4-bit base) trains on CPU, and bad data is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.models.story.prompts import story_request
from storyloom.training import checkpoints
from storyloom.training.story_data import IGNORE_INDEX, StoryPair, encode_pair, load_story_pairs, split_pairs
from storyloom.training.story_lora import StoryTrainingArgs, train_story_lora

PAIRS = [
    {
        "summary": f"A cat named Bhna finds a {thing}.",
        "story": f"Once upon a time Bhna the cat found a {thing}. She was very happy. The end.",
    }
    for thing in ("boat", "hat", "moon", "tree", "fish")
]
ADAPTER_FILE = "adapter_model.safetensors"


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "pairs.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(PAIRS), encoding="utf-8")
    return path


def story_config(tmp_path: Path, tiny_models, **training):
    return make_tiny_config(tmp_path / "data", tiny_models, training={"checkpoint_every": 2, **training})


def train(config, dataset: Path, out: str, **options):
    progress = options.pop("progress", None)
    should_cancel = options.pop("should_cancel", None)
    args = StoryTrainingArgs.from_config(config, dataset, config.paths.data_dir / out, **options)
    return train_story_lora(config, args, progress=progress, should_cancel=should_cancel)


def test_training_examples_score_the_story_only_and_match_the_writers_prompt_tokens(tiny_models) -> None:
    from transformers import AutoTokenizer

    from storyloom.models.story.writer import StoryWriter

    tokenizer = AutoTokenizer.from_pretrained(tiny_models.llama)
    pair = StoryPair("A cat named Bhna finds a boat.", "Bhna sailed away.")
    example = encode_pair(tokenizer, pair, max_tokens=512)
    request = story_request(pair.summary, prompt_format="storyteller", pages=1, max_new_tokens=100)
    no_model = SimpleNamespace(device=torch.device("cpu"))  # encoding needs only the tokenizer
    writer_ids = StoryWriter(model=no_model, tokenizer=tokenizer, settings=_story_settings()).encode(request)
    prompt = writer_ids["input_ids"][0].tolist()
    assert example.input_ids[: len(prompt)] == prompt  # exactly the tokens the writer will send
    assert example.labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    answer = tokenizer.decode(example.input_ids[len(prompt) :], skip_special_tokens=True)
    assert answer.strip() == "Bhna sailed away. END"
    assert example.labels[len(prompt) :] == example.input_ids[len(prompt) :]
    assert example.input_ids[-1] == tokenizer.eos_token_id


def _story_settings():
    from storyloom.config import StoryConfig

    return StoryConfig()


def test_loss_goes_down_and_the_adapter_loads_in_the_story_writer_and_changes_its_story(
    tmp_path: Path, tiny_models, dataset: Path
) -> None:
    from storyloom.models.story.writer import StoryWriter

    config = story_config(tmp_path, tiny_models, story_batch_size=4)
    stages = []
    result = train(config, dataset, "adapters/bhna", max_steps=12, learning_rate=2e-2, progress=stages.append)
    assert result.steps == 12 and result.train_pairs == 4 and result.eval_pairs == 1
    assert len(result.epochs) == 12  # four training pairs, batch 4: one step per epoch, an eval loss after each
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss - 0.1
    assert result.epochs[-1].eval_loss < result.initial_eval_loss
    assert stages[-1].step == stages[-1].total == 12 and "loss" in stages[-1].stage
    out = config.paths.data_dir / "adapters" / "bhna"
    assert {"adapter_config.json", ADAPTER_FILE, "training.json"} <= {p.name for p in out.iterdir()}
    assert not checkpoints.has_checkpoint(out)  # a finished run keeps only the adapter

    request = story_request(PAIRS[0]["summary"], prompt_format="storyteller", pages=1, max_new_tokens=40)
    base = StoryWriter.from_config(config).with_settings(max_new_tokens=24)
    tuned_config = config.model_copy(update={"story": config.story.model_copy(update={"adapter": str(out)})})
    tuned = StoryWriter.from_config(tuned_config).with_settings(max_new_tokens=24)
    assert tuned.has_adapter and not base.has_adapter
    base_text = base.generate(request, seed=3).text
    assert tuned.generate(request, seed=3).text != base_text
    assert base.generate(request, seed=3).text == base_text  # same seed, same model: same story

    # The same command again finds the finished run instead of training twice.
    again = train(config, dataset, "adapters/bhna", max_steps=12, learning_rate=2e-2)
    assert again.losses == result.losses and again.steps == 12


def test_an_interrupted_run_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_one_does(
    tmp_path: Path, tiny_models, dataset: Path
) -> None:
    config = story_config(tmp_path, tiny_models, story_batch_size=2)
    straight = train(config, dataset, "adapters/straight", max_steps=6, learning_rate=1e-2)

    calls = {"n": 0}

    def stop_after_three_steps() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    out = config.paths.data_dir / "adapters" / "resumed"
    with pytest.raises(JobCanceled, match="step 3 of 6"):
        train(
            config, dataset, "adapters/resumed", max_steps=6, learning_rate=1e-2, should_cancel=stop_after_three_steps
        )
    assert checkpoints.has_checkpoint(out) and not (out / ADAPTER_FILE).exists()
    resumed = train(config, dataset, "adapters/resumed", max_steps=6, learning_rate=1e-2)

    assert resumed.resumed_from == 3 and resumed.steps == straight.steps == 6
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)  # the loss history continues, then matches
    assert [e.eval_loss for e in resumed.epochs] == pytest.approx([e.eval_loss for e in straight.epochs], rel=1e-5)
    a = load_file(str(config.paths.data_dir / "adapters" / "straight" / ADAPTER_FILE))
    b = load_file(str(out / ADAPTER_FILE))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # it did train


def test_qlora_trains_on_a_4_bit_base_on_cpu_and_the_adapter_loads_on_a_4_bit_writer(
    tmp_path: Path, tiny_models, dataset: Path
) -> None:
    import bitsandbytes as bnb

    from storyloom.models.story.writer import StoryWriter

    config = story_config(tmp_path, tiny_models, optimizer="adamw8bit")  # bitsandbytes' 8-bit AdamW, on CPU too
    result = train(config, dataset, "adapters/q", max_steps=3, learning_rate=1e-2, qlora=True)
    assert result.steps == 3 and all(loss == loss for loss in result.losses)
    story = config.story.model_copy(
        update={"adapter": str(config.paths.data_dir / "adapters" / "q"), "quantization": "4bit"}
    )
    writer = StoryWriter.from_config(config.model_copy(update={"story": story})).with_settings(max_new_tokens=4)
    assert any(isinstance(module, bnb.nn.Linear4bit) for module in writer.model.modules())
    request = story_request(PAIRS[1]["summary"], prompt_format="storyteller", pages=1, max_new_tokens=16)
    assert writer.generate(request, seed=1).new_tokens > 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "is empty"),
        ('{"summary": "x", "story": "y"}', "must be a JSON list"),
        ('[{"summary": "x"}]', 'pair 1 of pairs.json has no "story" key'),
        ('[{"summary": "x", "story": "y"}, {"story": "y"}]', 'pair 2 of pairs.json has no "summary" key'),
        ('[{"summary": "  ", "story": "y"}]', '"summary" must be non-empty text'),
        ('[{"summary": "x", "story": 3}]', '"story" must be non-empty text'),
        ('["x"]', "pair 1 of pairs.json is not an object"),
    ],
)
def test_bad_datasets_are_refused_with_a_clear_message(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        load_story_pairs(path)


def test_a_missing_dataset_and_an_occupied_output_directory_are_refused(
    tmp_path: Path, tiny_models, dataset: Path
) -> None:
    config = story_config(tmp_path, tiny_models)
    with pytest.raises(InvalidInput, match="does not exist"):
        train(config, dataset.with_name("nope.json"), "adapters/x", max_steps=1)
    taken = config.paths.data_dir / "adapters" / "taken"
    taken.mkdir(parents=True)
    (taken / "adapter_config.json").write_text("{}")
    with pytest.raises(InvalidInput, match="already holds a trained adapter"):
        train(config, dataset, "adapters/taken", max_steps=1)


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path: Path, tiny_models, dataset: Path) -> None:
    config = story_config(tmp_path, tiny_models)
    with pytest.raises(JobCanceled):
        train(config, dataset, "adapters/a", max_steps=4, learning_rate=1e-2, should_cancel=_after(1))
    with pytest.raises(InvalidInput, match="checkpoint of a different training run"):
        train(config, dataset, "adapters/a", max_steps=4, learning_rate=5e-3)


def test_the_split_is_seeded_and_keeps_at_least_one_training_pair() -> None:
    items = list(range(10))
    train_a, eval_a = split_pairs(items, 0.8, seed=1)
    assert (train_a, eval_a) == split_pairs(items, 0.8, seed=1)
    assert len(train_a) == 8 and sorted(train_a + eval_a) == items
    assert split_pairs([1], 0.5, seed=0) == ([1], [])


def _after(steps: int):
    calls = {"n": 0}

    def check() -> bool:
        calls["n"] += 1
        return calls["n"] > steps

    return check
