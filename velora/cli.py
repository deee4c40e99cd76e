"""The ``velora`` command line: train, evaluate, list, plot and sweep.

::

    velora train sac Pendulum-v1 --steps 20000 --seed 1 --n-neurons 16
    velora train sac Pendulum-v1 --config sac.toml --eval-every 5000
    velora eval runs/Pendulum-v1__sac__1__.../final.safetensors --episodes 10
    velora list
    velora plot wiring --in-features 3 --n-neurons 16 --out-features 1 -o wiring.png
    velora plot runs runs/ -o curves.png
    velora sweep examples/sweep.toml --num-cpus 8

Every field of an agent's config (:mod:`velora.agents.config`) is a ``train`` flag
(``n_neurons`` -> ``--n-neurons``) and a key of the ``--config`` TOML file; flags given on
the command line override the file. Errors in what was asked for (``ValueError``) print
``velora: error: <message>`` and exit with code 2.
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from velora._checks import MissingDependencyError
from velora.agents.registry import algorithms
from velora.settings import CLIError, Hyperparameter, _parse_int, hyperparameters, read_toml

PROG = "velora"

# Options of ``train`` that are not agent hyperparameters, with the TOML keys they accept.
RUN_OPTIONS = {
    "steps": int,
    "log_dir": str,
    "no_tensorboard": bool,
    "save": str,
    "save_buffer": bool,
    "quiet": bool,
    "eval_every": int,
    "eval_episodes": int,
    "checkpoint_every": int,
}
RESERVED = {*RUN_OPTIONS, "config", "resume", "agent", "env_id", "help"}
DEFAULT_STEPS = 100_000
DEFAULT_EVAL_EPISODES = 5


# --------------------------------------------------------------------------- agents
def agent_classes() -> dict[str, type]:
    """``{algorithm name: agent class}``, e.g. ``{"sac": LiquidSAC, ...}``: the registry's."""
    return algorithms()


def _load_agent(path: str | Path, env: Any = None) -> Any:
    from velora.agents import load_agent

    return load_agent(path, env)


def first_paragraph(obj: Any) -> str:
    """The first paragraph of ``obj``'s docstring, on one line."""
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())


