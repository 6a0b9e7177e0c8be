"""The README's demo command renders a labelled sheet for both kinds of model."""
from PIL import Image

from toolkit.cli import main


def test_demo_cli_writes_a_sheet_for_a_conditional_model(tmp_path):
    out = tmp_path / "d.png"
    assert main(["demo", "--model", "tiny", "--device", "cpu", "--out", str(out)]) == 0
    im = Image.open(out)
    assert im.width > 4 * 64 and im.height > 3 * 64


def test_demo_cli_reports_bad_models_without_traceback(tmp_path, capsys):
    assert main(["demo", "--model", "no-such-model", "--out", str(tmp_path / "x.png")]) == 1
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
