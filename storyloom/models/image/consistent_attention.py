"""A consistent look across a story's pages: StoryDiffusion-style consistent self-attention.

Inside ``consistent_attention`` every UNet call of the pipeline also runs a reference item in the same batch:
the story's reference picture (its first page or cast portrait), encoded by the VAE and noised to the current
timestep (the scheduler's ``alphas_cumprod``, noise from a fixed generator), conditioned on the page's own
prompt. Only the conditional branch's share is added (one item beside the page's two under guidance, so about
1.5× the work). In every self-attention layer the page's tokens attend to their own keys and values and to
every second one of the reference's ("reference-only" attention), so colours, characters and style carry over
from page to page; the reference item attends to itself alone and its output is dropped. Outside the block the UNet's own processors
are back and hooks removed: the plain pipeline's output, bit for bit.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from PIL import Image

if TYPE_CHECKING:
    from storyloom.config import Config

SELF_ATTENTION = "attn1.processor"  # diffusers' name of a transformer block's self-attention processor
REFERENCE_NOISE_SEED = 0  # the same noise at every step and page: the reference item is reproducible
# Pages attend to every second token of the reference, as StoryDiffusion attends to a sampled half of the other
# pictures' tokens: the look carries over at a fraction of the attention's cost. A fixed stride, not a random
# sample, so a page repeats for its seed.
REFERENCE_TOKEN_STRIDE = 2
GB = 1024**3
# SD 1.5 in half precision (UNet, VAE, text encoder, the upscaler's ControlNet): the image models' usual size,
# for when the worker does not say what it measured.
TYPICAL_IMAGE_WEIGHTS_BYTES = int(3.0 * GB)


@dataclass
class _SharedState:
    """What the UNet hooks tell the processors during one call: whether the batch's last item is the reference."""

    picture: Image.Image
    with_reference: bool = False
    latents: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)  # by latent (height, width)
    noise: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)


class SharedSelfAttentionProcessor:
    """Self-attention (as diffusers' ``AttnProcessor2_0``) where, while the hooks mark the batch's last item as
    the reference, every other item attends to its own tokens followed by the reference's."""

    def __init__(self, state: _SharedState, own: Any) -> None:
        self.state = state
        self.own = own  # the layer's own processor, for calls without a reference

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        if not self.state.with_reference or encoder_hidden_states is not None or attention_mask is not None:
            return self.own(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        pages = batch - 1
        sampled_key = key[pages:, :, ::REFERENCE_TOKEN_STRIDE].expand(pages, -1, -1, -1)
        sampled_value = value[pages:, :, ::REFERENCE_TOKEN_STRIDE].expand(pages, -1, -1, -1)
        shared_key = torch.cat([key[:pages], sampled_key], dim=2)
        shared_value = torch.cat([value[:pages], sampled_value], dim=2)
        page_out = F.scaled_dot_product_attention(query[:pages], shared_key, shared_value)
        reference_out = F.scaled_dot_product_attention(query[pages:], key[pages:], value[pages:])
        hidden_states = torch.cat([page_out, reference_out]).transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states.to(query.dtype)))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextlib.contextmanager
