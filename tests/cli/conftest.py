"""The command-line tests run ``storyloom`` in-process, as a user would, on the shared tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tiny_env(monkeypatch, tmp_path: Path, tiny_models) -> Path:
    """An empty working directory (no ./config.toml), data under tmp_path, the models pointed at the shared tiny
    ones through environment overrides, and no profile or step count inherited from the caller's environment.

    A test module that needs one more setting overrides this fixture and asks for it by name."""
    monkeypatch.chdir(tmp_path)
    for name in ("STORYLOOM_PROFILE", "STORYLOOM_IMAGE__STEPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORYLOOM_PATHS__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STORYLOOM_MODELS__STORY", str(tiny_models.llama))
    monkeypatch.setenv("STORYLOOM_MODELS__IMAGE", str(tiny_models.sd15))
    return tmp_path
