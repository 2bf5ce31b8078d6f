import hashlib
from pathlib import Path

from storyloom.models.runtime.tiny import make_tiny_models


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_builds_byte_identical_models(tmp_path, tiny_models):
    rebuilt = make_tiny_models(tmp_path / "again")
    assert _digest(rebuilt.root) == _digest(tiny_models.root)
    assert (rebuilt.sd15 / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert rebuilt.esrgan.is_file()
    assert (rebuilt.hed_annotator / "ControlNetHED.pth").is_file()
    assert (rebuilt.llama / "model.safetensors").is_file()


def test_other_seed_builds_other_weights(tmp_path, tiny_models):
    from storyloom.models.runtime.tiny import build_tiny_esrgan

    other = tmp_path / "x.safetensors"
    build_tiny_esrgan(other, seed=123)
    assert other.read_bytes() != tiny_models.esrgan.read_bytes()


def test_tiny_hed_annotator_loads_from_its_directory(tiny_models):
    import torch

    from storyloom.models.image.hed import WEIGHTS_FILE, load_network, weights_path

    stored = torch.load(tiny_models.hed_annotator / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    assert {value.dtype for value in stored.values()} == {torch.float16}  # half the file
    path = weights_path(str(tiny_models.hed_annotator), build_tiny=False)
    assert path == tiny_models.hed_annotator / WEIGHTS_FILE
    network = load_network(path)
    assert {p.dtype for p in network.parameters()} == {torch.float32}
    assert torch.equal(network.block1.convs[0].weight, stored["block1.convs.0.weight"].float())


def _build_in_subprocess(root: Path, **environ: str) -> None:
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_HUB_")} | environ
    code = "import sys; from storyloom.models.runtime.tiny import make_tiny_models; make_tiny_models(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(root)], env=env, check=True, timeout=600)


def test_builds_are_byte_identical_with_and_without_hf_hub_offline(tmp_path, tiny_models):
    # huggingface_hub reads HF_HUB_OFFLINE at import time, so each setting needs a fresh interpreter.
    _build_in_subprocess(tmp_path / "offline", HF_HUB_OFFLINE="1")
    _build_in_subprocess(tmp_path / "online", HF_HUB_OFFLINE="0")
    offline, online = _digest(tmp_path / "offline"), _digest(tmp_path / "online")
    assert offline == online == _digest(tiny_models.root)
    tokenizer_config = (tmp_path / "offline" / "llama" / "tokenizer_config.json").read_text()
    assert "local_files_only" not in tokenizer_config


def test_cache_key_names_the_builder_and_the_writing_library_versions(monkeypatch):
    import importlib.metadata

    from storyloom.config import TINY_FORMAT_VERSION, tiny_models_key

    key = tiny_models_key()
    assert key.startswith(f"v{TINY_FORMAT_VERSION}-") and key == tiny_models_key()
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: "9.9.9" if name == "transformers" else real_version(name)
    )
    assert tiny_models_key() != key
