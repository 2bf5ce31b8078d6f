"""Seeded tiny models with the real architectures, built locally in seconds.

They back the tests and the ``tiny`` profile: an SD-1.5-shaped pipeline (UNet, VAE, CLIP text
encoder and tokenizer, safety checker), a ControlNet made from that UNet, the HED annotator network
(its fixed architecture, random weights), a Real-ESRGAN (RRDBNet) weights file, and a LLaMA-shaped
causal LM with a byte-level tokenizer, an SD inpainting pipeline (a 9-channel UNet on the SD parts) and
a CLIPSeg text-prompted segmentation model.
The same seed gives byte-identical weight files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyloom.config import tiny_models_key

if TYPE_CHECKING:
    from storyloom.config import Config

logger = logging.getLogger(__name__)

CLIP_HIDDEN = 32
TINY_SEED = 0
# Keys that ``from_pretrained``/``save_pretrained`` copy from their own arguments or from the environment
# (``HF_HUB_OFFLINE=1`` becomes ``"local_files_only": true``); they describe the build, not the model.
_LOAD_TIME_KEYS = frozenset(
    {
        "local_files_only",
        "cache_dir",
        "force_download",
        "proxies",
        "token",
        "use_auth_token",
        "revision",
        "subfolder",
        "_commit_hash",
        "trust_remote_code",
        "_from_auto",
        "_from_pipeline",
        "_name_or_path",  # where a part was loaded from when a builder reuses another tiny model's parts
    }
)

# Chat template in the common ``<|role|>`` style; enough for apply_chat_template() to work.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '</s>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# Text the tiny LM tokenizer learns its merges from: story words, so prompts tokenize sensibly.
_TOKENIZER_CORPUS = """
Once upon a time there was a little cat named Bhna who lived in a cozy house by the sea.
Every morning the cat looked out of the window and watched the boats, the birds and the waves.
One day a friendly dog came to the door and asked if the cat wanted to go on an adventure.
They walked through the forest, crossed a river on a wooden bridge and climbed a green hill.
At the top they found a garden full of flowers, apples and a sleeping dragon who was very kind.
The dragon woke up, smiled and told them a story about the stars and the moon.
When the sun went down, the friends went home, ate warm soup and fell asleep happy. The end.
You are a storyteller. Given a summary of a children's story, generate the full story.
Summary: Full story: Title: Page scene characters style watercolor picture book illustration.
{"title": "The Brave Little Cat", "characters": [{"name": "Bhna", "description": "a small orange cat"}]}
"""


@dataclass(frozen=True)
class TinyModelPaths:
    root: Path

    @property
    def sd15(self) -> Path:
        return self.root / "sd15"

    @property
    def controlnet(self) -> Path:
        return self.root / "controlnet"

    @property
    def hed_annotator(self) -> Path:
        return self.root / "hed-annotator"

    @property
    def esrgan(self) -> Path:
        return self.root / "esrgan" / "tiny_x4.safetensors"

    @property
    def llama(self) -> Path:
        return self.root / "llama"

    @property
    def vits_en(self) -> Path:
        return self.root / "vits-en"

    @property
    def vits_zh(self) -> Path:
        return self.root / "vits-zh"

    @property
    def ip_adapter(self) -> Path:
        return self.root / "ip-adapter"

    @property
    def blip(self) -> Path:
        return self.root / "blip"

    @property
    def clip(self) -> Path:
        return self.root / "clip"

    @property
    def sd15_inpaint(self) -> Path:
        return self.root / "sd15-inpaint"

    @property
    def clipseg(self) -> Path:
        return self.root / "clipseg"


def shared_tiny_models() -> TinyModelPaths:
    """Tiny models built once per machine and environment (under ``$STORYLOOM_TEST_CACHE`` or
    ``~/.cache/storyloom-tests``, in a folder named by ``tiny_models_key()``).

    The builder is seeded and byte-identical, so one build can serve every test and benchmark run."""
    import os

    base = os.environ.get("STORYLOOM_TEST_CACHE") or Path.home() / ".cache" / "storyloom-tests"
    return make_tiny_models(Path(base) / f"tiny-models-{tiny_models_key()}")


def make_tiny_config(data_dir: Path | str, models: TinyModelPaths, **sections: dict[str, Any]) -> Config:
    """A tiny-profile config whose models are ``models`` and whose data lives in ``data_dir``;
    ``sections`` override settings, e.g. ``image={"steps": 3}``."""
    from storyloom.config import load_config, tiny_model_settings

    overrides: dict[str, Any] = {"paths": {"data_dir": str(data_dir)}, "models": tiny_model_settings(models.root)}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(None, profile="tiny", environ={}, overrides=overrides)


def make_tiny_models(root: Path | str, seed: int = TINY_SEED, *, force: bool = False) -> TinyModelPaths:
    """Build every tiny model under ``root`` (skipping ones already there unless ``force``)."""
    paths = TinyModelPaths(Path(root))
    builders = (
        (paths.sd15, lambda: build_tiny_sd15(paths.sd15, seed)),
        (paths.controlnet, lambda: build_tiny_controlnet(paths.controlnet, paths.sd15, seed)),
        (paths.hed_annotator, lambda: build_tiny_hed_annotator(paths.hed_annotator, seed)),
        (paths.esrgan, lambda: build_tiny_esrgan(paths.esrgan, seed)),
        (paths.llama, lambda: build_tiny_llama(paths.llama, seed)),
        (paths.vits_en, lambda: build_tiny_vits(paths.vits_en, "en", seed)),
        (paths.vits_zh, lambda: build_tiny_vits(paths.vits_zh, "zh", seed)),
        (paths.ip_adapter, lambda: build_tiny_ip_adapter(paths.ip_adapter, paths.sd15, seed)),
        (paths.blip, lambda: build_tiny_blip(paths.blip, seed)),
        (paths.clip, lambda: build_tiny_clip(paths.clip, seed)),
        (paths.sd15_inpaint, lambda: build_tiny_sd15_inpaint(paths.sd15_inpaint, paths.sd15, seed)),
        (paths.clipseg, lambda: build_tiny_clipseg(paths.clipseg, seed)),
    )
    for target, build in builders:
        if force or not _complete(target):
            logger.info("building tiny model %s", target)
            build()
    return paths


def ensure_tiny_model(path: Path | str, seed: int = TINY_SEED) -> None:
    """Build the tiny model that belongs at ``path`` (and any it derives from) if it is missing."""
    path = Path(path)
    if _complete(path):
        return
    root = path.parent.parent if path.suffix == ".safetensors" else path.parent
    make_tiny_models(root, seed)


def _complete(target: Path) -> bool:
    if target.suffix == ".safetensors":
        return target.is_file()
    return (target / ".complete").is_file()


def _finish_build(target: Path) -> None:
    """End a builder: its JSON files in canonical form, then the marker that says the folder is complete."""
    _canonical_json_files(target)
    (target / ".complete").write_text("ok\n")


def _canonical_json_files(directory: Path) -> None:
    """Rewrite every JSON file the libraries wrote without load-time keys, in one fixed layout, so the
    bytes depend on the seed and the library versions only, never on ``HF_HUB_*`` variables."""
    for path in sorted(directory.rglob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key not in _LOAD_TIME_KEYS}
        path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _seeded(seed: int):
    import torch

    torch.manual_seed(seed)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to a printable character."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, codes)))


def _clip_tokenizer_files(directory: Path) -> None:
    """A CLIP BPE tokenizer with the byte alphabet, learned merges and CLIP's special tokens."""
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = list(bytes_to_unicode().values())
    vocab_tokens = alphabet + [symbol + "</w>" for symbol in alphabet]
    merges = _learn_merges(_TOKENIZER_CORPUS.lower().split(), count=300)
    for left, right in merges:
        vocab_tokens.append(left + right)
    vocab_tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(vocab_tokens))}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "do_lower_case": True,
            }
        )
    )


