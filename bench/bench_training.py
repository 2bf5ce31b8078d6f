"""Training benchmarks on the tiny models (CPU, AdamW, full precision).

- ``subject_training_step_ratio``: wall time of one optimizer step of ``train_subject_lora`` over that of a
  bare DreamBooth-LoRA step written here with diffusers + peft (the recipe of diffusers' DreamBooth LoRA
  example with pre-computed prompt embeddings: LoRA on ``to_q/to_k/to_v/to_out.0``, VAE latents, DDPM noise,
  photos and class images in one UNet batch, prior loss, gradient accumulation, clipping, AdamW). Both
  sides: the same tiny UNet, VAE and text encoder, the same photos and class images, 64 px, batch 4 (+ 4 class
  images), accumulation 2, prior preservation on, text encoder frozen, one torch thread.
- ``story_training_step_ratio``: the same for ``train_story_lora`` against a bare peft + transformers
  causal-LM LoRA step on the tiny LM, fed the very batches storyloom trains on (tokenized and collated
  beforehand, every one 4 × 256 tokens).
- ``subject_smoke_seconds``: ``storyloom train-subject`` on the tiny profile as a user runs it, in a fresh
  directory: a subprocess (imports, building the tiny models, class images, training, sample images and
  registering the character all count), default torch threads; the median of up to three runs. It has no
  target: an absolute time says more about how busy the shared machine is than about storyloom (the step
  ratios above are the comparison with the bare libraries). It holds when every run registered its character.

Timing of the step ratios. Only optimizer steps are timed; model loading, class images, the probe and eval
losses, saving and samples are outside the window. The bare loop's models are set up before storyloom's run
starts, and its steps run inside storyloom's progress callback, one after each storyloom training step, so
the two alternate step by step and a slow spell of the shared machine hits both. A storyloom step is the
time from the end of the previous report's callback (the bare step included) to its own report: one whole
iteration of ``TrainingLoop.run`` (cancel check, batch plan, loss, backward, clipping, AdamW, loss record,
report). Each run makes ``WARMUP_STEPS`` + timed steps + 1: the first steps of each side are warm-up and the
last storyloom step is left out, as it ends the run (epoch-end evaluation, the final checkpoint).
``checkpoint_every`` is set above the run's length and the data is large enough that no epoch ends inside the
window, so no checkpoint is written in it: the ratio is the per-step cost of the loop, not of its checkpoints.
The value is the median of the per-step ratios (storyloom step k / the bare step right after it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import median, record

TARGET_RATIO = 1.15
WARMUP_STEPS = 1
SUBJECT_TIMED_STEPS = 6
SUBJECT_ROUNDS = 2
SUBJECT_PHOTOS = 4
# Enough class images that an epoch (max(photos, class images) examples, 8 per step) outlasts a run.
SUBJECT_CLASS_IMAGES = 64
STORY_TIMED_STEPS = 30
STORY_ROUNDS = 2
STORY_PAIRS = 170  # 136 train pairs at the default split: 34 steps of 4 before the first epoch ends
SMOKE_RUNS = 3
SMOKE_BUDGET_SECONDS = 90.0  # keeps the whole file under about two and a half minutes
SMOKE_STEPS = 4
SMOKE_CLASS_IMAGES = 4
IDENTIFIER, CLASS_NAME = "bhna", "cat"


def run() -> list[dict]:
    from bench.common import one_thread

    with one_thread():
        subject = _subject_ratio()
        story = _story_ratio()
    return [subject, story, _subject_smoke()]


def _draw_photos(directory: Path, count: int) -> Path:
    """Orange round "cats" on a blue sofa, each a little different (as in the tests)."""
    from PIL import Image, ImageDraw

    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = Image.new("RGB", (96, 80), (40, 90, 200))
        ImageDraw.Draw(image).ellipse((18 + 4 * index, 12, 70 + 4 * index, 68), fill=(235, 125 - 5 * index, 30))
        image.save(directory / f"photo_{index}.png")
    return directory


class _Alternate:
    """storyloom's progress callback: the clock at each training report, and one bare step after each."""

    def __init__(self, bare_step: Callable[[], None]) -> None:
        self.bare_step = bare_step
        self.ours: list[float] = []  # storyloom steps 2, 3, ... (step 1 has no report before it)
        self.bare: list[float] = []  # bare steps 1, 2, ...
        self._resumed: float | None = None

    def __call__(self, update) -> None:
        if not update.stage.startswith("training"):
            return
        now = time.perf_counter()
        if self._resumed is not None:
            self.ours.append(now - self._resumed)
        if update.step < update.total:
            start = time.perf_counter()
            self.bare_step()
            self.bare.append(time.perf_counter() - start)
        self._resumed = time.perf_counter()

    def pairs(self, timed: int) -> list[tuple[float, float]]:
        """(storyloom step k, bare step k) for the ``timed`` steps after the warm-up (the run's last step left out)."""
        ours = self.ours[WARMUP_STEPS - 1 : WARMUP_STEPS - 1 + timed]
        bare = self.bare[WARMUP_STEPS : WARMUP_STEPS + timed]
        assert len(ours) == len(bare) == timed, f"{len(self.ours)} storyloom and {len(self.bare)} bare steps"
        return list(zip(ours, bare))


