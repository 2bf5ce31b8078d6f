"""``storyloom models download`` fetches every configured voice, safetensors first."""

from __future__ import annotations

from pathlib import Path

from storyloom.config import load_config
from storyloom.models.runtime import download
from storyloom.models.runtime.download import configured_models, download_model


def test_every_configured_voice_is_fetched_with_its_config_and_weights() -> None:
    config = load_config(None, environ={}, overrides={"models": {"narration": {"en": "a/english", "zh": "b/chinese"}}})
    voices = {spec.role: spec for spec in configured_models(config) if spec.role.startswith("narration")}
    assert sorted(voices) == ["narration (en)", "narration (zh)"]
    assert voices["narration (zh)"].name == "b/chinese"
    assert voices["narration (en)"].patterns == ("*.json", "*.safetensors")


def test_pickled_weights_only_when_a_voice_offers_no_safetensors(tmp_path: Path, monkeypatch) -> None:
    offered = {"with/safetensors": ["config.json", "model.safetensors", "pytorch_model.bin"],
               "only/pickle": ["config.json", "pytorch_model.bin"]}  # fmt: skip
    fetched: list[tuple[str, list[str]]] = []

    def snapshot_download(repo: str, allow_patterns: list[str]) -> str:
        import fnmatch

        folder = tmp_path / repo.replace("/", "--")
        folder.mkdir(exist_ok=True)
        for name in offered[repo]:
            if any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                (folder / name).write_text("x")
        fetched.append((repo, allow_patterns))
        return str(folder)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    config = load_config(None, environ={}, overrides={"models": {"narration": {"en": "with/safetensors"}}})
    [spec] = [s for s in download.configured_models(config) if s.role == "narration (en)"]
    assert sorted(p.name for p in download_model(spec).iterdir()) == ["config.json", "model.safetensors"]
    pickled = download.ModelSpec("narration (en)", "only/pickle", spec.patterns, spec.fallback)
    assert sorted(p.name for p in download_model(pickled).iterdir()) == ["config.json", "pytorch_model.bin"]
    assert [repo for repo, _ in fetched] == ["with/safetensors", "only/pickle", "only/pickle"]
