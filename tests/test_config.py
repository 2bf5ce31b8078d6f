from pathlib import Path

import pytest

from storyloom.config import load_config, tiny_models_key
from storyloom.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_repository_config_file_loads_with_documented_defaults():
    config = load_config(ROOT / "config.toml", environ={})
    assert config.profile == "default"
    assert config.image.steps == 30
    assert config.image.guidance_scale == 7.0
    assert config.models.image == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert config.database_path == Path.cwd() / "data" / "storyloom.db"


def test_environment_overrides_a_key_as_a_typed_value():
    config = load_config(
        ROOT / "config.toml",
        environ={"STORYLOOM_IMAGE__STEPS": "20", "STORYLOOM_WORKER__DEVICES": '["cuda:0", "cuda:1"]'},
    )
    assert config.image.steps == 20
    assert config.worker.devices == ["cuda:0", "cuda:1"]


def test_bad_value_names_key_value_and_allowed_range():
    with pytest.raises(ConfigError) as info:
        load_config(ROOT / "config.toml", environ={"STORYLOOM_IMAGE__STEPS": "0"})
    message = str(info.value)
    assert "image.steps" in message and "0" in message and "greater than or equal to 1" in message


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[image]\nstepz = 3\n")
    with pytest.raises(ConfigError, match=r"image\.stepz: unknown setting"):
        load_config(path, environ={})


def test_tiny_profile_points_models_at_local_directories_and_cpu(tmp_path):
    config = load_config(None, profile="tiny", environ={}, overrides={"paths": {"data_dir": str(tmp_path)}})
    assert config.device.device == "cpu"
    assert config.models.build_tiny
    assert Path(config.models.image) == tmp_path / "tiny-models" / tiny_models_key() / "sd15"
    assert config.tiny_models_dir == tmp_path / "tiny-models" / tiny_models_key()


def test_profile_from_environment_and_unknown_profile(tmp_path):
    assert load_config(None, environ={"STORYLOOM_PROFILE": "tiny"}).profile == "tiny"
    with pytest.raises(ConfigError, match="profile"):
        load_config(None, environ={"STORYLOOM_PROFILE": "huge"})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[image\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})


def test_relative_data_dir_becomes_absolute_so_tiny_models_are_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, profile="tiny", environ={})
    assert config.paths.data_dir == tmp_path / "data"
    assert Path(config.models.image) == tmp_path / "data" / "tiny-models" / tiny_models_key() / "sd15"
