"""``train_story_lora``: a peft LoRA on the story LM from summary/story pairs, in the storyteller template.

The adapter it writes (``adapter_config.json`` + ``adapter_model.safetensors``) is what ``story.adapter`` points
at; ``story_loading.load_story_model`` wraps the base model in it. With ``qlora`` the frozen base is loaded in
4-bit NF4 through bitsandbytes and the LoRA trains on top (the adapter loads on a 4-bit, 8-bit or full base).

The run is resumable: a checkpoint (LoRA weights, optimizer, step, random generators, loss history) is written
every ``training.checkpoint_every`` steps, at each epoch's end and when the run is stopped; running the same
command again continues from it. The eval loss is measured before training and after every epoch.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storyloom.config import Config
from storyloom.errors import InvalidInput
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress
from storyloom.training import checkpoints
from storyloom.training.loop import TrainingLoop
from storyloom.training.schedule import StepPlan
from storyloom.training.story_data import TokenizedExample, collate, encode_pair, load_story_pairs, split_pairs

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class StoryTrainingArgs:
    dataset: Path
    output_dir: Path
    epochs: int
    max_steps: int | None
    learning_rate: float
    rank: int
    lora_alpha: int
    lora_dropout: float
    target_modules: tuple[str, ...]
    train_split: float
    batch_size: int
    max_tokens: int
    qlora: bool
    checkpoint_every: int
    seed: int
    optimizer: str
    mixed_precision: str

    @classmethod
    def from_config(
        cls,
        config: Config,
        dataset: Path,
        output_dir: Path,
        *,
        epochs: int | None = None,
        max_steps: int | None = None,
        learning_rate: float | None = None,
        rank: int | None = None,
        eval_split: float | None = None,
        qlora: bool = False,
    ) -> StoryTrainingArgs:
        """``[training]`` settings, with the values given here winning."""
        settings = config.training
        if eval_split is not None and not 0.0 <= eval_split < 1.0:
            raise InvalidInput(f"the eval split must be at least 0 and below 1 (got {eval_split})")
        for label, value, low in (("epochs", epochs, 1), ("max steps", max_steps, 1), ("rank", rank, 1)):
            if value is not None and value < low:
                raise InvalidInput(f"{label} must be at least {low} (got {value})")
        if learning_rate is not None and not 0 < learning_rate <= 1:
            raise InvalidInput(f"the learning rate must be above 0 and at most 1 (got {learning_rate})")
        return cls(
            dataset=dataset,
            output_dir=output_dir,
            epochs=epochs or settings.story_epochs,
            max_steps=max_steps,
            learning_rate=learning_rate or settings.story_learning_rate,
            rank=rank or settings.story_rank,
            lora_alpha=settings.story_lora_alpha,
            lora_dropout=settings.story_lora_dropout,
            target_modules=tuple(settings.story_target_modules),
            train_split=settings.story_split if eval_split is None else 1.0 - eval_split,
            batch_size=settings.story_batch_size,
            max_tokens=settings.story_max_tokens,
            qlora=qlora,
            checkpoint_every=settings.checkpoint_every,
            seed=settings.seed,
            optimizer=settings.optimizer,
            mixed_precision=settings.mixed_precision,
        )


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based
    step: int  # optimizer steps done at its end
    train_loss: float
    eval_loss: float | None


@dataclass(frozen=True)
class StoryTrainingResult:
    adapter_dir: Path
    steps: int
    epochs: list[EpochReport]
    initial_eval_loss: float | None
    train_pairs: int
    eval_pairs: int
    resumed_from: int | None
    seconds: float
    losses: list[float] = field(default_factory=list)  # every optimizer step's training loss

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["adapter_dir"] = str(self.adapter_dir)
        return document


def train_story_lora(
    config: Config,
    args: StoryTrainingArgs,
    *,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> StoryTrainingResult:
    """Train (or resume, or find finished) the story LoRA described by ``args``."""
    pairs = load_story_pairs(args.dataset)  # bad data fails before any model loads
    data_hash = hashlib.sha256(args.dataset.read_bytes()).hexdigest()
    run = _fingerprint(config, args, data_hash)
    finished = _finished_result(args, run)
    if finished is not None:
        return finished
    from storyloom.training.optimizers import release_memory

    try:
        return _StoryRun(config, args, pairs, run, progress, should_cancel).train()
    finally:
        release_memory()


def _fingerprint(config: Config, args: StoryTrainingArgs, data_hash: str) -> str:
    # Epochs and max steps are left out on purpose: resuming with a different length extends or ends a run.
    return checkpoints.fingerprint(
        kind="story_lora", model=config.models.story, data=data_hash, learning_rate=args.learning_rate,
        rank=args.rank, alpha=args.lora_alpha, dropout=args.lora_dropout, targets=args.target_modules,
        split=args.train_split, batch=args.batch_size, max_tokens=args.max_tokens, qlora=args.qlora, seed=args.seed,
        optimizer=args.optimizer,
    )  # fmt: skip


def _finished_result(args: StoryTrainingArgs, run: str) -> StoryTrainingResult | None:
    """The saved result when ``output_dir`` already holds this very run, finished; refuse any other adapter."""
    saved = checkpoints.finished_result(args.output_dir, run, _request(args), product=ADAPTER_CONFIG, what="adapter")
    return None if saved is None else _result_from_json(saved)


def _request(args: StoryTrainingArgs) -> dict[str, Any]:
    return {"epochs": args.epochs, "max_steps": args.max_steps}


def _result_from_json(document: dict[str, Any]) -> StoryTrainingResult:
    epochs = [EpochReport(**epoch) for epoch in document.pop("epochs")]
    return StoryTrainingResult(**{**document, "adapter_dir": Path(document["adapter_dir"]), "epochs": epochs})


class _StoryRun:
    """One training run: model, data, optimizer and the loop. Built and used once."""

    def __init__(
        self,
        config: Config,
        args: StoryTrainingArgs,
        pairs: list,
        run: str,
        progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
    ) -> None:
        self.config = config
        self.args = args
        self.pairs = pairs
        self.run = run
        self.progress = progress
        self.should_cancel = should_cancel

    def train(self) -> StoryTrainingResult:
        from storyloom.training.optimizers import autocast

        args = self.args
        started = time.perf_counter()
        self._report(0, 1, "loading the story model")
        model, tokenizer, device = self._load_model()
        encoded = [encode_pair(tokenizer, pair, args.max_tokens, number=i + 1) for i, pair in enumerate(self.pairs)]
        train_set, eval_set = split_pairs(encoded, args.train_split, args.seed)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id or 0
        plan = StepPlan.build(
            examples=len(train_set), batch_size=args.batch_size, accumulation=1, epochs=args.epochs,
            max_steps=args.max_steps, seed=args.seed,
        )  # fmt: skip
        parameters = checkpoints.trainable_parameters({"model": model})
        loop = TrainingLoop.build(
            plan, parameters, args, run_fingerprint=self.run, device=device, name="story training", loss_digits=3,
            progress=self.progress, should_cancel=self.should_cancel,
        )  # fmt: skip
        precision = loop.precision
        saved = loop.resume()
        if saved is not None:
            logger.info("resuming story LoRA training at step %d of %d", saved.step, plan.total_steps)
        else:
            loop.state["initial_eval_loss"] = self._evaluate(model, eval_set, pad, device, precision)

        def loss_of(indices: list[int]) -> Any:
            batch = {k: v.to(device) for k, v in collate([train_set[i] for i in indices], pad).items()}
            with autocast(device, precision):
                return model(**batch).loss

        def end_epoch(epoch: int, step: int, train_loss: float) -> EpochReport:
            eval_loss = self._evaluate(model, eval_set, pad, device, precision)
            model.train()
            logger.info("epoch %d: train loss %.4f, eval loss %s", epoch, train_loss, eval_loss)
            return EpochReport(epoch, step, train_loss, eval_loss)

        model.train()
        step = loop.run(loss_of, end_epoch)
        state = loop.state

        result = StoryTrainingResult(
            adapter_dir=args.output_dir,
            steps=step,
            epochs=[EpochReport(**epoch) for epoch in state["epochs"]],
            initial_eval_loss=state.get("initial_eval_loss"),
            train_pairs=len(train_set),
            eval_pairs=len(eval_set),
            resumed_from=saved.step if saved is not None else None,
            seconds=time.perf_counter() - started,
            losses=list(state["losses"]),
        )
        self._save(model, result)
        return result

    def _load_model(self) -> tuple[Any, Any, Any]:
        import torch
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from storyloom.models.runtime.devices import resolve_device, resolve_dtype
        from storyloom.models.runtime.loading import model_errors, resolve_source
        from storyloom.models.story.loading import bnb_config
        from storyloom.models.story.writer import check_quantization_support

        config, args = self.config, self.args
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.device, device)
        name = config.models.story
        source = resolve_source(name, build_tiny=config.models.build_tiny)
        kwargs: dict[str, Any] = {"dtype": dtype}
        if args.qlora:
            check_quantization_support("4bit")
            if device.type == "cuda" and device.index is None:
                device = torch.device("cuda", torch.cuda.current_device())
            kwargs.update(quantization_config=bnb_config("4bit", dtype), device_map={"": str(device)})
        with model_errors(name):
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        if not args.qlora:
            model.to(device)  # type: ignore[arg-type]  # transformers types ``to`` as taking a model
        model.config.use_cache = False
        if args.qlora:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=device.type == "cuda")
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        torch.manual_seed(args.seed)  # the LoRA's initial weights
        lora = LoraConfig(
            task_type="CAUSAL_LM",
            r=args.rank,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            target_modules=_target_modules(args.target_modules),
        )
        return get_peft_model(model, lora), tokenizer, device

    def _evaluate(
        self, model: Any, examples: list[TokenizedExample], pad: int, device: Any, precision: Any
    ) -> float | None:
        """Mean loss per scored token over ``examples`` (None when there are none)."""
        import torch

        from storyloom.training.optimizers import autocast

        if not examples:
            return None
        model.eval()
        total, tokens = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(examples), self.args.batch_size):
                batch = collate(examples[start : start + self.args.batch_size], pad)
                scored = int((batch["labels"][:, 1:] != -100).sum())
                with autocast(device, precision):
                    loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
                total += float(loss) * scored
                tokens += scored
        return total / max(tokens, 1)

    def _save(self, model: Any, result: StoryTrainingResult) -> None:
        """The adapter, then ``training.json`` (which marks the run finished), then the checkpoint goes."""
        out = self.args.output_dir
        model.save_pretrained(out, safe_serialization=True)
        document = {
            "fingerprint": self.run,
            "request": _request(self.args),
            "base_model": self.config.models.story,
            "qlora": self.args.qlora,
            "rank": self.args.rank,
            "learning_rate": self.args.learning_rate,
            "result": result.to_json(),
        }
        checkpoints.mark_finished(out, document)
        logger.info("story adapter written to %s", out)

    def _report(self, step: int, total: int, stage: str) -> None:
        if self.progress is not None:
            self.progress(StepProgress(step, total, stage=stage))


def _target_modules(configured: tuple[str, ...]) -> Any:
    """peft's per-architecture default when nothing is configured; ``all-linear`` as peft spells it."""
    if not configured:
        return None
    if configured == ("all-linear",):
        return "all-linear"
    return list(configured)
