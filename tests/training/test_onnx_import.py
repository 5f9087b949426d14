"""training.onnx_import: a network started from an exported ONNX file computes what the exported one
did (batch norms folded into the convolutions there, split again here). Needs PyTorch (training only),
so it is skipped where the `train` extra is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training.onnx_export import export_checked  # noqa: E402
from training.onnx_import import init_from_folded_onnx  # noqa: E402
from training.pano_findings.model import FindingsUNet  # noqa: E402

WIDTHS = (4, 8, 16)
DYNAMIC = {0: "batch", 2: "height", 3: "width"}


def trained_like(seed: int) -> torch.nn.Module:
    """A FindingsUNet with random weights and batch-norm statistics (as after training)."""
    torch.manual_seed(seed)
    model = FindingsUNet(1, WIDTHS)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_started_network_computes_the_exported_one(tmp_path: Path) -> None:
    source = trained_like(0)
    path = tmp_path / "model.onnx"
    export_checked(source, (1, 32, 48), path, ("image", "logits"), DYNAMIC)
    model = FindingsUNet(1, WIDTHS)
    calibration = torch.randn(4, 1, 32, 32)
    init_from_folded_onnx(model, path, calibration)
    x = torch.randn(2, 1, 40, 56)
    with torch.no_grad():
        expected = source(x)
        # In training mode the calibrated batch norms reproduce the folded network on their batch.
        model.train()
        assert torch.allclose(model(calibration), source(calibration), atol=1e-3)
        model.eval()
        assert torch.allclose(model(x), expected, atol=1e-3)


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    export_checked(trained_like(1), (1, 32, 32), path, ("image", "logits"), DYNAMIC)
    with pytest.raises(ValueError, match="convolution"):
        init_from_folded_onnx(FindingsUNet(1, (4, 8, 32)), path, torch.randn(2, 1, 32, 32))
