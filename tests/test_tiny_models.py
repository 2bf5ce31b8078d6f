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
    assert (rebuilt.hed_annotator / "ControlNetHED.pth").is_file()
    assert (rebuilt.llama / "model.safetensors").is_file()


def test_other_seed_builds_other_weights(tmp_path, tiny_models):
    from storyloom.models.tiny import build_tiny_esrgan

    other = tmp_path / "x.safetensors"
    build_tiny_esrgan(other, seed=123)
    assert other.read_bytes() != tiny_models.esrgan.read_bytes()


def test_tiny_hed_annotator_loads_from_its_directory(tiny_models):
    import torch

    from storyloom.models.hed import WEIGHTS_FILE, load_network, weights_path

    stored = torch.load(tiny_models.hed_annotator / WEIGHTS_FILE, map_location="cpu", weights_only=True)
    assert {value.dtype for value in stored.values()} == {torch.float16}  # half the file
    path = weights_path(str(tiny_models.hed_annotator), build_tiny=False)
    assert path == tiny_models.hed_annotator / WEIGHTS_FILE
    network = load_network(path)
    assert {p.dtype for p in network.parameters()} == {torch.float32}
    assert torch.equal(network.block1.convs[0].weight, stored["block1.convs.0.weight"].float())