def _learn_merges(words: list[str], count: int) -> list[tuple[str, str]]:
    """A few BPE merges in CLIP's word-final ``</w>`` convention (deterministic)."""
    from collections import Counter

    byte_map = bytes_to_unicode()
    corpus = Counter(
        tuple("".join(byte_map[b] for b in ch.encode()) for ch in word[:-1])
        + ("".join(byte_map[b] for b in word[-1].encode()) + "</w>",)
        for word in words
        if word
    )
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, freq in corpus.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += freq
        if not pairs:
            break
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for symbols, freq in corpus.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += freq
        corpus = merged
    return merges


def build_tiny_sd15(target: Path, seed: int = TINY_SEED) -> None:
    """An SD-1.5-shaped diffusers pipeline directory (DPM++ 2M Karras scheduler)."""
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    target.mkdir(parents=True, exist_ok=True)
    _clip_tokenizer_files(target / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(target / "tokenizer")

    _seeded(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=CLIP_HIDDEN,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    _seeded(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    _seeded(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=CLIP_HIDDEN,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=3,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            projection_dim=CLIP_HIDDEN,
        )
    )
    _seeded(seed + 3)
    safety_checker = StableDiffusionSafetyChecker(
        CLIPConfig(
            text_config={
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_attention_heads": 2,
                "num_hidden_layers": 1,
                "vocab_size": 64,
            },
            vision_config={
                "hidden_size": 16,
                "intermediate_size": 16,
                "num_attention_heads": 2,
                "num_hidden_layers": 1,
                "image_size": 32,
                "patch_size": 8,
            },
            projection_dim=16,
        )
    )
    # Thresholds above any cosine similarity: the tiny checker flags nothing unless a test lowers them.
    safety_checker.concept_embeds_weights.data.fill_(2.0)
    safety_checker.special_care_embeds_weights.data.fill_(2.0)
    feature_extractor = CLIPImageProcessor(
        crop_size={"height": 32, "width": 32}, size={"shortest_edge": 32}, do_center_crop=True
    )
    scheduler = DPMSolverMultistepScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        algorithm_type="dpmsolver++",
        solver_order=2,
        use_karras_sigmas=True,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=safety_checker,
        feature_extractor=feature_extractor,
        requires_safety_checker=True,
    )
    pipeline.save_pretrained(target, safe_serialization=True)  # type: ignore[attr-defined]  # diffusers' top-level names resolve to its dummy classes for mypy
    _finish_build(target)


def build_tiny_controlnet(target: Path, sd15: Path, seed: int = TINY_SEED) -> None:
    """A ControlNet shaped after the tiny UNet (the way tile/HED ControlNets match SD 1.5)."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    if not _complete(sd15):
        build_tiny_sd15(sd15, seed)
    unet = UNet2DConditionModel.from_pretrained(sd15, subfolder="unet")
    _seeded(seed + 4)
    # One down-sampling step in the conditioning embedding matches the tiny VAE's factor of 2.
    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(16, 32))
    target.mkdir(parents=True, exist_ok=True)
    controlnet.save_pretrained(target, safe_serialization=True)
    _finish_build(target)


def build_tiny_hed_annotator(target: Path, seed: int = TINY_SEED) -> None:
    """``ControlNetHED.pth`` for controlnet_aux's HED network, randomly initialised.

    The architecture is fixed (about 14.7M parameters), so the weights are stored in float16 to halve the
    file (30 MB); they load into the float32 network unchanged. ``torch.save`` writes a zip with fixed
    timestamps and a content-derived id, so the same seed gives the same bytes."""
    import torch

    from storyloom.models.image.hed import WEIGHTS_FILE, hed_classes

    _, network_class = hed_classes()
    _seeded(seed + 7)
    network = network_class()
    state = {key: value.detach().to(torch.float16).contiguous() for key, value in network.state_dict().items()}
    target.mkdir(parents=True, exist_ok=True)
    torch.save(state, target / WEIGHTS_FILE)
    _finish_build(target)


def build_tiny_esrgan(target: Path, seed: int = TINY_SEED) -> None:
    """A 4x RRDBNet (Real-ESRGAN x4plus architecture, fewer filters and blocks) as safetensors.

    Random weights would turn every picture near-black, so three channels carry the image straight
    through (identity kernels) and the random residual trunk adds a modest change on top: the output is
    a recognisable picture, and the trunk's receptive field still makes tile borders matter."""
    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    _seeded(seed + 5)
    model = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    state = {key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}

    def pass_through(prefix: str, keep_other_channels: bool) -> None:
        weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        if not keep_other_channels:
            weight.zero_()
            bias.zero_()
        weight[:3], bias[:3] = 0.0, 0.0
        for channel in range(3):
            weight[channel, channel, 1, 1] = 1.0

    pass_through("model.0", keep_other_channels=True)  # first conv: the image plus random features
    for prefix in ("model.3", "model.6", "model.8", "model.10"):  # upsampling convs, HR conv, last conv
        pass_through(prefix, keep_other_channels=False)
    state["model.1.sub.1.weight"].mul_(0.2)  # trunk output conv: a modest residual
    state["model.1.sub.1.bias"] = torch.zeros_like(state["model.1.sub.1.bias"])
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(target))