def _summary(pairs: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(median per-step ratio, median storyloom step, median bare step)."""
    return median([ours / bare for ours, bare in pairs]), median([p[0] for p in pairs]), median([p[1] for p in pairs])


# --- DreamBooth ---------------------------------------------------------------------------------------------


def _subject_ratio() -> dict:
    from storyloom.models.runtime.tiny import make_tiny_config, shared_tiny_models
    from storyloom.training.class_images import class_images_dir
    from storyloom.training.subject_lora import SubjectTrainingArgs, train_subject_lora

    models = shared_tiny_models()
    total_steps = WARMUP_STEPS + SUBJECT_TIMED_STEPS + 1
    with tempfile.TemporaryDirectory(prefix="bench-subject-") as tmp:
        root = Path(tmp)
        photos = _draw_photos(root / "photos", SUBJECT_PHOTOS)
        config = make_tiny_config(
            root / "data", models,
            image={"steps": 2},  # only the (untimed) class images use it
            training={"checkpoint_every": 10 * total_steps, "sample_images": 0},
        )  # fmt: skip
        settings = config.training
        class_prompt = settings.class_prompt.format(identifier=IDENTIFIER, class_name=CLASS_NAME)
        _make_class_images(config, class_prompt)
        class_files = sorted(
            class_images_dir(config, CLASS_NAME, class_prompt, settings.resolution).glob("class_*.png")
        )
        assert len(class_files) == SUBJECT_CLASS_IMAGES
        pairs = []
        for number in range(SUBJECT_ROUNDS):
            bare = _BareDreamBooth(models.sd15, sorted(photos.glob("*.png")), class_files, settings)
            alternate = _Alternate(bare.step)
            args = SubjectTrainingArgs.from_config(
                config, photos, root / "out" / str(number), identifier=IDENTIFIER, class_name=CLASS_NAME,
                max_steps=total_steps, num_class_images=SUBJECT_CLASS_IMAGES,
            )  # fmt: skip
            result = train_subject_lora(config, args, progress=alternate, should_cancel=lambda: False)
            assert result.steps == total_steps and result.class_images == SUBJECT_CLASS_IMAGES
            assert [epoch.step for epoch in result.epochs] == [total_steps]  # no epoch ended before the last step
            pairs += alternate.pairs(SUBJECT_TIMED_STEPS)
    ratio, ours, theirs = _summary(pairs)
    return record(
        "subject_training_step_ratio", ratio, "ratio", f"<= {TARGET_RATIO}", ratio <= TARGET_RATIO,
        storyloom_step_seconds=round(ours, 4), bare_step_seconds=round(theirs, 4), timed_steps=len(pairs),
        rounds=SUBJECT_ROUNDS, resolution=settings.resolution,
        batch=f"{settings.subject_batch_size}+{settings.subject_batch_size}", accumulation=settings.gradient_accumulation,
        checkpoints_in_window=0,
    )  # fmt: skip


def _make_class_images(config, prompt: str) -> None:
    """The class images both sides train on, made (untimed) into storyloom's cache before any run."""
    from diffusers import StableDiffusionPipeline

    from storyloom.training.class_images import ensure_class_images

    pipe = StableDiffusionPipeline.from_pretrained(
        config.models.image, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    ensure_class_images(
        pipe,
        config,
        class_name=CLASS_NAME,
        prompt=prompt,
        count=SUBJECT_CLASS_IMAGES,
        resolution=config.training.resolution,
    )


def _pixels(path: Path, resolution: int):
    """A centre-cropped square in [-1, 1], channels first."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        square = ImageOps.fit(image.convert("RGB"), (resolution, resolution), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(square, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


class _BareDreamBooth:
    """diffusers' DreamBooth LoRA training step, nothing else."""

    def __init__(self, model_dir: Path, photo_files: list[Path], class_files: list[Path], settings) -> None:
        import torch
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from peft import LoraConfig
        from transformers import CLIPTextModel, CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder")
        self.vae = AutoencoderKL.from_pretrained(model_dir, subfolder="vae")
        self.unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
        self.noise_scheduler = DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler")
        for module in (text_encoder, self.vae, self.unet):
            module.requires_grad_(False)
        torch.manual_seed(settings.seed)
        rank = settings.subject_rank
        self.unet.add_adapter(
            LoraConfig(
                r=rank,
                lora_alpha=rank,
                init_lora_weights="gaussian",
                target_modules=["to_k", "to_q", "to_v", "to_out.0"],
            )
        )
        self.lora = [parameter for parameter in self.unet.parameters() if parameter.requires_grad]
        self.optimizer = torch.optim.AdamW(self.lora, lr=settings.subject_learning_rate, weight_decay=1e-2)

        def embed(text: str):
            ids = tokenizer(
                text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
            )
            with torch.no_grad():
                return text_encoder(ids.input_ids)[0][0]

        prompts = {"identifier": IDENTIFIER, "class_name": CLASS_NAME}
        self.batch, self.accumulation = settings.subject_batch_size, settings.gradient_accumulation
        instance_embed, class_embed = (
            embed(settings.instance_prompt.format(**prompts)),
            embed(settings.class_prompt.format(**prompts)),
        )
        self.hidden = torch.stack([instance_embed] * self.batch + [class_embed] * self.batch)
        self.photos = [_pixels(path, settings.resolution) for path in photo_files]
        self.class_images = [_pixels(path, settings.resolution) for path in class_files]
        self.prior_loss_weight = settings.prior_loss_weight
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.example = 0
        self.unet.train()

    def step(self) -> None:
        import torch
        import torch.nn.functional as F

        vae, unet, scheduler, generator = self.vae, self.unet, self.noise_scheduler, self.generator
        for _ in range(self.accumulation):
            indices = range(self.example, self.example + self.batch)
            self.example += self.batch
            photos = [self.photos[i % len(self.photos)] for i in indices]
            pixels = torch.stack(photos + [self.class_images[i % len(self.class_images)] for i in indices])
            with torch.no_grad():
                latents = vae.encode(pixels).latent_dist.sample(generator=generator) * vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=generator)
            timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (latents.shape[0],), generator=generator)
            prediction = unet(scheduler.add_noise(latents, noise, timesteps), timesteps, self.hidden).sample
            prediction, prior_prediction = prediction.chunk(2)
            target, prior_target = noise.chunk(2)
            loss = F.mse_loss(prediction, target) + self.prior_loss_weight * F.mse_loss(prior_prediction, prior_target)
            (loss / self.accumulation).backward()
        torch.nn.utils.clip_grad_norm_(self.lora, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


# --- story LoRA ---------------------------------------------------------------------------------------------

_THINGS = ("boat", "hat", "moon", "tree", "fish", "kite", "shell", "key", "star", "drum", "lamp")


def _story_pairs() -> list[dict[str, str]]:
    """Summary/story pairs long enough that every example is cut at ``story_max_tokens`` (same shapes)."""
    pairs = []
    for number in range(STORY_PAIRS):
        thing = _THINGS[number % len(_THINGS)]
        story = " ".join(
            f"On day {day} Bhna the little cat looked for the {thing} by the sea, in the forest and on the green hill, "
            f"and her friend the kind dragon helped her."
            for day in range(1, 12)
        )
        pairs.append({"summary": f"A cat named Bhna finds a {thing} (story {number}).", "story": story + " The end."})
    return pairs


def _story_ratio() -> dict:
    from storyloom.models.runtime.tiny import make_tiny_config, shared_tiny_models
    from storyloom.training.story_lora import StoryTrainingArgs, train_story_lora

    models = shared_tiny_models()
    total_steps = WARMUP_STEPS + STORY_TIMED_STEPS + 1
    with tempfile.TemporaryDirectory(prefix="bench-story-") as tmp:
        root = Path(tmp)
        dataset = root / "pairs.json"
        dataset.write_text(json.dumps(_story_pairs()), encoding="utf-8")
        config = make_tiny_config(root / "data", models, training={"checkpoint_every": 10 * total_steps})
        pairs, shapes = [], set()
        for number in range(STORY_ROUNDS):
            args = StoryTrainingArgs.from_config(config, dataset, root / "out" / str(number), max_steps=total_steps)
            batches = _story_batches(models.llama, dataset, args, total_steps)
            shapes |= {tuple(batch["input_ids"].shape) for batch in batches}
            alternate = _Alternate(_BareCausalLM(models.llama, args, batches).step)
            result = train_story_lora(config, args, progress=alternate, should_cancel=lambda: False)
            assert result.steps == total_steps and [epoch.step for epoch in result.epochs] == [total_steps]
            pairs += alternate.pairs(STORY_TIMED_STEPS)
    ratio, ours, theirs = _summary(pairs)
    return record(
        "story_training_step_ratio", ratio, "ratio", f"<= {TARGET_RATIO}", ratio <= TARGET_RATIO,
        storyloom_step_seconds=round(ours, 4), bare_step_seconds=round(theirs, 4), timed_steps=len(pairs),
        rounds=STORY_ROUNDS, batch_shapes=sorted(shapes), checkpoints_in_window=0,
    )  # fmt: skip


def _story_batches(model_dir: Path, dataset: Path, args, steps: int) -> list[dict]:
    """The batches of storyloom's first ``steps`` steps, tokenized and collated up front."""
    from transformers import AutoTokenizer

    from storyloom.training.schedule import StepPlan
    from storyloom.training.story_data import (
        collate,
        encode_pair,
        load_story_pairs,
        split_pairs,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoded = [encode_pair(tokenizer, pair, args.max_tokens) for pair in load_story_pairs(dataset)]
    train, _ = split_pairs(encoded, args.train_split, args.seed)
    plan = StepPlan.build(
        examples=len(train), batch_size=args.batch_size, accumulation=1, epochs=args.epochs, max_steps=steps,
        seed=args.seed,
    )  # fmt: skip
    return [collate([train[i] for i in plan.batches(step)[0]], tokenizer.pad_token_id) for step in range(steps)]


class _BareCausalLM:
    """A peft LoRA training step on a transformers causal LM, nothing else; one batch after the other."""

    def __init__(self, model_dir: Path, args, batches: list[dict]) -> None:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        model.config.use_cache = False
        model.requires_grad_(False)
        torch.manual_seed(args.seed)
        lora = LoraConfig(
            task_type="CAUSAL_LM", r=args.rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout
        )
        self.model = get_peft_model(model, lora)
        self.trainable = [parameter for parameter in self.model.parameters() if parameter.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=args.learning_rate, weight_decay=1e-2)
        self.batches = iter(batches)
        self.model.train()

    def step(self) -> None:
        import torch

        self.model(**next(self.batches)).loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


# --- smoke run ----------------------------------------------------------------------------------------------


def _subject_smoke() -> dict:
    """``storyloom train-subject`` in a fresh directory, as a first-time user runs it (so the tiny models are
    built too). A run takes 20–35 s on an idle 2-core machine; the value is the median of ``SMOKE_RUNS`` runs,
    or of fewer when another would take the section past ``SMOKE_BUDGET_SECONDS`` (``runs`` lists them).
    It runs with torch's default threads (both cores), so other work on the machine slows it much more than
    the one-thread ratios above; ``load_average`` (1 minute, at the end) tells how busy the machine was."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("STORYLOOM_")}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")])
    )
    seconds: list[float] = []
    while len(seconds) < SMOKE_RUNS and sum(seconds) + max(seconds, default=0.0) <= SMOKE_BUDGET_SECONDS:
        with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
            _draw_photos(Path(tmp) / "photos", SUBJECT_PHOTOS)
            command = [
                sys.executable, "-m", "storyloom", "train-subject", "photos", "--token", IDENTIFIER, "--class", CLASS_NAME,
                "--out", "characters/smoke", "--max-steps", str(SMOKE_STEPS), "--num-class-images", str(SMOKE_CLASS_IMAGES),
                "--profile", "tiny",
            ]  # fmt: skip
            start = time.perf_counter()
            done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, check=False)
            seconds.append(time.perf_counter() - start)
            if done.returncode != 0 or "registered character" not in done.stdout:
                raise RuntimeError(f"the smoke run failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-2000:]}")
    value = median(seconds)
    return record(
        "subject_smoke_seconds", value, "s", "none (every run registers its character)", True,
        runs=[round(s, 2) for s in seconds], max_steps=SMOKE_STEPS, class_images=SMOKE_CLASS_IMAGES,
        photos=SUBJECT_PHOTOS, load_average=round(os.getloadavg()[0], 2),
    )  # fmt: skip
