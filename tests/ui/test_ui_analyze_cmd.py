"""`dentalai analyze`: path expansion, outputs, summary and exit status (server mode via the
scripted gRPC service; in-process mode with the shipped models on real films from ../shared/data)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from dentalai import analyze_cmd
from tests import real_films


def _png(path, size=(64, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], 90, dtype=np.uint8)).save(path)
    return path


def test_collect_paths_files_folders_globs_and_misses(tmp_path):
    a = _png(tmp_path / "in" / "a.png")
    b = _png(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "in" / "notes.txt").write_text("x")
    c = _png(tmp_path / "other" / "c.png")
    paths, missing = analyze_cmd.collect_paths(
        [str(tmp_path / "in"), str(a), str(tmp_path / "other" / "*.png"), str(tmp_path / "nope*.png")]
    )
    assert paths == [a, b, c]  # folder recursed, duplicates once, non-images skipped
    assert [(m.path.name, m.code) for m in missing] == [("nope*.png", 10001)]


def test_server_mode_writes_json_and_overlay(tmp_path, scripted_server, capsys):
    port, servicer = scripted_server
    image = _png(tmp_path / "case1.png")
    out = tmp_path / "out"
    argv = [str(image), "--type", "ceph", "--out", str(out), "--server", f"127.0.0.1:{port}",
            "--pixel-spacing", "0.1", "--no-progress"]  # fmt: skip
    assert analyze_cmd.main(argv) == 0
    data = json.loads((out / "case1.json").read_text())
    # The result `data` in proto JSON: camelCase, default-valued fields printed.
    assert data["landmarks"][0] == {"id": "S", "name": "", "x": 1.0, "y": 2.0, "confidence": 0.9}
    assert data["measurements"] == [] and data["classifications"] == []
    assert Image.open(out / "case1.png").size == (64, 48)
    assert servicer.requests[0].options.pixel_spacing_mm == 0.1
    assert "1 succeeded, 0 failed" in capsys.readouterr().out


def test_server_mode_names_each_failure_with_its_code(tmp_path, scripted_server, capsys):
    port, _ = scripted_server
    images = [_png(tmp_path / "p1.png"), _png(tmp_path / "p2.png")]
    argv = [*map(str, images), str(tmp_path / "missing.png"), "--type", "pano", "--out", str(tmp_path / "o"),
            "--server", f"127.0.0.1:{port}", "--no-progress"]  # fmt: skip
    assert analyze_cmd.main(argv) == 1
    printed = capsys.readouterr().out
    assert "0 succeeded, 3 failed" in printed
    assert f"FAILED {images[0]}: 12004 model for pano is not available" in printed
    assert "missing.png: 10001" in printed


def test_unreachable_server_fails_every_file(tmp_path, capsys):
    argv = [str(_png(tmp_path / "x.png")), "--type", "ceph", "--out", str(tmp_path / "o"),
            "--server", "127.0.0.1:1", "--timeout", "2", "--no-progress"]  # fmt: skip
    assert analyze_cmd.main(argv) == 1
    assert "FAILED" in capsys.readouterr().out


def test_bad_usage_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        analyze_cmd.main([str(tmp_path), "--type", "xray"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit):
        analyze_cmd.main([str(tmp_path), "--type", "ceph", "--pixel-spacing", "0"])


@pytest.mark.parametrize("task_type", ["ceph", "pano"])
def test_in_process_on_a_real_film(tmp_path, task_type, capsys):
    """In-process mode (the worker's decode and the registry's pipelines with the shipped models)
    on a real film: it must succeed, with results only working models give."""
    film = real_films.CEPH_FILM if task_type == "ceph" else real_films.PANO_FILM
    real_films.require(film)
    image = tmp_path / film.name
    shutil.copy(film, image)
    out = tmp_path / "o"
    argv = [str(image), "--type", task_type, "--out", str(out), "--no-progress"]
    if task_type == "ceph":
        argv += ["--pixel-spacing", "0.3"]
    code = analyze_cmd.main(argv)
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "1 succeeded, 0 failed" in printed
    data = json.loads((out / f"{film.stem}.json").read_text())
    assert (out / f"{film.stem}.png").exists()
    if task_type == "ceph":
        errors = real_films.ceph_errors_mm(data["landmarks"])
        assert max(errors.values()) < 4.0, errors
        assert data["measurements"] and len(data["classifications"]) == 8
        assert data["image"]["spacingSource"] == "request"
    else:
        found = {t["fdi"] for t in data["teeth"]}
        truth = real_films.pano_truth()
        assert abs(len(found) - len(truth)) <= 2 and len(found & truth) >= len(truth) - 2, (found, truth)


def test_findings_option_reaches_the_request_and_unknown_types_are_refused(tmp_path, scripted_server, capsys):
    port, servicer = scripted_server
    image = _png(tmp_path / "p.png")
    argv = [str(image), "--type", "pano", "--out", str(tmp_path / "o"), "--server", f"127.0.0.1:{port}",
            "--findings", "caries", "--no-progress"]  # fmt: skip
    analyze_cmd.main(argv)
    assert list(servicer.requests[-1].options.findings) == ["caries"]
    with pytest.raises(SystemExit) as exc:
        analyze_cmd.main([*argv[:-2], "caries,cyst", "--no-progress"])
    assert exc.value.code == 2 and "unknown finding type cyst" in capsys.readouterr().err
