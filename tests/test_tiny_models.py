import hashlib
from pathlib import Path

from storyloom.models.tiny import make_tiny_models


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_builds_byte_identical_models(tmp_path, tiny_models):
    rebuilt = make_tiny_models(tmp_path / "again")
    assert _digest(rebuilt.root) == _digest(tiny_models.root)
    assert (rebuilt.sd15 / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert rebuilt.esrgan.is_file()
    assert (rebuilt.llama / "model.safetensors").is_file()


def test_other_seed_builds_other_weights(tmp_path, tiny_models):
    from storyloom.models.tiny import build_tiny_esrgan

    other = tmp_path / "x.safetensors"
    build_tiny_esrgan(other, seed=123)
    assert other.read_bytes() != tiny_models.esrgan.read_bytes()
