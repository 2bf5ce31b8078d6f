"""``train_subject_lora``: DreamBooth with a LoRA on the Stable Diffusion UNet (optionally the text encoder).

The recipe of diffusers' DreamBooth LoRA example, as one resumable function: LoRA (peft) on the attention
projections ``to_q``/``to_k``/``to_v``/``to_out.0`` of a frozen UNet, the noise-prediction loss on the subject's
photos plus ``prior_loss_weight`` × the same loss on class images the base model drew (prior preservation),
batches of photos and class images side by side, gradient accumulation, 8-bit AdamW and fp16 autocast on CUDA
and plain AdamW on CPU. As in that recipe, an epoch is one pass over max(photos, class images) examples.

Output in ``output_dir``: ``pytorch_lora_weights.safetensors`` in the diffusers LoRA format (loadable with
``pipe.load_lora_weights``), ``samples/`` made with the finished LoRA, and ``training.json``. The training
models are loaded fresh for the run (never the worker's warm pipeline), so nothing it does can leak into other
jobs' images.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
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
from storyloom.training.subject_data import InstanceImage, load_instance_images, square_pixels, to_model_range

logger = logging.getLogger(__name__)

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' default name for a LoRA in safetensors
SAMPLES_DIR = "samples"
UNET_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
PROBE_TIMESTEPS = (100, 300, 500, 700, 900)
PROBE_SEED = 4242
PREVIEW_SIDE = 512


@dataclass(frozen=True)
class SubjectTrainingArgs:
    images_dir: Path
    output_dir: Path
    identifier: str
    class_name: str
    epochs: int
    max_steps: int | None
    learning_rate: float
    rank: int
    batch_size: int
    gradient_accumulation: int
    prior_loss_weight: float
    num_class_images: int
    resolution: int
    instance_prompt: str
    class_prompt: str
    train_text_encoder: bool
    sample_images: int
    checkpoint_every: int
    seed: int
    min_images: int
    max_images: int
    optimizer: str
    mixed_precision: str

    @classmethod
    def from_config(
        cls,
        config: Config,
        images_dir: Path,
        output_dir: Path,
        *,
        identifier: str,
        class_name: str,
        epochs: int | None = None,
        max_steps: int | None = None,
        num_class_images: int | None = None,
        train_text_encoder: bool | None = None,
        learning_rate: float | None = None,
        rank: int | None = None,
    ) -> SubjectTrainingArgs:
        """``[training]`` settings, with the values given here winning."""
        settings = config.training
        for label, value, low in (
            ("epochs", epochs, 1),
            ("max steps", max_steps, 1),
            ("class images", num_class_images, 0),
        ):
            if value is not None and value < low:
                raise InvalidInput(f"{label} must be at least {low} (got {value})")
        return cls(
            images_dir=images_dir,
            output_dir=output_dir,
            identifier=identifier,
            class_name=class_name,
            epochs=epochs or settings.subject_epochs,
            max_steps=max_steps,
            learning_rate=learning_rate or settings.subject_learning_rate,
            rank=rank or settings.subject_rank,
            batch_size=settings.subject_batch_size,
            gradient_accumulation=settings.gradient_accumulation,
            prior_loss_weight=settings.prior_loss_weight,
            num_class_images=settings.num_class_images if num_class_images is None else num_class_images,
            resolution=settings.resolution,
            instance_prompt=settings.instance_prompt,
            class_prompt=settings.class_prompt,
            train_text_encoder=settings.train_text_encoder if train_text_encoder is None else train_text_encoder,
            sample_images=settings.sample_images,
            checkpoint_every=settings.checkpoint_every,
            seed=settings.seed,
            min_images=settings.min_images,
            max_images=settings.max_images,
            optimizer=settings.optimizer,
            mixed_precision=settings.mixed_precision,
        )

    @property
    def prior_preservation(self) -> bool:
        return self.prior_loss_weight > 0 and self.num_class_images > 0

    @property
    def sample_prompt(self) -> str:
        return self.instance_prompt.format(identifier=self.identifier, class_name=self.class_name)


@dataclass(frozen=True)
class SubjectEpoch:
    epoch: int  # 1-based
    step: int
    loss: float


@dataclass(frozen=True)
class SubjectTrainingResult:
    output_dir: Path
    lora_file: Path
    steps: int
    epochs: list[SubjectEpoch]
    probe_loss_before: float
    probe_loss_after: float
    instance_images: int
    class_images: int
    resumed_from: int | None
    seconds: float
    sample_prompt: str
    samples: list[Path] = field(default_factory=list)
    sample_seeds: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    @property
    def grid(self) -> Path | None:
        path = self.output_dir / SAMPLES_DIR / "grid.png"
        return path if path.is_file() else None

    def preview_jpeg(self) -> bytes | None:
        """A small JPEG of the sample grid: the character's picture in the registry."""
        from PIL import Image

        if self.grid is None:
            return None
        with Image.open(self.grid) as image:
            small = image.convert("RGB")
        small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        for key in ("output_dir", "lora_file"):
            document[key] = str(document[key])
        document["samples"] = [str(path) for path in self.samples]
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> SubjectTrainingResult:
        values = dict(document)
        values["output_dir"] = Path(values["output_dir"])
        values["lora_file"] = Path(values["lora_file"])
        values["samples"] = [Path(path) for path in values["samples"]]
        values["epochs"] = [SubjectEpoch(**epoch) for epoch in values["epochs"]]
        return cls(**values)


