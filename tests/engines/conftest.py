from __future__ import annotations

from pathlib import Path

import pytest

from engines.manifest import ModelManifest
from engines.sample_model import write_sample_model


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_sample_model(tmp_path / "models" / "sample_conv")


@pytest.fixture
def manifest(model_dir: Path) -> ModelManifest:
    return ModelManifest.load(model_dir)
