"""Multi-seed runs and hyperparameter sweeps of velora agents on Ray Tune.

::

    from velora.tune import sweep

    result = sweep(
        "sac", "Pendulum-v1",
        config={"critic_neurons": 32, "learning_starts": 1000},
        search_space={"n_neurons": {"choice": [8, 16]},
                      "actor_lr": {"loguniform": [1e-4, 1e-2]},
                      "sparsity_level": {"uniform": [0.3, 0.7]}},
        num_samples=4, seeds=(0, 1, 2), total_steps=20_000, eval_every=2_000,
        experiment_dir="runs/sweep-pendulum",
    )
    print(result.table[0], result.best_config)

Every trial is one agent trained with one seed. Random values of the search space are drawn
once per sample and shared by all seeds (and grid values), so the trials that differ only in
``seed`` are one *configuration*; the summary gives the mean ± std across its seeds.

Files under ``experiment_dir``: one folder per trial (``<trial name>/tb`` holds its TensorBoard
events, the rest is Ray Tune's: ``progress.csv``, ``result.json``, ``checkpoint_*/``), and at the
end ``results.md``, ``results.csv``, ``results.json`` and ``results.png``.

Needs Ray Tune: ``pip install "velora[ray]"``. The plot also needs matplotlib.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from velora._checks import MissingDependencyError, non_negative_int, positive_int
from velora.agents.registry import agent_class
from velora.callbacks import Callback, EvalCallback

try:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator
except ImportError as _err:  # pragma: no cover - exercised by a test that hides ray
    raise MissingDependencyError(
        'velora.tune needs Ray Tune: pip install "velora[ray]"') from _err

__all__ = ["METRIC", "SweepResult", "aggregate_trials", "load_sweep_file", "sweep",
           "translate_search_space", "trial_cpus"]

METRIC = "eval/mean_reward"
CHECKPOINT_FILE = "agent.safetensors"
SEARCH_KINDS = ("choice", "grid", "uniform", "loguniform", "randint")
ASHA_OPTIONS = ("grace_period", "reduction_factor", "brackets", "max_t")


@dataclass
class SweepResult:
    """What :func:`sweep` returns.

    Attributes:
        experiment_dir: the folder holding every trial and the summary files.
        table: one row per configuration, best first (see :func:`aggregate_trials`).
        best_config: the agent keyword arguments (without ``seed``) of the best row.
        plot_path: ``results.png``, or ``None`` when matplotlib is missing.
        trials: one record per trial: ``trial``, ``config``, ``seed``, ``history``
            (``[(step, mean, std), ...]``), ``timesteps``, ``final``, ``best``,
            ``resumed_from`` (the step its last attempt restarted from; 0 if none) and
            ``error`` (``None`` unless the trial ran out of retries).
    """

    experiment_dir: Path
    table: list[dict[str, Any]]
    best_config: dict[str, Any]
    plot_path: Path | None
    trials: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- configuration
def agent_parameters(cls: type) -> list[str]:
    """The hyperparameters of an agent: the fields of its config class."""
    return [f.name for f in fields(cls.config_class)]


def _check_names(names: Sequence[str], cls: type, where: str) -> None:
    valid = agent_parameters(cls)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise ValueError(f"{where}: {', '.join(repr(n) for n in unknown)} "
                         f"{'is not a' if len(unknown) == 1 else 'are not'} {cls.__name__} "
                         f"hyperparameter{'s' if len(unknown) > 1 else ''}; valid: {', '.join(valid)}")
    if "seed" in names:
        raise ValueError(f"{where}: seed is not a hyperparameter to set or search here; "
                         f"give the seeds to run with seeds=")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def translate_search_space(space: Mapping[str, Any] | None) -> dict[str, Any]:
    """Turn a TOML-style search space into Ray Tune's.

    Each value is either a plain value (kept fixed) or a one-key table:

    * ``{"choice": [a, b, ...]}`` -> ``tune.choice`` (drawn at random per sample)
    * ``{"grid": [a, b, ...]}`` -> ``tune.grid_search`` (every value, for every sample)
    * ``{"uniform": [low, high]}`` -> ``tune.uniform``
    * ``{"loguniform": [low, high]}`` -> ``tune.loguniform`` (``0 < low``)
    * ``{"randint": [low, high]}`` -> ``tune.randint`` (integers ``low <= x < high``)
    """
    out: dict[str, Any] = {}
    for name, spec in (space or {}).items():
        if isinstance(spec, (list, tuple)):
            raise ValueError(f"search space {name!r}: a bare list is ambiguous; write "
                             f"{{choice = [...]}} (random) or {{grid = [...]}} (every value)")
        if not isinstance(spec, Mapping):
            out[name] = spec
            continue
        if len(spec) != 1 or next(iter(spec)) not in SEARCH_KINDS:
            raise ValueError(f"search space {name!r}: expected one of "
                             f"{', '.join(f'{{{k} = ...}}' for k in SEARCH_KINDS)}, got {dict(spec)!r}")
        kind, args = next(iter(spec.items()))
        if not isinstance(args, (list, tuple)) or not args:
            raise ValueError(f"search space {name!r}: {kind} needs a non-empty list, got {args!r}")
        args = list(args)
        if kind == "choice":
            out[name] = tune.choice(args)
        elif kind == "grid":
            out[name] = tune.grid_search(args)
        else:
            if len(args) != 2:
                raise ValueError(f"search space {name!r}: {kind} needs [low, high], got {args!r}")
            low, high = (_number(f"search space {name!r} {kind} bound", a) for a in args)
            if not low < high:
                raise ValueError(f"search space {name!r}: {kind} needs low < high, got {args!r}")
            if kind == "uniform":
                out[name] = tune.uniform(low, high)
            elif kind == "loguniform":
                if low <= 0:
                    raise ValueError(f"search space {name!r}: loguniform needs 0 < low, got {low!r}")
                out[name] = tune.loguniform(low, high)
            else:
                if not all(isinstance(a, int) for a in args):
                    raise ValueError(f"search space {name!r}: randint needs integers, got {args!r}")
                out[name] = tune.randint(low, high)
    return out


def trial_cpus(config: Mapping[str, Any]) -> int:
    """CPUs one trial reserves: ``num_envs`` when its envs step in subprocesses
    (``vectorization = "async"``), else 1."""
    n = config.get("num_envs", 1)
    if config.get("vectorization", "sync") == "async" and isinstance(n, int) and n > 1:
        return n
    return 1


def _asha_scheduler(asha: bool | Mapping[str, Any], total_steps: int, eval_every: int
                    ) -> ASHAScheduler | None:
    if not asha:
        return None
    options = dict(asha) if isinstance(asha, Mapping) else {}
    unknown = sorted(set(options) - set(ASHA_OPTIONS))
    if unknown:
        raise ValueError(f"asha: unknown option{'s' if len(unknown) > 1 else ''} {unknown}; "
                         f"valid: {', '.join(ASHA_OPTIONS)}")
    settings = {"max_t": total_steps, "grace_period": min(eval_every, total_steps),
                "reduction_factor": 2, "brackets": 1, **options}
    return ASHAScheduler(time_attr="timesteps", metric=METRIC, mode="max", **settings)


# --------------------------------------------------------------------------- one trial
class _TuneReporter(Callback):
    """Evaluates every ``eval_every`` steps (through :class:`EvalCallback`, which also logs
    ``eval/*`` to TensorBoard), saves a checkpoint with the replay buffer and reports both to
    Ray Tune."""

    def __init__(self, eval_every: int, eval_episodes: int, seed: int | None,
                 resumed_from: int) -> None:
        self.evaluator = EvalCallback(eval_every, eval_episodes, seed=seed)
        self.resumed_from = resumed_from
        self.last_step = -1

    def on_training_start(self, agent: Any) -> None:
        self.evaluator.on_training_start(agent)

    def on_step(self, agent: Any) -> bool | None:
        before = len(self.evaluator.results)
        stop = self.evaluator.on_step(agent)
        if len(self.evaluator.results) > before:
            self.report(agent)
        return stop

    def finish(self, agent: Any) -> None:
        """Evaluate and report once more if the last step taken was not evaluated."""
        if self.last_step != agent.num_timesteps:
            mean, std = agent.evaluate(self.evaluator.env, self.evaluator.n_episodes,
                                       seed=self.evaluator.seed)
            self.evaluator.results.append((agent.num_timesteps, mean, std))
            if agent.logger is not None:
                agent.logger.scalar("eval/mean_reward", mean, agent.num_timesteps)
                agent.logger.scalar("eval/std_reward", std, agent.num_timesteps)
            self.report(agent)

    def report(self, agent: Any) -> None:
        step, mean, std = self.evaluator.results[-1]
        self.last_step = step
        if agent.logger is not None:
            agent.logger.flush()  # the trial may be stopped (ASHA) inside tune.report
        metrics = {METRIC: mean, "eval/std_reward": std, "timesteps": step,
                   "episodes": agent.num_episodes, "resumed_from": self.resumed_from}
        with tempfile.TemporaryDirectory(prefix="velora-checkpoint-") as folder:
            agent.save(Path(folder) / CHECKPOINT_FILE, include_buffer=True)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _run_trial(config: dict[str, Any], *, agent: str, env: str, total_steps: int,
               eval_every: int, eval_episodes: int, experiment_dir: str,
               callbacks: Sequence[Any]) -> None:
    """The Ray Tune function trainable: one agent, one seed; restarts continue from the
    trial's latest checkpoint."""
    import torch

    from velora.checkpoint import read_metadata

    torch.set_num_threads(1)
    cls = agent_class(agent)
    tb_dir = Path(experiment_dir) / tune.get_context().get_trial_name() / "tb"
    learner = cls(env, **config)
    checkpoint = tune.get_checkpoint()
    try:
        if checkpoint is None:
            reporter = _TuneReporter(eval_every, eval_episodes, config.get("seed"), 0)
            learner.learn(total_steps, callbacks=[reporter, *callbacks], log_dir=tb_dir,
                          progress_bar=False)
        else:
            with checkpoint.as_directory() as folder:
                path = Path(folder) / CHECKPOINT_FILE
                start = int(read_metadata(path)["counters"]["num_timesteps"])
                reporter = _TuneReporter(eval_every, eval_episodes, config.get("seed"), start)
                reporter.last_step = start
                # With resume=, total_steps is the step count the whole run should reach.
                learner.learn(total_steps, callbacks=[reporter, *callbacks], log_dir=tb_dir,
                              progress_bar=False, resume=path)
        reporter.finish(learner)
    finally:
        if learner.logger is not None:
            learner.logger.close()
        learner.env.close()


# --------------------------------------------------------------------------- results
def _group_key(config: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True,
                      default=str)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values))


def aggregate_trials(trials: Sequence[Mapping[str, Any]], keys: Sequence[str] = ()
                     ) -> list[dict[str, Any]]:
    """Group trials that differ only in ``seed`` and summarise each group.

    ``trials`` are records with ``config`` (including ``seed``) and ``history``
    (``[(step, mean_reward, std_reward), ...]``) and optionally ``error``. Returns one row per
    configuration that has at least one evaluation, best first: the ones trained longest first
    (ASHA stops weaker configurations early), then by mean final return, then by mean best
    return. Columns: the varied hyperparameters (``keys`` plus any other whose
    value differs between configurations) as columns, then ``seeds`` (how many trials),
    ``final_mean``/``final_std`` (the last evaluation of each seed), ``best_mean``/``best_std``
    (the best evaluation of each seed), ``timesteps`` (mean steps reached), ``errored`` (trials
    that ran out of retries) and ``config`` (the full agent configuration without ``seed``).
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    configs: dict[str, dict[str, Any]] = {}
    for trial in trials:
        key = _group_key(trial["config"])
        groups.setdefault(key, []).append(trial)
        configs[key] = {k: v for k, v in trial["config"].items() if k != "seed"}
    varied = list(keys)
    names = sorted({k for c in configs.values() for k in c})
    for name in names:
        values = {json.dumps(c.get(name), sort_keys=True, default=str) for c in configs.values()}
        if len(values) > 1 and name not in varied:
            varied.append(name)
    rows = []
    for key, members in groups.items():
        finished = [t for t in members if t["history"]]
        if not finished:
            continue
        final = [t["history"][-1][1] for t in finished]
        best = [max(h[1] for h in t["history"]) for t in finished]
        steps = [t["history"][-1][0] for t in finished]
        row: dict[str, Any] = {k: configs[key].get(k) for k in varied}
        row["seeds"] = len(finished)
        row["final_mean"], row["final_std"] = _mean_std(final)
        row["best_mean"], row["best_std"] = _mean_std(best)
        row["timesteps"] = round(float(np.mean(steps)))
        row["errored"] = sum(1 for t in members if t.get("error"))
        row["config"] = configs[key]
        rows.append(row)
    rows.sort(key=lambda r: (-r["timesteps"], -r["final_mean"], -r["best_mean"]))
    return rows


def _short_error(error: BaseException) -> str:
    """The last line of an error's message (Ray wraps a trial's exception with its traceback),
    without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _trial_records(result_grid: Any) -> list[dict[str, Any]]:
    records = []
    for result in result_grid:
        config = dict(result.config or {})
        history: list[tuple[int, float, float]] = []
        resumed_from = 0
        frame = result.metrics_dataframe
        if frame is not None and METRIC in frame.columns and "timesteps" in frame.columns:
            by_step: dict[int, tuple[int, float, float]] = {}
            for row in frame.to_dict("records"):
                mean = row.get(METRIC)
                if mean is None or not math.isfinite(float(mean)):
                    continue
                step = int(row["timesteps"])
                std = float(row.get("eval/std_reward", math.nan))
                by_step[step] = (step, float(mean), std)  # after a restart, the newest wins
                resumed_from = int(row.get("resumed_from", 0) or 0)
            history = [by_step[s] for s in sorted(by_step)]
        records.append({
            "trial": Path(result.path).name if result.path else None,
            "config": config,
            "seed": config.get("seed"),
            "history": history,
            "timesteps": history[-1][0] if history else 0,
            "final": history[-1][1] if history else None,
            "best": max(h[1] for h in history) if history else None,
            "resumed_from": resumed_from,
            "error": None if result.error is None else _short_error(result.error),
        })
    records.sort(key=lambda r: r["trial"] or "")
    return records


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={_format(row[k])}" for k in keys) or "configuration"


def _varied_keys(table: Sequence[Mapping[str, Any]]) -> list[str]:
    fixed = {"seeds", "final_mean", "final_std", "best_mean", "best_std", "timesteps", "errored",
             "config"}
    return [k for k in (table[0] if table else {}) if k not in fixed]


def _write_text(path: Path, text: str) -> Path:
    from velora.checkpoint import atomic_write

    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_results(folder: Path, table: Sequence[Mapping[str, Any]],
                  trials: Sequence[Mapping[str, Any]], header: Mapping[str, Any]) -> None:
    """Write ``results.md``, ``results.csv`` and ``results.json`` into ``folder``."""
    import csv
    import io

    keys = _varied_keys(table)
    lines = [f"# Sweep: {header['agent']} on {header['env']}", "",
             f"{len(trials)} trials ({len(table)} configurations with results, seeds "
             f"{list(header['seeds'])}), {header['total_steps']} steps each, evaluated every "
             f"{header['eval_every']} steps over {header['eval_episodes']} episode"
             f"{'s' if header['eval_episodes'] > 1 else ''}. Ranked by the final evaluation "
             f"return; returns are mean ± std across seeds.", ""]
    columns = ["rank", *keys, "seeds", "final return", "best return", "timesteps", "errored"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for rank, row in enumerate(table, 1):
        cells = [str(rank), *(_format(row[k]) for k in keys), str(row["seeds"]),
                 f"{row['final_mean']:.2f} ± {row['final_std']:.2f}",
                 f"{row['best_mean']:.2f} ± {row['best_std']:.2f}", str(row["timesteps"]),
                 str(row["errored"])]
        lines.append("| " + " | ".join(cells) + " |")
    if table:
        lines += ["", "Best configuration:", "", "```json",
                  json.dumps(table[0]["config"], indent=2, sort_keys=True, default=str), "```"]
    failed = [t for t in trials if t.get("error")]
    if failed:
        lines += ["", "Trials that ran out of retries:", ""]
        lines += [f"- {t['trial']}: {t['error']}" for t in failed]
    if header.get("plot"):
        lines += ["", f"![eval return]({header['plot']})"]
    _write_text(folder / "results.md", "\n".join(lines) + "\n")

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    fields = [*keys, "seeds", "final_mean", "final_std", "best_mean", "best_std", "timesteps",
              "errored"]
    writer.writerow(fields)
    for row in table:
        writer.writerow([row[k] for k in fields])
    _write_text(folder / "results.csv", buffer.getvalue())

    payload = {"header": dict(header), "table": list(table), "trials": list(trials)}
    _write_text(folder / "results.json", json.dumps(payload, indent=1, default=str) + "\n")


def plot_results(path: Path, table: Sequence[Mapping[str, Any]],
                 trials: Sequence[Mapping[str, Any]], title: str, *, dpi: int = 120) -> Path:
    """Eval-return curves, mean ± std across seeds, one line per configuration of ``table``
    (in its order)."""
    from velora.plotting import _new_figure, _save_png, curve_stats

    keys = _varied_keys(table)
    fig = _new_figure(8.0, 5.0)
    ax = fig.add_subplot()
    by_group: dict[str, list[Mapping[str, Any]]] = {}
    for trial in trials:
        if trial["history"]:
            by_group.setdefault(_group_key(trial["config"]), []).append(trial)
    for index, row in enumerate(table):
        members = by_group.get(_group_key(row["config"]), [])
        curves = [(np.array([h[0] for h in t["history"]], dtype=np.float64),
                   np.array([h[1] for h in t["history"]], dtype=np.float64)) for t in members]
        if not curves:
            continue
        grid, mean, std = curve_stats(curves, points=100)
        colour = f"C{index % 10}"
        label = f"{_label(row, keys)} ({len(curves)} seed{'s' if len(curves) > 1 else ''})" \
            if index < 12 else None
        ax.plot(grid, mean, color=colour, lw=1.6, label=label,
                marker="o" if grid.size == 1 else None)
        if len(curves) > 1:
            ax.fill_between(grid, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if table:
        ax.legend(fontsize=8)
    return _save_png(fig, path, dpi)


# --------------------------------------------------------------------------- the sweep
def sweep(
    agent: str,
    env: str,
    *,
    config: Mapping[str, Any],
    search_space: Mapping[str, Any] | None = None,
    num_samples: int = 1,
    seeds: Sequence[int] = (0,),
    total_steps: int,
    eval_every: int,
    eval_episodes: int = 5,
    asha: bool | Mapping[str, Any] = False,
    experiment_dir: str | Path,
    address: str | None = None,
    num_cpus: int | None = None,
    max_failures: int = 2,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    gpus_per_trial: float = 0.0,
    search_seed: int | None = None,
    verbose: int = 1,
) -> SweepResult:
    """Train ``agent`` on ``env`` for every configuration of a search space and every seed on
    Ray Tune, then summarise.

    Each trial builds the agent with ``config`` + its sampled values + ``seed``, trains it with
    one ``learn`` call, and every ``eval_every`` steps evaluates it (``eval_episodes``
    deterministic episodes), logs ``eval/*`` to its TensorBoard folder
    ``<experiment_dir>/<trial>/tb``, saves a velora checkpoint with the replay buffer and
    reports ``eval/mean_reward``, ``eval/std_reward`` and ``timesteps`` with it to Tune. A
    trial that fails is restarted up to ``max_failures`` times and continues from its latest
    checkpoint (``learn(..., resume=...)``), so it ends at ``total_steps`` all the same.

    Args:
        agent: ``"sac"``, ``"ddpg"`` or ``"sac_discrete"``.
        env: a Gymnasium env id (it must exist in the Ray workers too).
        config: fixed agent keyword arguments (``num_envs`` and ``vectorization = "async"``
            included: such a trial reserves ``num_envs`` CPUs).
        search_space: hyperparameters to search, see :func:`translate_search_space`.
        num_samples: draws of the random (``choice``/``uniform``/...) dimensions; grid
            dimensions and seeds multiply them.
        seeds: one trial per seed for every configuration.
        total_steps: env steps per trial.
        eval_every: env steps between evaluations (and checkpoints).
        eval_episodes: episodes per evaluation.
        asha: early-stop poor trials with ASHA on ``eval/mean_reward`` over ``timesteps``;
            ``True``, or a mapping of ``grace_period`` (default ``eval_every``),
            ``reduction_factor`` (2), ``brackets`` (1), ``max_t`` (``total_steps``).
        experiment_dir: the experiment folder (on a cluster: storage every node can reach).
        address: a running Ray cluster to connect to; default: start a local Ray with
            ``num_cpus`` CPUs (default: all). An already initialised Ray is used as it is.
        max_failures: restarts allowed per trial.
        resume: continue an interrupted sweep in ``experiment_dir``: unfinished and failed
            trials resume from their checkpoints (the search space and seeds are the saved
            ones; ``total_steps``, ``eval_every``, ... are this call's).
        callbacks: extra :mod:`velora.callbacks` objects for every trial's ``learn`` (each
            trial gets its own copy).
        gpus_per_trial: GPUs each trial reserves (set ``device`` in ``config`` to use them).
        search_seed: seed of the random search-space draws.
        verbose: Ray Tune's console verbosity (0 silent ... 3 detailed).

    Returns:
        A :class:`SweepResult`; the summary is also written to ``results.md``,
        ``results.csv``, ``results.json`` and ``results.png`` in ``experiment_dir``.
    """
    cls = agent_class(agent)
    if not isinstance(env, str) or not env:
        raise ValueError(f"env must be a Gymnasium env id, got {env!r}")
    config = dict(config or {})
    _check_names(list(config), cls, "config")
    search_space = dict(search_space or {})
    _check_names(list(search_space), cls, "search space")
    both = sorted(set(config) & set(search_space))
    if both:
        raise ValueError(f"{', '.join(both)} {'is' if len(both) == 1 else 'are'} both fixed in "
                         f"config and searched; keep one")
    space = translate_search_space(search_space)
    num_samples = positive_int("num_samples", num_samples)
    total_steps = positive_int("total_steps", total_steps)
    eval_every = positive_int("eval_every", eval_every)
    eval_episodes = positive_int("eval_episodes", eval_episodes)
    max_failures = non_negative_int("max_failures", max_failures)
    seeds = [non_negative_int("seeds", s) for s in (seeds or ())]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct non-negative integers, "
                         f"got {seeds!r}")
    if gpus_per_trial < 0:
        raise ValueError(f"gpus_per_trial must be >= 0, got {gpus_per_trial!r}")
    scheduler = _asha_scheduler(asha, total_steps, eval_every)
    if num_cpus is not None:
        num_cpus = positive_int("num_cpus", num_cpus)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise ValueError(f"callbacks must be velora.callbacks.Callback objects, got "
                             f"{type(callback).__name__}")

    folder = Path(experiment_dir).expanduser().resolve()
    exists = tune.Tuner.can_restore(str(folder))
    if resume and not exists:
        raise ValueError(f"resume=True but {str(folder)!r} holds no Ray Tune experiment to resume")
    if not resume and exists:
        raise ValueError(f"{str(folder)!r} already holds a sweep: pass resume=True to continue "
                         f"it, or choose another experiment_dir")
    param_space = {**config, **space, "seed": tune.grid_search(seeds)}

    started = False
    if not ray.is_initialized():
        cpus = num_cpus or os.cpu_count() or 1
        if address is None and trial_cpus(config) > cpus:
            raise ValueError(f"a trial needs {trial_cpus(config)} CPUs (num_envs async envs) but "
                             f"the local Ray has {cpus}: raise num_cpus or lower num_envs")
        if address is not None:
            ray.init(address=address)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False)
        started = True
    try:
        trainable = tune.with_parameters(
            _run_trial, agent=agent, env=env, total_steps=total_steps, eval_every=eval_every,
            eval_episodes=eval_episodes, experiment_dir=str(folder), callbacks=list(callbacks))
        trainable = tune.with_resources(
            trainable, lambda trial_config: tune.PlacementGroupFactory(
                [{"CPU": trial_cpus(trial_config), **({"GPU": gpus_per_trial} if gpus_per_trial else {})}]))
        if resume:
            tuner = tune.Tuner.restore(str(folder), trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    num_samples=num_samples, reuse_actors=True, scheduler=scheduler,
                    search_alg=BasicVariantGenerator(constant_grid_search=True,
                                                     random_state=search_seed),
                    trial_name_creator=TrialNamer(agent),
                    trial_dirname_creator=TrialNamer(agent)),
                run_config=tune.RunConfig(
                    name=folder.name, storage_path=str(folder.parent),
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1), verbose=verbose),
            )
        result_grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()

    trials = _trial_records(result_grid)
    table = aggregate_trials(trials, list(search_space))
    if not table:
        errors = "; ".join(f"{t['trial']}: {t['error']}" for t in trials if t["error"])
        raise RuntimeError(f"no trial of the sweep reported an evaluation ({errors or 'no errors'})")
    plot_path: Path | None = None
    try:
        plot_path = plot_results(folder / "results.png", table, trials,
                                 f"{agent} on {env}: evaluation return, mean ± std across seeds")
    except MissingDependencyError as err:
        warnings.warn(f"results.png was not drawn: {err}", stacklevel=2)
    header = {"agent": agent, "env": env, "seeds": seeds, "total_steps": total_steps,
              "eval_every": eval_every, "eval_episodes": eval_episodes, "num_samples": num_samples,
              "search_space": search_space, "config": config,
              "plot": plot_path.name if plot_path else None,
              "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_results(folder, table, trials, header)
    return SweepResult(folder, table, dict(table[0]["config"]), plot_path, trials)


class TrialNamer:
    """Trial (and folder) names ``<agent>_<trial id>_seed<seed>`` (a class rather than a
    closure so that Tune's saved experiment state can hold it)."""

    def __init__(self, agent: str) -> None:
        self.agent = agent

    def __call__(self, trial: Any) -> str:
        return f"{self.agent}_{trial.trial_id}_seed{trial.config.get('seed')}"


# --------------------------------------------------------------------------- sweep files
SWEEP_FILE_KEYS = {
    "agent": str, "env": str, "total_steps": int, "eval_every": int, "eval_episodes": int,
    "seeds": list, "num_samples": int, "asha": (bool, dict), "max_failures": int,
    "experiment_dir": str, "address": str, "num_cpus": int, "search_seed": int,
    "gpus_per_trial": (int, float), "config": dict, "search": dict,
}
REQUIRED_SWEEP_KEYS = ("agent", "env", "total_steps", "eval_every")


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """Read a sweep TOML file into :func:`sweep`'s keyword arguments (``agent`` and ``env``
    included; ``[search]`` becomes ``search_space``). Values of ``[config]`` are checked
    against the agent's hyperparameter types as ``velora train --config`` does."""
    from velora.settings import hyperparameters, read_toml

    source = f"sweep file {str(path)!r}"
    data = read_toml(path)
    unknown = sorted(set(data) - set(SWEEP_FILE_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(repr(k) for k in unknown)}; valid: "
                         f"{', '.join(SWEEP_FILE_KEYS)}")
    missing = [k for k in REQUIRED_SWEEP_KEYS if k not in data]
    if missing:
        raise ValueError(f"{source}: missing {', '.join(missing)}")
    for key, kind in SWEEP_FILE_KEYS.items():
        value = data.get(key)
        if value is None:
            continue
        bad_bool = isinstance(value, bool) and kind in (int, (int, float))
        if bad_bool or not isinstance(value, kind):
            raise ValueError(f"{source}: {key} has the wrong type ({value!r})")
    cls = agent_class(data["agent"])
    params = hyperparameters(cls)
    fixed = dict(data.get("config", {}))
    _check_names(list(fixed), cls, f"{source} [config]")
    fixed = {k: params[k].coerce(v, f"{source} [config]") for k, v in fixed.items()}
    search = dict(data.get("search", {}))
    _check_names(list(search), cls, f"{source} [search]")
    kwargs = {k: v for k, v in data.items() if k not in ("config", "search")}
    kwargs["config"] = fixed
    kwargs["search_space"] = search
    if "seeds" in kwargs:
        kwargs["seeds"] = tuple(kwargs["seeds"])
    return kwargs