def train_subject_lora(
    config: Config,
    args: SubjectTrainingArgs,
    *,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> SubjectTrainingResult:
    """Train (or resume, or find finished) the DreamBooth LoRA described by ``args``."""
    images = load_instance_images(
        args.images_dir, identifier=args.identifier, class_name=args.class_name,
        instance_prompt=args.instance_prompt, min_images=args.min_images, max_images=args.max_images,
    )  # fmt: skip
    run = checkpoints.fingerprint(
        kind="subject_lora", model=config.models.image, images=[(i.digest, i.caption) for i in images],
        **{k: v for k, v in asdict(args).items() if k not in _NOT_FINGERPRINTED},
    )  # fmt: skip
    finished = _finished_result(args, run)
    if finished is not None:
        return finished
    from storyloom.training.optimizers import release_memory

    try:
        return _SubjectRun(config, args, images, run, progress, should_cancel).train()
    finally:
        release_memory()


# Paths move with the data directory; the length of a run may change between a stop and a resume.
_NOT_FINGERPRINTED = frozenset(
    {"images_dir", "output_dir", "epochs", "max_steps", "checkpoint_every", "sample_images", "min_images", "max_images"}
)


def _request(args: SubjectTrainingArgs) -> dict[str, Any]:
    return {"epochs": args.epochs, "max_steps": args.max_steps, "sample_images": args.sample_images}


def _finished_result(args: SubjectTrainingArgs, run: str) -> SubjectTrainingResult | None:
    saved = checkpoints.finished_result(args.output_dir, run, _request(args), product=LORA_WEIGHT_NAME, what="LoRA")
    return None if saved is None else SubjectTrainingResult.from_json(saved)


class _SubjectRun:
    """One DreamBooth run: models, data, optimizer and the loop. Built and used once."""

    def __init__(
        self,
        config: Config,
        args: SubjectTrainingArgs,
        images: list[InstanceImage],
        run: str,
        progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
    ) -> None:
        self.config = config
        self.args = args
        self.images = images
        self.run = run
        self.progress = progress
        self.should_cancel = should_cancel

    # --- the run ---------------------------------------------------------------------------------------

    def train(self) -> SubjectTrainingResult:
        import torch

        from storyloom.training.class_images import ensure_class_images

        args = self.args
        started = time.perf_counter()
        self._report(0, 1, "loading the image model")
        pipe = self._load_pipeline()
        self.pipe = pipe
        class_paths = []
        if args.prior_preservation:
            class_paths = ensure_class_images(
                pipe, self.config, class_name=args.class_name,
                prompt=args.class_prompt.format(identifier=args.identifier, class_name=args.class_name),
                count=args.num_class_images, resolution=args.resolution, progress=self.progress,
                should_cancel=self.should_cancel,
            )  # fmt: skip
        self._prepare_models()
        self._prepare_data(class_paths)
        plan = StepPlan.build(
            examples=max(len(self.instance_pixels), len(self.class_pixels)), batch_size=args.batch_size,
            accumulation=args.gradient_accumulation, epochs=args.epochs, max_steps=args.max_steps, seed=args.seed,
        )  # fmt: skip
        modules = {"unet": pipe.unet, "text_encoder": pipe.text_encoder if args.train_text_encoder else None}
        parameters = checkpoints.trainable_parameters(modules)
        generator = torch.Generator(device=self.device).manual_seed(args.seed)
        loop = TrainingLoop.build(
            plan, parameters, args, run_fingerprint=self.run, device=self.device, name="training", loss_digits=4,
            progress=self.progress, should_cancel=self.should_cancel, generator=generator,
        )  # fmt: skip
        self.precision = loop.precision
        saved = loop.resume()
        if saved is not None:
            logger.info("resuming DreamBooth training at step %d of %d", saved.step, plan.total_steps)
        else:
            loop.state["probe_before"] = self._probe_loss()

        self._train_mode(True)
        step = loop.run(lambda indices: self._loss(indices, generator), on_epoch_end=SubjectEpoch)
        self._train_mode(False)
        state = loop.state

        lora_file = self._save_lora()
        probe_after = self._probe_loss()
        samples, seeds = self._samples()
        result = SubjectTrainingResult(
            output_dir=args.output_dir,
            lora_file=lora_file,
            steps=step,
            epochs=[SubjectEpoch(**epoch) for epoch in state["epochs"]],
            probe_loss_before=state["probe_before"],
            probe_loss_after=probe_after,
            instance_images=len(self.instance_pixels),
            class_images=len(self.class_pixels),
            resumed_from=saved.step if saved is not None else None,
            seconds=time.perf_counter() - started,
            sample_prompt=args.sample_prompt,
            samples=samples,
            sample_seeds=seeds,
            losses=list(state["losses"]),
        )
        self._finish(result)
        return result

    # --- models and data -------------------------------------------------------------------------------

    def _load_pipeline(self) -> Any:
        """A private copy of the base SD pipeline (no compile, no tiling: this one trains)."""
        from storyloom.models.runtime.devices import resolve_device, resolve_dtype
        from storyloom.models.runtime.loading import load_sd_pipeline

        self.device = resolve_device(self.config.device)
        self.weight_dtype = resolve_dtype(self.config.device, self.device)
        return load_sd_pipeline(self.config)

    def _prepare_models(self) -> None:
        import torch
        from diffusers import DDPMScheduler
        from peft import LoraConfig

        from storyloom.training.optimizers import keep_in_float32

        args, pipe = self.args, self.pipe
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        for module in (pipe.vae, pipe.text_encoder, pipe.unet):
            module.requires_grad_(False)
        torch.manual_seed(args.seed)  # the LoRAs' initial weights
        pipe.unet.add_adapter(
            LoraConfig(
                r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian", target_modules=list(UNET_TARGETS)
            )
        )
        trained = [pipe.unet]
        if args.train_text_encoder:
            pipe.text_encoder.add_adapter(
                LoraConfig(
                    r=args.rank, lora_alpha=args.rank, init_lora_weights="gaussian",
                    target_modules=list(TEXT_ENCODER_TARGETS),
                )
            )  # fmt: skip
            trained.append(pipe.text_encoder)
        for module in trained:
            keep_in_float32(p for p in module.parameters() if p.requires_grad)
            if self.device.type == "cuda":  # activations dominate memory at 512 px and batch 4 + 4
                if hasattr(module, "enable_gradient_checkpointing"):
                    module.enable_gradient_checkpointing()
                else:
                    module.gradient_checkpointing_enable()

    def _prepare_data(self, class_paths: list[Path]) -> None:
        """Square uint8 pixels of every photo and class image; prompt embeddings too while the text encoder is
        frozen (computed once instead of every step)."""
        args = self.args
        self.instance_pixels = [square_pixels(image.path, args.resolution) for image in self.images]
        self.class_pixels = [square_pixels(path, args.resolution) for path in class_paths]
        self.captions = [image.caption for image in self.images]
        class_prompt = args.class_prompt.format(identifier=args.identifier, class_name=args.class_name)
        tokenizer = self.pipe.tokenizer
        self.caption_ids = self._token_ids(self.captions)
        self.class_ids = self._token_ids([class_prompt])
        too_long = [c for c in self.captions if len(tokenizer(c)["input_ids"]) > tokenizer.model_max_length]
        if too_long:
            logger.warning(
                "%d captions are longer than %d tokens and were cut", len(too_long), tokenizer.model_max_length
            )
        self.caption_embeds = self.class_embeds = None
        if not args.train_text_encoder:
            import torch

            with torch.no_grad():
                self.caption_embeds = self._encode(self.caption_ids)
                self.class_embeds = self._encode(self.class_ids)

    def _token_ids(self, texts: list[str]) -> Any:
        tokenizer = self.pipe.tokenizer
        return tokenizer(
            texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids

    def _encode(self, ids: Any) -> Any:
        return self.pipe.text_encoder(ids.to(self.device))[0]

    def _train_mode(self, training: bool) -> None:
        self.pipe.unet.train(training)
        if self.args.train_text_encoder:
            self.pipe.text_encoder.train(training)

    # --- the loss --------------------------------------------------------------------------------------

    def _loss(self, indices: list[int], generator: Any) -> Any:
        """Noise-prediction loss of one batch: photos, and as many class images weighted ``prior_loss_weight``."""
        import torch
        import torch.nn.functional as F

        from storyloom.training.optimizers import autocast

        photos = [index % len(self.instance_pixels) for index in indices]
        pixels = [self.instance_pixels[i] for i in photos]
        ids = [self.caption_ids[i] for i in photos]
        embeds = None if self.caption_embeds is None else [self.caption_embeds[i] for i in photos]
        prior = self.args.prior_preservation and bool(self.class_pixels)
        if prior:
            pixels += [self.class_pixels[index % len(self.class_pixels)] for index in indices]
            ids += [self.class_ids[0]] * len(indices)
            if embeds is not None and self.class_embeds is not None:  # encoded together, or neither
                embeds += [self.class_embeds[0]] * len(indices)
        with torch.no_grad():
            images = to_model_range(torch.stack(pixels)).to(self.device, self.weight_dtype)
            latents = self.pipe.vae.encode(images).latent_dist.sample(generator=generator)
            latents = latents * self.pipe.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator, device=self.device, dtype=latents.dtype)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator, device=self.device).long()
        with autocast(self.device, self.precision):
            hidden = torch.stack(embeds) if embeds is not None else self._encode(torch.stack(ids))
            noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
            prediction = self.pipe.unet(noisy, timesteps, hidden.to(noisy.dtype)).sample
        target = self._target(latents, noise, timesteps)
        if not prior:
            return F.mse_loss(prediction.float(), target.float())
        count = len(indices)
        instance = F.mse_loss(prediction[:count].float(), target[:count].float())
        preserved = F.mse_loss(prediction[count:].float(), target[count:].float())
        return instance + self.args.prior_loss_weight * preserved

    def _target(self, latents: Any, noise: Any, timesteps: Any) -> Any:
        kind = self.noise_scheduler.config.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        raise InvalidInput(f"the image model predicts {kind!r}; DreamBooth here supports epsilon and v-prediction")

    def _probe_loss(self) -> float:
        """The loss on (up to four of) the photos with fixed noise and timesteps: comparable before and after
        training, unlike the noisy per-step loss."""
        import torch
        import torch.nn.functional as F

        count = min(4, len(self.instance_pixels))
        generator = torch.Generator(device="cpu").manual_seed(PROBE_SEED)
        with torch.no_grad():
            images = to_model_range(torch.stack(self.instance_pixels[:count])).to(self.device, self.weight_dtype)
            latents = self.pipe.vae.encode(images).latent_dist.mean * self.pipe.vae.config.scaling_factor
            total = 0.0
            for timestep in PROBE_TIMESTEPS:
                noise = torch.randn(latents.shape, generator=generator).to(self.device, latents.dtype)
                timesteps = torch.full((count,), timestep, device=self.device, dtype=torch.long)
                hidden = self._encode(self.caption_ids[:count]).to(latents.dtype)
                noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
                prediction = self.pipe.unet(noisy, timesteps, hidden).sample
                total += float(F.mse_loss(prediction.float(), self._target(latents, noise, timesteps).float()))
        return total / len(PROBE_TIMESTEPS)

    # --- results ---------------------------------------------------------------------------------------

    def _save_lora(self) -> Path:
        """The LoRA in the diffusers format, written beside and then moved into place."""
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        out = self.args.output_dir
        temporary = out / ".lora.tmp"
        shutil.rmtree(temporary, ignore_errors=True)

        def layers(module: Any) -> dict[str, Any]:
            state = convert_state_dict_to_diffusers(get_peft_model_state_dict(module))
            return {key: value.detach().to("cpu").contiguous() for key, value in state.items()}

        text_encoder = self.pipe.text_encoder if self.args.train_text_encoder else None
        StableDiffusionPipeline.save_lora_weights(
            save_directory=temporary,
            unet_lora_layers=layers(self.pipe.unet),
            text_encoder_lora_layers=layers(text_encoder) if text_encoder is not None else None,
            safe_serialization=True,
            unet_lora_adapter_metadata=self.pipe.unet.peft_config["default"].to_dict(),
            text_encoder_lora_adapter_metadata=(
                text_encoder.peft_config["default"].to_dict() if text_encoder is not None else None
            ),
        )
        target = out / LORA_WEIGHT_NAME
        os.replace(temporary / LORA_WEIGHT_NAME, target)
        shutil.rmtree(temporary, ignore_errors=True)
        return target

    def _samples(self) -> tuple[list[Path], list[int]]:
        """Sample images of the instance prompt with the trained LoRA (and the base model's safety check)."""
        from storyloom.domain.parameters import save_png
        from storyloom.models.image.imaging import make_grid
        from storyloom.models.image.txt2img import Txt2Img

        args = self.args
        if args.sample_images <= 0:
            return [], []
        sampler = Txt2Img.from_pipeline(self.pipe, self.config)
        relay = None
        if self.progress is not None:
            progress = self.progress
            relay = lambda update: progress(StepProgress(update.step, update.total, stage="sample images"))  # noqa: E731
        batch = sampler(
            args.sample_prompt, seed=args.seed, num_images=args.sample_images, width=args.resolution,
            height=args.resolution, progress=relay, should_cancel=self.should_cancel,
        )  # fmt: skip
        directory = args.output_dir / SAMPLES_DIR
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for number, (image, parameters) in enumerate(zip(batch.images, batch.parameters), start=1):
            path = directory / f"sample_{number}.png"
            save_png(image, path, parameters)
            paths.append(path)
        save_png(make_grid(batch.images, 2), directory / "grid.png", batch.parameters[0])
        return paths, list(batch.seeds)

    def _finish(self, result: SubjectTrainingResult) -> None:
        """``training.json`` marks the run finished; only then does the checkpoint go."""
        out = self.args.output_dir
        document = {"fingerprint": self.run, "request": _request(self.args), "result": result.to_json()}
        checkpoints.mark_finished(out, document)
        logger.info("character LoRA written to %s", result.lora_file)

    def _report(self, step: int, total: int, stage: str) -> None:
        if self.progress is not None:
            self.progress(StepProgress(step, total, stage=stage))