def build_tiny_llama(target: Path, seed: int = TINY_SEED) -> None:
    """A LLaMA-shaped causal LM with a byte-level BPE tokenizer and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator([_TOKENIZER_CORPUS] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=2048,
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(target)

    _seeded(seed + 6)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(target, safe_serialization=True)
    _finish_build(target)


TINY_IP_ADAPTER_WEIGHTS = "models/ip-adapter_sd15.safetensors"
# The "plus" variant beside it, under the real file's name, sharing the image encoder as the real ones do.
TINY_IP_ADAPTER_PLUS_WEIGHTS = "models/ip-adapter-plus_sd15.safetensors"


def build_tiny_ip_adapter(target: Path, sd15: Path, seed: int = TINY_SEED) -> None:
    """An IP-Adapter for the tiny UNet in the layout ``load_ip_adapter`` reads: ``models/image_encoder`` (a
    CLIPVisionModelWithProjection) and ``models/ip-adapter_sd15.safetensors`` with the ``image_proj`` and
    ``ip_adapter`` weights, one key and value projection per cross-attention layer, numbered 1, 3, 5… in the
    UNet's processor order as diffusers numbers them; and beside it the "plus" variant
    ``models/ip-adapter-plus_sd15.safetensors`` (a Resampler image projection over the encoder's hidden states)."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if not _complete(sd15):
        build_tiny_sd15(sd15, seed)
    unet = UNet2DConditionModel.from_pretrained(sd15, subfolder="unet")
    cross = unet.config.cross_attention_dim
    channels = list(unet.config.block_out_channels)
    _seeded(seed + 8)
    encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=CLIP_HIDDEN,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            image_size=32,
            patch_size=8,
            projection_dim=CLIP_HIDDEN,
        )
    )
    weights = target / TINY_IP_ADAPTER_WEIGHTS
    encoder.save_pretrained(weights.parent / "image_encoder", safe_serialization=True)
    generator = torch.Generator().manual_seed(seed + 9)
    tokens = 4  # image tokens of a plain (not "plus") IP-Adapter
    state = {
        "image_proj.proj.weight": torch.randn(cross * tokens, CLIP_HIDDEN, generator=generator) * 0.2,
        "image_proj.proj.bias": torch.zeros(cross * tokens),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name[len("up_blocks.")])]
        else:
            hidden = channels[int(name[len("down_blocks.")])]
        for projection in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{key_id}.{projection}.weight"] = torch.randn(hidden, cross, generator=generator) * 0.3
        key_id += 2
    save_file({key: value.contiguous() for key, value in state.items()}, str(weights))
    plus = _tiny_ip_adapter_plus_projection(generator, embed_dims=CLIP_HIDDEN, output_dims=cross)
    plus.update({key: value * 1.5 for key, value in state.items() if key.startswith("ip_adapter.")})
    save_file({key: value.contiguous() for key, value in plus.items()}, str(target / TINY_IP_ADAPTER_PLUS_WEIGHTS))
    _finish_build(target)