def consistent_attention(pipe: Any, picture: Image.Image) -> Iterator[None]:
    """Inside the block ``pipe``'s UNet calls share self-attention with ``picture``; afterwards the UNet's own
    attention processors are back and its hooks gone. ``SDTask`` enters it around each pipeline call, inside the
    prompt conditioning's hooks (``SDTask.sharing_attention`` asks it to)."""
    unet = pipe.unet
    state = _SharedState(picture.convert("RGB"))
    own = dict(unet.attn_processors)
    shared = {
        name: SharedSelfAttentionProcessor(state, processor) if name.endswith(SELF_ATTENTION) else processor
        for name, processor in own.items()
    }
    unet.set_attn_processor(shared)
    handles = [
        unet.register_forward_pre_hook(
            lambda module, args, kwargs: _add_reference(pipe, state, args, kwargs), with_kwargs=True
        ),
        # Other hooks on the UNet (AND's composition) were registered before: the reference joins the batch after
        # their widening, and leaves it before their combining.
        unet.register_forward_hook(
            lambda module, args, kwargs, output: _drop_reference(state, output), with_kwargs=True, prepend=True
        ),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        unet.set_attn_processor(own)


_UNET_ARGUMENTS = ("sample", "timestep", "encoder_hidden_states")


def _add_reference(pipe: Any, state: _SharedState, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict]:
    """The UNet's arguments with the reference item appended to every batched input."""
    kwargs = {**dict(zip(_UNET_ARGUMENTS, args)), **kwargs}
    sample, timestep = kwargs["sample"], kwargs["timestep"]
    kwargs["sample"] = torch.cat([sample, _noised_reference(pipe, state, sample, timestep)])
    if torch.is_tensor(timestep) and timestep.ndim > 0 and timestep.shape[0] == sample.shape[0]:
        kwargs["timestep"] = torch.cat([timestep, timestep[-1:]])
    # The last item is the page's conditional one (diffusers batches [unconditional, conditional]).
    kwargs["encoder_hidden_states"] = _with_last(kwargs["encoder_hidden_states"])
    added = kwargs.get("added_cond_kwargs")
    if added and added.get("image_embeds") is not None:
        kwargs["added_cond_kwargs"] = {**added, "image_embeds": [_with_last(e) for e in added["image_embeds"]]}
    for name in ("down_block_additional_residuals", "down_intrablock_additional_residuals"):
        if kwargs.get(name) is not None:
            kwargs[name] = tuple(_with_last(residual) for residual in kwargs[name])
    if kwargs.get("mid_block_additional_residual") is not None:
        kwargs["mid_block_additional_residual"] = _with_last(kwargs["mid_block_additional_residual"])
    state.with_reference = True
    return (), kwargs


def _with_last(tensor: torch.Tensor) -> torch.Tensor:
    return torch.cat([tensor, tensor[-1:]])


def _drop_reference(state: _SharedState, output: Any) -> Any:
    state.with_reference = False
    if isinstance(output, tuple):
        return (output[0][:-1], *output[1:])
    output.sample = output.sample[:-1]
    return output


def _noised_reference(pipe: Any, state: _SharedState, sample: torch.Tensor, timestep: Any) -> torch.Tensor:
    """The reference picture's latents at ``timestep``: sqrt(ᾱ)·x₀ + sqrt(1−ᾱ)·ε, the input the UNet sees for a
    noised picture whatever the scheduler (one that scales its inputs gives the UNet exactly this)."""
    size = (sample.shape[-2], sample.shape[-1])
    if size not in state.latents:
        state.latents[size] = _encode(pipe, state.picture, size).to(sample.dtype)
        generator = torch.Generator(device="cpu").manual_seed(REFERENCE_NOISE_SEED)
        noise = torch.randn((1, sample.shape[1], *size), generator=generator, dtype=torch.float32)
        state.noise[size] = noise.to(device=sample.device, dtype=sample.dtype)
    alphas = pipe.scheduler.alphas_cumprod
    step = float(timestep.flatten()[-1]) if torch.is_tensor(timestep) else float(timestep)
    alpha = float(alphas[min(max(round(step), 0), len(alphas) - 1)])
    return math.sqrt(alpha) * state.latents[size] + math.sqrt(1 - alpha) * state.noise[size]


@torch.no_grad()
def _encode(pipe: Any, picture: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """``picture`` at the page's size through the VAE (the distribution's mean: no randomness)."""
    vae = pipe.vae
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    resized = picture.resize((size[1] * factor, size[0] * factor), Image.Resampling.LANCZOS)
    pixels = pipe.image_processor.preprocess(resized).to(device=vae.device, dtype=vae.dtype)
    latents = vae.encode(pixels).latent_dist.mean
    return latents * vae.config.scaling_factor


def shared_attention_extra_bytes(width: int, height: int, bytes_per_value: int) -> int:
    """About how much more memory an SD 1.5 page at ``width``×``height`` needs with shared attention: the
    reference item's activations and its own self-attention scores, and in each of the two page items the
    scores over the reference's sampled tokens, at the finest level (8 heads of ``tokens``² values; the largest
    single term)."""
    tokens = (width // 8) * (height // 8)
    activations = tokens * 320 * 40  # the finest level's feature maps an item keeps alive at once
    scores = 8 * tokens * tokens
    sampled_scores = 8 * tokens * (tokens // REFERENCE_TOKEN_STRIDE)
    return bytes_per_value * (activations + scores + 2 * sampled_scores)


def plain_page_bytes(width: int, height: int, bytes_per_value: int) -> int:
    """About how much memory a plain page's two UNet items need at ``width``×``height`` (same terms)."""
    tokens = (width // 8) * (height // 8)
    return bytes_per_value * 2 * (tokens * 320 * 40 + 8 * tokens * tokens)


def consistent_attention_fits(
    config: Config, *, budget_bytes: int | None = None, weights_bytes: int | None = None
) -> bool:
    """Whether a page with shared attention fits the worker's memory: the image models' weights
    (``weights_bytes``, as the worker measured them; else a typical SD 1.5), a plain page and the extra of the
    reference item, against ``budget_bytes`` (default: ``worker.memory_budget_gb``, else the device's memory)."""
    from storyloom.models.runtime.devices import memory_budget_bytes, resolve_device, resolve_dtype

    device = resolve_device(config.device)
    if budget_bytes is None:
        budget_bytes = memory_budget_bytes(config)
    weights = TYPICAL_IMAGE_WEIGHTS_BYTES if weights_bytes is None else weights_bytes
    values = torch.finfo(resolve_dtype(config.device, device)).bits // 8
    width, height = config.image.width, config.image.height
    needed = weights + plain_page_bytes(width, height, values) + shared_attention_extra_bytes(width, height, values)
    return needed <= budget_bytes
