"""Wiring diagrams and learning-curve plots: real PNG files, read back with matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from velora.cli import main
from velora.plotting import curve_stats, draw_wiring, find_runs, plot_runs, read_scalars, run_group
from velora.wiring import Wiring

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SHORT_ENV = "velora-test/ShortPendulum-v1"
TINY = ["--n-neurons", "4", "--critic-neurons", "4", "--batch-size", "8", "--buffer-size", "200",
        "--learning-starts", "10"]

if SHORT_ENV not in gym.registry:
    gym.register(SHORT_ENV, entry_point="gymnasium.envs.classic_control.pendulum:PendulumEnv",
                 max_episode_steps=20)


def assert_png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0
    assert np.ptp(image) > 0  # not a blank canvas
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files
    return image


# --------------------------------------------------------------------------- wiring
def test_draw_wiring_writes_a_png(tmp_path):
    wiring = Wiring(3, 16, 1, seed=0)
    out = draw_wiring(wiring, tmp_path / "w.png", dpi=60)
    assert out == tmp_path / "w.png"
    assert_png(out)


def test_wiring_draw_method_and_resolution(tmp_path):
    wiring = Wiring(2, 6, 2, sparsity_level=0.3, seed=1)
    small = assert_png(wiring.draw(tmp_path / "a" / "small.png", dpi=40))
    large = assert_png(wiring.draw(tmp_path / "b" / "large.png", dpi=80))
    assert large.shape[0] > small.shape[0] and large.shape[1] > small.shape[1]


def test_draw_wiring_replaces_an_existing_file(tmp_path):
    path = tmp_path / "w.png"
    path.write_bytes(b"old")
    Wiring(1, 2, 1, seed=0).draw(path, dpi=40)
    assert_png(path)


def test_draw_wiring_rejects_other_formats(tmp_path):
    with pytest.raises(ValueError, match="PNG"):
        Wiring(1, 2, 1, seed=0).draw(tmp_path / "w.svg")


def test_drawing_leaves_the_matplotlib_backend_alone(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    Wiring(2, 4, 1, seed=0).draw(tmp_path / "w.png", dpi=40)
    assert matplotlib.get_backend() == before


def test_importing_velora_does_not_import_matplotlib():
    code = ("import sys, velora, velora.plotting, velora.cli, velora.wiring; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr


def test_cli_plot_wiring(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["plot", "wiring", "--in-features", "3", "--n-neurons", "16", "--out-features", "1",
                 "--sparsity-level", "0.5", "--seed", "0", "--dpi", "50", "-o", "wiring.png"]) == 0
    assert_png(tmp_path / "wiring.png")
    assert "wiring.png" in capsys.readouterr().out


def test_cli_plot_wiring_bad_circuit(tmp_path, capsys):
    assert main(["plot", "wiring", "--in-features", "3", "--n-neurons", "1", "--out-features", "1",
                 "-o", str(tmp_path / "w.png")]) == 2
    assert capsys.readouterr().err.startswith("velora: error: n_neurons")


# --------------------------------------------------------------------------- learning curves
def test_run_group_strips_seed_and_time():
    assert run_group("Pendulum-v1__sac__3__20250101-120000") == "Pendulum-v1__sac"
    assert run_group("velora-PendulumNoVel-v1__sac_discrete__None__20250101-120000") == \
        "velora-PendulumNoVel-v1__sac_discrete"
    assert run_group("exp__a__b__c") == "exp__a"
    assert run_group("my_run") == "my_run"


def test_curve_stats_mean_and_std_across_runs():
    a = (np.array([0.0, 10.0]), np.array([0.0, 10.0]))
    b = (np.array([0.0, 5.0, 10.0]), np.array([2.0, 7.0, 12.0]))
    grid, mean, std = curve_stats([a, b], points=11)
    np.testing.assert_allclose(grid, np.arange(11.0))
    np.testing.assert_allclose(mean, np.arange(11.0) + 1.0)
    np.testing.assert_allclose(std, np.ones(11))
    # A shorter run only counts where it has data.
    c = (np.array([0.0, 4.0]), np.array([100.0, 100.0]))
    grid, mean, std = curve_stats([a, c], points=11)
    assert mean[-1] == pytest.approx(10.0) and std[-1] == 0.0
    assert mean[0] == pytest.approx(50.0)


def write_scalars(folder: Path, tag: str, points: list[tuple[int, float]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for step, value in points:
        writer.add_scalar(tag, value, step)
    writer.close()


def test_read_scalars_averages_values_logged_at_one_step(tmp_path):
    write_scalars(tmp_path / "r", "x", [(5, 1.0), (1, 4.0), (5, 3.0)])
    steps, values = read_scalars(tmp_path / "r", "x")
    np.testing.assert_array_equal(steps, [1, 5])
    np.testing.assert_allclose(values, [4.0, 2.0])
    assert read_scalars(tmp_path / "r", "missing") is None


def test_plot_runs_from_synthetic_event_files(tmp_path):
    for seed in (0, 1):
        write_scalars(tmp_path / "runs" / f"Env-v0__sac__{seed}__20250101-00000{seed}", "t",
                      [(s, s * (1 + seed)) for s in range(0, 100, 10)])
    write_scalars(tmp_path / "runs" / "Env-v0__ddpg__0__20250101-000000", "t", [(50, 1.0)])
    assert len(find_runs(tmp_path / "runs")) == 3
    out = plot_runs(tmp_path / "runs", tmp_path / "curves.png", tag="t", smooth=0.0, dpi=50)
    assert_png(out)


def test_plot_runs_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no TensorBoard event files"):
        plot_runs(tmp_path / "empty", tmp_path / "c.png")
    with pytest.raises(ValueError, match="no such folder"):
        plot_runs(tmp_path / "missing", tmp_path / "c.png")
    write_scalars(tmp_path / "runs" / "r", "other/tag", [(1, 1.0)])
    with pytest.raises(ValueError, match=r"charts/episodic_return.*other/tag"):
        plot_runs(tmp_path / "runs", tmp_path / "c.png")
    with pytest.raises(ValueError, match="smooth"):
        plot_runs(tmp_path / "runs", tmp_path / "c.png", tag="other/tag", smooth=1.0)
    assert not (tmp_path / "c.png").exists()


def test_plot_runs_of_two_real_training_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for seed in ("0", "1"):
        assert main(["train", "sac", SHORT_ENV, "--steps", "60", *TINY, "--seed", seed,
                     "--quiet"]) == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    assert len({run_group(r.name) for r in runs}) == 1
    for run in runs:
        steps, _ = read_scalars(run, "charts/episodic_return")
        np.testing.assert_array_equal(steps, [20, 40, 60])
    assert main(["plot", "runs", "runs", "-o", "curves.png", "--dpi", "50"]) == 0
    assert_png(tmp_path / "curves.png")
    assert "curves.png" in capsys.readouterr().out
    # Run folders given one by one, another tag.
    assert main(["plot", "runs", *map(str, runs), "-o", "len.png", "--tag", "charts/episodic_length",
                 "--dpi", "50"]) == 0
    assert_png(tmp_path / "len.png")


def test_cli_plot_runs_missing_tag_is_exit_code_2(tmp_path, capsys):
    write_scalars(tmp_path / "runs" / "r", "a", [(1, 1.0)])
    assert main(["plot", "runs", str(tmp_path / "runs"), "-o", str(tmp_path / "c.png"),
                 "--tag", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("velora: error:") and "'nope'" in err