def _tiny_ip_adapter_plus_projection(generator: Any, *, embed_dims: int, output_dims: int) -> dict[str, Any]:
    """The ``image_proj`` of an IP-Adapter plus in the original Resampler's names, as ``load_ip_adapter`` converts
    them: learned query ``latents``, ``proj_in`` from the encoder's hidden size, four blocks of (perceiver
    attention, feed-forward), ``proj_out`` and ``norm_out``. diffusers reads the heads as ``to_q`` rows / 64 and
    builds four blocks, so the hidden size is one head of 64."""
    import torch

    hidden, queries, depth = 64, 4, 4

    def randn(*shape: int, std: float = 0.1) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * std

    state = {
        "image_proj.latents": randn(1, queries, hidden, std=hidden**-0.5),
        "image_proj.proj_in.weight": randn(hidden, embed_dims),
        "image_proj.proj_in.bias": torch.zeros(hidden),
        "image_proj.proj_out.weight": randn(output_dims, hidden, std=0.3),
        "image_proj.proj_out.bias": torch.zeros(output_dims),
        "image_proj.norm_out.weight": torch.ones(output_dims),
        "image_proj.norm_out.bias": torch.zeros(output_dims),
    }
    for block in range(depth):
        prefix = f"image_proj.layers.{block}"
        for norm in ("0.norm1", "0.norm2", "1.0"):
            state[f"{prefix}.{norm}.weight"] = torch.ones(hidden)
            state[f"{prefix}.{norm}.bias"] = torch.zeros(hidden)
        state[f"{prefix}.0.to_q.weight"] = randn(hidden, hidden)
        state[f"{prefix}.0.to_kv.weight"] = randn(2 * hidden, hidden)
        state[f"{prefix}.0.to_out.weight"] = randn(hidden, hidden)
        state[f"{prefix}.1.1.weight"] = randn(4 * hidden, hidden)
        state[f"{prefix}.1.3.weight"] = randn(hidden, 4 * hidden)
    return state