# --------------------------------------------------------------------------- config files
def config_values(data: dict[str, Any], params: dict[str, Hyperparameter], agent_name: str,
                  source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a config mapping into ``(agent hyperparameters, run options)``, checked."""
    unknown = sorted(k for k in data if k not in params and k not in RUN_OPTIONS)
    if unknown:
        raise CLIError(
            f"{source}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)} (not a {agent_name} hyperparameter nor a "
            f"train option; valid keys: {', '.join(sorted([*params, *RUN_OPTIONS]))})")
    agent_cfg = {k: params[k].coerce(v, source) for k, v in data.items() if k in params}
    run_cfg = {}
    for key, kind in ((k, RUN_OPTIONS[k]) for k in data if k in RUN_OPTIONS):
        value = data[key]
        good = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not good:
            raise CLIError(f"{source}: {key} must be {'an integer' if kind is int else kind.__name__}, "
                           f"got {value!r}")
        run_cfg[key] = value
    return agent_cfg, run_cfg


def config_hyperparameters(cls: type, path: str | Path) -> dict[str, Any]:
    """The agent hyperparameters of a ``velora train --config`` file for agent class ``cls``,
    checked and coerced as the command line does (its run options, such as ``steps``, are
    left out). For scripts that build agents from the same files as ``velora train``."""
    agent_cfg, _ = config_values(read_toml(path), hyperparameters(cls), cls.__name__,
                                 f"config file {str(path)!r}")
    return agent_cfg


# --------------------------------------------------------------------------- parser
class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Hyperparameter help already names its default; only add one where it is useful.
        text = action.help or ""
        if "(default:" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from velora import __version__

    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_Formatter,
        description="velora: liquid (CfC / NCP) off-policy reinforcement learning on Gymnasium.",
        epilog="Run 'velora COMMAND --help' for a command's options.")
    parser.add_argument("--version", action="version", version=f"velora {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # ---- train
    agents = agent_classes()
    train = commands.add_parser(
        "train", help="train an agent on a Gymnasium environment", formatter_class=_Formatter,
        description="Train an agent. Every hyperparameter of the agent is a flag; see "
                    "'velora train AGENT --help'.")
    train_agents = train.add_subparsers(dest="agent", metavar="AGENT", required=True)
    for name, cls in agents.items():
        sub = train_agents.add_parser(
            name, help=first_paragraph(cls).replace("%", "%%"), formatter_class=_Formatter,
            description=f"Train {cls.__name__}: {first_paragraph(cls)}\n\n"
                        "Precedence: command-line flags > --config file > --resume checkpoint's "
                        "configuration > the agent's defaults.")
        sub.add_argument("env_id", metavar="ENV_ID", help="Gymnasium environment id, e.g. "
                         + ("CartPole-v1" if cls.action_kind == "discrete" else "Pendulum-v1"))
        run = sub.add_argument_group("run options")
        run.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                         help=f"environment steps to train for; with --resume, the total the run "
                              f"should reach (default: {DEFAULT_STEPS})")
        run.add_argument("--config", metavar="FILE.toml",
                         help="TOML file of hyperparameters and run options (snake_case keys)")
        run.add_argument("--log-dir", metavar="DIR",
                         help="TensorBoard run folder (default: runs/<env>__<agent>__<seed>__<time>)")
        run.add_argument("--no-tensorboard", action="store_true", default=None,
                         help="write no TensorBoard event files")
        run.add_argument("--save", metavar="PATH",
                         help="checkpoint to write at the end (default: <log dir>/final.safetensors, "
                              "or velora_<agent>_<env>.safetensors without a log dir)")
        run.add_argument("--save-buffer", action="store_true", default=None,
                         help="also save the replay buffer (<save>.buffer.npz) for an exact --resume")
        run.add_argument("--resume", metavar="PATH",
                         help="continue training from a checkpoint (its configuration is the base)")
        run.add_argument("--eval-every", type=_positive_int, metavar="N",
                         help="evaluate every N steps, logging eval/mean_reward and keeping "
                              "best.safetensors next to the final checkpoint")
        run.add_argument("--eval-episodes", type=_positive_int, metavar="K",
                         help=f"episodes per evaluation (default: {DEFAULT_EVAL_EPISODES})")
        run.add_argument("--checkpoint-every", type=_positive_int, metavar="N",
                         help="save checkpoint.safetensors (with the replay buffer) every N steps, "
                              "for --resume after a crash")
        run.add_argument("--quiet", action="store_true", default=None, help="no progress bar")
        hp = sub.add_argument_group(f"{cls.__name__} hyperparameters")
        for param in hyperparameters(cls, RESERVED).values():
            param.add_to(hp)
        sub.set_defaults(handler=cmd_train, agent_class=cls)

    # ---- eval
    ev = commands.add_parser(
        "eval", help="evaluate a saved agent", formatter_class=_Formatter,
        description="Run full episodes with a saved agent (deterministic actions unless "
                    "--stochastic) and print the mean ± std of the return. By default the "
                    "episodes are velora's fixed evaluation episodes (reset seeds 0..99).")
    ev.add_argument("checkpoint", metavar="CHECKPOINT", help="a .safetensors file written by velora")
    ev.add_argument("--episodes", type=_positive_int, default=100,
                    help="episodes to run (the evaluation protocol's 100 by default)")
    ev.add_argument("--env", metavar="ENV_ID", help="environment id (default: the one trained on)")
    ev.add_argument("--seed", type=_non_negative_int, default=0,
                    help="reset seed of the first episode (+1 per episode): with the defaults, "
                         "the protocol's fixed episodes 0..99, the same for every agent")
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean")
    ev.add_argument("--video", metavar="OUT.mp4",
                    help='record the first episode to this file (needs pip install "velora[video]")')
    ev.set_defaults(handler=cmd_eval)

    # ---- list
    ls = commands.add_parser("list", help="list agents, environments and wrappers",
                             formatter_class=_Formatter,
                             description="List velora's agents, environment ids and wrappers.")
    ls.set_defaults(handler=cmd_list)

    # ---- plot
    plot = commands.add_parser("plot", help="draw a wiring diagram or learning curves",
                               formatter_class=_Formatter,
                               description='Figures (PNG); needs pip install "velora[plot]".')
    plots = plot.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    wiring = plots.add_parser("wiring", help="draw an NCP wiring", formatter_class=_Formatter,
                              description="Draw the NCP circuit that velora.wiring.Wiring builds.")
    wiring.add_argument("--in-features", type=_positive_int, required=True, help="sensory neurons")
    wiring.add_argument("--n-neurons", type=_positive_int, required=True,
                        help="inter + command neurons")
    wiring.add_argument("--out-features", type=_positive_int, required=True, help="motor neurons")
    wiring.add_argument("--sparsity-level", type=float, default=0.5,
                        help="fraction of possible synapses left out")
    wiring.add_argument("--seed", type=_non_negative_int, default=0, help="wiring seed")
    wiring.add_argument("--dpi", type=_positive_int, default=150, help="resolution")
    wiring.add_argument("-o", "--out", default="wiring.png", metavar="PNG", help="output file")
    wiring.set_defaults(handler=cmd_plot_wiring)
    runs = plots.add_parser(
        "runs", help="plot learning curves from TensorBoard runs", formatter_class=_Formatter,
        description="Plot mean ± std across seeds of a scalar from TensorBoard event files. "
                    "Runs named <env>__<agent>__<seed>__<time> that differ only in seed and time "
                    "are one configuration.")
    runs.add_argument("runs", nargs="+", metavar="RUNS_DIR",
                      help="run folders or folders holding run folders")
    runs.add_argument("-o", "--out", default="curves.png", metavar="PNG", help="output file")
    runs.add_argument("--tag", default="charts/episodic_return", help="scalar tag to plot")
    runs.add_argument("--smooth", type=float, default=0.6,
                      help="TensorBoard-style smoothing weight in [0, 1)")
    runs.add_argument("--dpi", type=_positive_int, default=150, help="resolution")
    runs.set_defaults(handler=cmd_plot_runs)

    # ---- sweep
    sweep = commands.add_parser(
        "sweep", help="run seeds and a hyperparameter search on Ray Tune", formatter_class=_Formatter,
        description="Train every configuration of a sweep file with every seed on Ray Tune, then "
                    "write results.md, results.csv and results.png (mean ± std across seeds) to "
                    'the experiment folder. Needs pip install "velora[ray]"; see '
                    "examples/sweep.toml for the file's keys.")
    sweep.add_argument("config", metavar="CONFIG.toml", help="sweep file")
    sweep.add_argument("--address", metavar="ADDR",
                       help="Ray cluster to connect to (default: start a local Ray)")
    sweep.add_argument("--num-cpus", type=_positive_int, metavar="N",
                       help="CPUs of the local Ray (default: all of this machine's)")
    sweep.add_argument("--experiment-dir", metavar="DIR",
                       help="experiment folder (default: the file's experiment_dir, else "
                            "runs/sweep__<env>__<agent>__<time>)")
    sweep.add_argument("--resume", action="store_true",
                       help="continue an interrupted sweep in the experiment folder")
    sweep.set_defaults(handler=cmd_sweep)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = _parse_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = _parse_int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


# --------------------------------------------------------------------------- train
def _say(text: str) -> None:
    print(text, flush=True)


def resolve_train_settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge the checkpoint's configuration (``--resume``), the ``--config`` file and the
    command-line flags into ``(agent kwargs, run options)``; later sources win."""
    cls = args.agent_class
    params = hyperparameters(cls, RESERVED)
    agent_cfg: dict[str, Any] = {}
    run_cfg: dict[str, Any] = {}
    if args.resume:
        from velora.checkpoint import check_checkpoint_sizes, read_metadata

        meta = read_metadata(args.resume)
        check_checkpoint_sizes(args.resume, meta)  # its config builds the agent below
        if meta.get("agent") != cls.__name__:
            raise CLIError(f"--resume {args.resume!r} holds a {meta.get('agent')}, not a "
                           f"{cls.__name__} (use 'velora train {meta.get('algorithm')} ...')")
        agent_cfg.update({k: v for k, v in meta.get("config", {}).items() if k in params})
        if meta.get("log_dir"):
            run_cfg["log_dir"] = meta["log_dir"]
    if args.config:
        file_agent, file_run = config_values(read_toml(args.config), params, cls.__name__,
                                             f"config file {args.config!r}")
        agent_cfg.update(file_agent)
        run_cfg.update(file_run)
    agent_cfg.update({k: getattr(args, k) for k in params if getattr(args, k) is not None})
    run_cfg.update({k: getattr(args, k) for k in RUN_OPTIONS if getattr(args, k) is not None})
    return agent_cfg, run_cfg


class _RunFolderCallbacks:
    """Builds the CLI's callbacks; their files go into the run folder, which is only known
    once ``learn`` has opened it."""

    def __init__(self, run: dict[str, Any], save_path: Path | None) -> None:
        from velora.callbacks import Callback, CheckpointCallback, EvalCallback

        cli = self

        class PlaceFiles(Callback):
            def on_training_start(self, agent: Any) -> None:
                folder = cli.folder(agent)
                if cli.eval is not None:
                    cli.eval.best_path = folder / "best.safetensors"
                if cli.checkpoint is not None:
                    cli.checkpoint.path = folder / "checkpoint.safetensors"

        self.save_path = save_path
        self.eval = EvalCallback(run["eval_every"], run.get("eval_episodes", DEFAULT_EVAL_EPISODES)) \
            if run.get("eval_every") else None
        self.checkpoint = CheckpointCallback(run["checkpoint_every"], "checkpoint.safetensors",
                                             include_buffer=True) \
            if run.get("checkpoint_every") else None
        self.callbacks = [PlaceFiles(), *(c for c in (self.eval, self.checkpoint) if c)]

    def folder(self, agent: Any) -> Path:
        if agent.log_dir is not None:
            return Path(agent.log_dir)
        return self.save_path.parent if self.save_path is not None else Path.cwd()


def cmd_train(args: argparse.Namespace) -> int:
    cls = args.agent_class
    agent_cfg, run = resolve_train_settings(args)
    steps = run.get("steps", DEFAULT_STEPS)
    if isinstance(steps, bool) or steps < 1:
        raise CLIError(f"steps must be a positive integer, got {steps!r}")
    log_dir: Any = False if run.get("no_tensorboard") else run.get("log_dir")
    save = Path(run["save"]) if run.get("save") else None
    quiet = bool(run.get("quiet"))

    agent = cls(args.env_id, **agent_cfg)
    hooks = _RunFolderCallbacks(run, save)
    if not quiet:
        shown = ", ".join(f"{k}={v}" for k, v in agent_cfg.items())
        _say(f"Training {cls.__name__} on {args.env_id} for {steps} steps"
             + (f" ({shown})" if shown else ""))
    interrupted = False
    try:
        agent.learn(steps, log_dir=log_dir, progress_bar=not quiet, callbacks=hooks.callbacks,
                    resume=args.resume)
    except KeyboardInterrupt:
        interrupted = True
    if save is None:
        if agent.log_dir is not None:
            save = Path(agent.log_dir) / "final.safetensors"
        else:
            env = (agent.env_id or args.env_id).replace("/", "-")
            save = Path(f"velora_{agent.algorithm}_{env}.safetensors")
    path = agent.save(save, include_buffer=bool(run.get("save_buffer")))
    recent = agent.episode_returns[-10:]
    summary = f"{agent.num_timesteps} steps, {agent.num_episodes} episodes"
    if recent:
        summary += f", mean return of the last {len(recent)}: {sum(recent) / len(recent):.2f}"
    _say(("Interrupted after " if interrupted else "Done: ") + summary)
    if hooks.eval is not None and hooks.eval.results:
        step, mean, std = max(hooks.eval.results, key=lambda r: r[1])
        _say(f"Best evaluation: {mean:.2f} ± {std:.2f} at step {step}"
             + (f" -> {hooks.eval.best_path}" if hooks.eval.best_path else ""))
    _say(f"Checkpoint: {path}")
    if agent.log_dir is not None:
        _say(f"TensorBoard logs: {agent.log_dir}  (view: tensorboard --logdir {agent.log_dir.parent})")
    else:
        _say("TensorBoard logs: none (--no-tensorboard)")
    return 130 if interrupted else 0


# --------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    if args.video:
        try:
            import moviepy  # noqa: F401
        except ImportError:
            raise MissingDependencyError(
                'recording a video needs moviepy: pip install "velora[video]"') from None
    if not Path(args.checkpoint).is_file():
        raise CLIError(f"checkpoint {args.checkpoint!r} does not exist")
    agent = _load_agent(args.checkpoint, args.env)
    env_id = args.env or agent.env_id
    deterministic = not args.stochastic
    if args.video:
        mean, std = _evaluate_with_video(agent, env_id, args, deterministic)
    else:
        mean, std = agent.evaluate(env_id, args.episodes, seed=args.seed,
                                   deterministic=deterministic)
    _say(f"{type(agent).__name__} on {env_id}: return {mean:.2f} ± {std:.2f} over "
         f"{args.episodes} episode{'s' if args.episodes > 1 else ''}"
         + ("" if deterministic else " (stochastic actions)"))
    if args.video:
        _say(f"Video of the first episode: {args.video}")
    return 0


def headless_mujoco_gl() -> str | None:
    """Choose MuJoCo's OpenGL backend for recording where no display is set.

    MuJoCo renders through GLFW unless ``MUJOCO_GL`` says otherwise, and GLFW needs a display.
    Without ``DISPLAY`` / ``WAYLAND_DISPLAY`` and without a ``MUJOCO_GL`` of the user's,
    this sets ``MUJOCO_GL=egl`` (a GPU driver's EGL, or Mesa's software one: ``libegl1``
    and ``libgl1-mesa-dri`` on Debian/Ubuntu); ``MUJOCO_GL=osmesa`` (``libosmesa6``) is the
    other headless choice. Returns the backend in use (``None``: GLFW with a display).
    """
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY") \
            and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    return os.environ.get("MUJOCO_GL")


def _evaluate_with_video(agent: Any, env_id: str, args: argparse.Namespace,
                         deterministic: bool) -> tuple[float, float]:
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    from velora.envs import make_env

    target = Path(args.video)
    if target.suffix.lower() != ".mp4":
        raise CLIError(f"--video must name an .mp4 file, got {args.video!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    headless_mujoco_gl()  # read by MuJoCo when the first renderer is made, below
    with tempfile.TemporaryDirectory(prefix=".velora-video-", dir=target.parent) as tmp:
        folder = Path(tmp) / "video"  # RecordVideo warns about folders that already exist
        env = make_env(env_id, render_mode="rgb_array")
        try:
            env = RecordVideo(env, str(folder), episode_trigger=lambda episode: episode == 0,
                              name_prefix="velora", disable_logger=True)
            mean, std = agent.evaluate(env, args.episodes, seed=args.seed,
                                       deterministic=deterministic)
        except gym.error.DependencyNotInstalled as err:
            raise MissingDependencyError(f"rendering {env_id} failed: {err}") from None
        except ValueError as err:
            if "render" in str(err).lower():
                raise CLIError(f"{env_id} cannot be recorded: {err}") from None
            raise
        except Exception as err:  # MuJoCo's FatalError when no OpenGL context can be made
            if not type(err).__module__.startswith("mujoco"):
                raise
            raise MissingDependencyError(
                f"rendering {env_id} failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {err} "
                f"(headless MuJoCo renders with MUJOCO_GL=egl or MUJOCO_GL=osmesa)") from None
        finally:
            env.close()
        videos = sorted(folder.glob("*.mp4"))
        if not videos:
            raise CLIError(f"no video was recorded for {env_id} (does it render rgb_array frames?)")
        shutil.move(str(videos[0]), target)
    return mean, std


# --------------------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from velora import envs

    agents = agent_classes()
    width = max(len(n) for n in agents)
    _say("Agents (velora train AGENT ENV_ID):")
    for name, cls in agents.items():
        _say(f"  {name:<{width}}  {cls.__name__:<18} {first_paragraph(cls)}")
    _say("")
    _say("Environments registered by velora (besides every Gymnasium id):")
    env_width = max((len(e) for e in envs.PARTIAL_OBSERVABILITY_ENVS), default=0)
    for env_id, entry in envs.PARTIAL_OBSERVABILITY_ENVS.items():
        description = entry[-1] if isinstance(entry, tuple) else str(entry)
        _say(f"  {env_id:<{env_width}}  {description}")
    _say("")
    _say("Wrappers:")
    exported = [getattr(envs, name, None) for name in getattr(envs, "__all__", [])]
    wrapper_types = (gym.Wrapper, gym.vector.VectorWrapper)
    for wrapper in (w for w in exported if inspect.isclass(w) and issubclass(w, wrapper_types)):
        _say(f"  velora.envs.{wrapper.__name__}  {first_paragraph(wrapper)}")
    return 0


# --------------------------------------------------------------------------- plot
def cmd_plot_wiring(args: argparse.Namespace) -> int:
    from velora.wiring import Wiring

    wiring = Wiring(args.in_features, args.n_neurons, args.out_features,
                    sparsity_level=args.sparsity_level, seed=args.seed)
    path = wiring.draw(args.out, dpi=args.dpi)
    _say(f"{wiring!r}")
    _say(f"Wiring diagram: {path}")
    return 0


def cmd_plot_runs(args: argparse.Namespace) -> int:
    from velora.plotting import plot_runs

    path = plot_runs(args.runs, args.out, tag=args.tag, smooth=args.smooth, dpi=args.dpi)
    _say(f"Learning curves ({args.tag}): {path}")
    return 0


# --------------------------------------------------------------------------- sweep
def cmd_sweep(args: argparse.Namespace) -> int:
    import json
    import time

    from velora.tune import load_sweep_file, sweep

    settings = load_sweep_file(args.config)
    for key in ("address", "num_cpus", "experiment_dir"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.resume:
        if "experiment_dir" not in settings:
            raise CLIError("--resume needs the folder of the sweep to continue: --experiment-dir DIR")
        settings["resume"] = True
    agent, env = settings.pop("agent"), settings.pop("env")
    if "experiment_dir" not in settings:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        settings["experiment_dir"] = str(Path("runs") / f"sweep__{env.replace('/', '-')}__{agent}__{stamp}")
    _say(f"Sweep of {agent} on {env} -> {settings['experiment_dir']}")
    try:
        result = sweep(agent, env, **settings)
    except RuntimeError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        return 1
    summary = (result.experiment_dir / "results.md").read_text(encoding="utf-8")
    for line in summary.splitlines():
        if line.startswith("|"):
            _say(line)
    _say(f"Best configuration: {json.dumps(result.best_config, sort_keys=True, default=str)}")
    _say(f"Results: {result.experiment_dir / 'results.md'}, {result.experiment_dir / 'results.csv'}"
         + (f", {result.plot_path}" if result.plot_path else ""))
    _say(f"TensorBoard logs: tensorboard --logdir {result.experiment_dir}")
    return 0


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the ``velora`` command line with ``argv`` (default: ``sys.argv[1:]``) and return
    the exit code. ``--help`` and malformed arguments exit through ``SystemExit`` as argparse
    does; a ``ValueError`` from velora prints ``velora: error: <message>`` and returns 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import gymnasium as gym

    try:
        return int(args.handler(args))
    except (ValueError, MissingDependencyError, gym.error.Error) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
        return 2