def build_tiny_blip(target: Path, seed: int = TINY_SEED) -> None:
    """A BLIP captioning model (BlipForConditionalGeneration) with a word-level BERT tokenizer of the story words
    and BLIP's ``[DEC]`` start token, and its processor."""
    import re

    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    words = sorted(set(re.findall(r"[a-z]+", _TOKENIZER_CORPUS.lower())))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *words]
    tokenizer = BertTokenizer(vocab={word: index for index, word in enumerate(vocab)}, bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    _seeded(seed + 10)
    text = {
        "vocab_size": len(vocab),
        "hidden_size": CLIP_HIDDEN,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 64,
        "bos_token_id": vocab.index("[DEC]"),
        "eos_token_id": vocab.index("[SEP]"),
        "sep_token_id": vocab.index("[SEP]"),
        "pad_token_id": vocab.index("[PAD]"),
    }
    vision = {
        "hidden_size": CLIP_HIDDEN,
        "intermediate_size": 37,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 32,
        "patch_size": 8,
    }
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision, projection_dim=CLIP_HIDDEN))
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)
    _finish_build(target)


def _tiny_clip_text_config(tokenizer: Any) -> dict[str, Any]:
    """The text tower of the tiny CLIP-family models (CLIP, CLIPSeg) over the tiny CLIP tokenizer."""
    return {
        "hidden_size": CLIP_HIDDEN,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def build_tiny_clip(target: Path, seed: int = TINY_SEED) -> None:
    """A CLIP model (text and vision towers with projections) and its processor, for ranking words against a picture."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    _clip_tokenizer_files(target / "tokenizer-source")
    tokenizer = CLIPTokenizer.from_pretrained(target / "tokenizer-source")
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    _seeded(seed + 11)
    model = CLIPModel(
        CLIPConfig(
            text_config=_tiny_clip_text_config(tokenizer),
            vision_config={
                "hidden_size": CLIP_HIDDEN,
                "intermediate_size": 37,
                "num_attention_heads": 4,
                "num_hidden_layers": 2,
                "image_size": 32,
                "patch_size": 8,
            },
            projection_dim=CLIP_HIDDEN,
        )
    )
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)
    _finish_build(target)


def build_tiny_sd15_inpaint(target: Path, sd15: Path, seed: int = TINY_SEED) -> None:
    """An SD inpainting pipeline directory: the tiny SD's VAE, text encoder, tokenizer, scheduler and safety
    checker with a UNet of 9 input channels (noisy latents, the mask, the masked picture's latents), as
    ``StableDiffusionInpaintPipeline.from_pretrained`` loads the real inpainting model."""
    from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline, UNet2DConditionModel

    if not _complete(sd15):
        build_tiny_sd15(sd15, seed)
    base = StableDiffusionPipeline.from_pretrained(sd15)
    _seeded(seed + 12)
    unet = UNet2DConditionModel(**{**dict(base.unet.config), "in_channels": 9})
    pipeline = StableDiffusionInpaintPipeline(
        unet=unet,
        vae=base.vae,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        scheduler=base.scheduler,
        safety_checker=base.safety_checker,
        feature_extractor=base.feature_extractor,
        requires_safety_checker=True,
    )
    target.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(target, safe_serialization=True)  # type: ignore[attr-defined]  # diffusers' top-level names resolve to its dummy classes for mypy
    _finish_build(target)


# Random weights make CLIPSeg's answer depend on the picture far more than on the words, so the tiny model is
# reshaped to let the words decide: at any threshold from 0.2 to 0.75, TINY_REGION_FOUND finds the whole picture
# and TINY_REGION_MISSED finds nothing (tests need both; checked on flat colours, noise, gradients and tiny SD
# drawings, where the first stays above 0.79 and the second below 0.12); other words find a part that depends
# on the picture, in blocks of one patch.
TINY_REGION_FOUND = "a tree"
TINY_REGION_MISSED = "the sky"
_TINY_CLIPSEG_TEXT_GAIN = 20.0  # the words' FiLM shift, amplified
_TINY_CLIPSEG_IMAGE_GAIN = 0.03  # the picture's features, damped
_TINY_CLIPSEG_BIAS = -7.0  # centres the words' logits so some land above a threshold and some below


def build_tiny_clipseg(target: Path, seed: int = TINY_SEED) -> None:
    """A CLIPSeg model (``CLIPSegForImageSegmentation``: CLIP towers and the FiLM-conditioned decoder) with its
    processor (CLIP tokenizer, ViT image processor), as the real text-prompted segmentation model is saved."""
    import torch
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        CLIPTokenizer,
        ViTImageProcessor,
    )

    _clip_tokenizer_files(target / "tokenizer-source")
    tokenizer = CLIPTokenizer.from_pretrained(target / "tokenizer-source")
    processor = CLIPSegProcessor(
        image_processor=ViTImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    _seeded(seed + 13)
    model = CLIPSegForImageSegmentation(
        CLIPSegConfig(
            text_config=_tiny_clip_text_config(tokenizer),
            vision_config={
                "hidden_size": CLIP_HIDDEN,
                "intermediate_size": 37,
                "num_attention_heads": 4,
                "num_hidden_layers": 3,
                "image_size": 32,
                "patch_size": 8,
            },
            projection_dim=CLIP_HIDDEN,
            extract_layers=(1, 2),
            reduce_dim=16,
            decoder_num_attention_heads=2,
            decoder_intermediate_size=32,
        )
    )
    decoder: Any = model.decoder
    with torch.no_grad():
        # One weight per channel for the whole patch (no per-pixel pattern inside a patch), the words added to
        # every patch's features at full strength, the picture's features kept small.
        kernel = decoder.transposed_convolution.weight
        per_channel = torch.randn(kernel.shape[0], generator=torch.Generator().manual_seed(seed + 14))
        kernel.copy_(per_channel[:, None, None, None].expand_as(kernel))
        decoder.transposed_convolution.bias.fill_(_TINY_CLIPSEG_BIAS)
        decoder.film_mul.weight.zero_()
        decoder.film_mul.bias.fill_(1.0)
        decoder.film_add.weight.mul_(_TINY_CLIPSEG_TEXT_GAIN)
        for reduce in decoder.reduces:
            reduce.weight.mul_(_TINY_CLIPSEG_IMAGE_GAIN)
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)
    _finish_build(target)


# Characters of the tiny voices' vocabularies: English letters (the real English model reads espeak phonemes,
# which need a system library the tests do without) and tone-marked pinyin for Chinese, as the real one reads.
_VITS_ALPHABETS = {
    "en": " abcdefghijklmnopqrstuvwxyz',.!?-",
    "zh": " abcdefghijklmnopqrstuvwxyzāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü',.!?-",
}
_VITS_SPEAKERS = {"en": 109, "zh": 44}  # as many speakers as the real VCTK and THCHS-30 models
_VITS_RATES = {"en": 22050, "zh": 16000}


def build_tiny_vits(target: Path, language: str, seed: int = TINY_SEED) -> None:
    """A VITS text-to-speech model (transformers' ``VitsModel``) with a character tokenizer for ``language``:
    the real architecture (text encoder, flows, duration predictor, HiFi-GAN decoder), tiny widths."""
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    target.mkdir(parents=True, exist_ok=True)
    vocab = {"_": 0, **{char: index + 1 for index, char in enumerate(_VITS_ALPHABETS[language])}}
    (target / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = VitsTokenizer(
        str(target / "vocab.json"), language=language, add_blank=True, normalize=True, phonemize=False
    )
    tokenizer.save_pretrained(target)
    _seeded(seed + 8 + sorted(_VITS_ALPHABETS).index(language))
    config = VitsConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=33,
        upsample_initial_channel=16,
        upsample_rates=[8, 8, 4],
        upsample_kernel_sizes=[16, 16, 8],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=1,
        prior_encoder_num_wavenet_layers=1,
        posterior_encoder_num_wavenet_layers=1,
        duration_predictor_num_flows=1,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=1,
        wavenet_dilation_rate=1,
        num_speakers=_VITS_SPEAKERS[language],
        speaker_embedding_size=8,
        sampling_rate=_VITS_RATES[language],
    )
    VitsModel(config).save_pretrained(target, safe_serialization=True)
    _finish_build(target)
