"""Side-by-side benchmark: a velora liquid agent against its Stable-Baselines3 peer.

One command trains SB3 SAC (``MlpPolicy``, 256x256, lr 1e-3) and velora's ``LiquidSAC``
(``stored_state`` replay, default settings) on the same env, for the same steps and seeds, with
the same batch size, one gradient step per env step, the same ``learning_starts``, replay
capacity and torch thread count; ``--replay sequence`` adds a sequence-mode ``LiquidSAC``
(``seq_len`` 16, ``burn_in`` 8) and ``--peer td3`` swaps the pair for SB3 TD3 against
``LiquidDDPG``. ``--sbx`` adds SBX SAC (``sbx-rl``, SB3's JAX port, same network and
settings as SB3 SAC; its jitted update is compiled before the clock starts, and XLA is kept to
one thread: see :data:`SBX_ENV`). A random policy stepping the same env without learning gives
the ceiling.

Every system lives in its own spawned process (so that peak RSS is its own), and the processes
take turns: training is cut into segments of ``--segment`` env steps and the systems run one
segment each in a rotating order, so a load change on a shared machine hits all of them alike.
Only one process computes at any time; the others wait on a pipe.

Measured per system: env steps per wall second of ``learn`` (overall, during the random-action
warm-up, and after ``learning_starts``), deterministic evaluation return at checkpoints (fixed
eval seeds, the same for every system), peak RSS, trainable parameters (velora: total and
unmasked), microseconds per ``predict`` on one observation; and the velora/SB3 ratio of each.

Examples::

    python scripts/bench/compare.py --quick                      # ~2 minutes
    python scripts/bench/compare.py --steps 5000 --learning-starts 1000 --replay sequence
    python scripts/bench/compare.py --peer td3 --json /tmp/td3.json
    python scripts/bench/compare.py --steps 2000 --replay sequence --sbx   # + SBX SAC (JAX)

Results go to ``--json`` (optional) and into ``docs/benchmarks.md`` between the markers
``<!-- compare:start -->`` and ``<!-- compare:end -->`` (``--quick`` runs use the section
``compare-quick`` unless ``--section`` says otherwise; ``--no-doc`` writes nothing there).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _common, next to this file

import _common as common

EVAL_SEED = 0  # the protocol's fixed episodes (velora.evaluation.EVAL_SEEDS): reset seeds 0..n-1
METRICS = ("sps_overall", "sps_warmup", "sps_learning", "sps_learning_cpu", "us_per_action",
           "us_per_action_cpu", "peak_rss", "vmhwm", "params_total", "params_active")
LATENCY_CALLS, LATENCY_REPEATS, LATENCY_WARMUP = 1000, 5, 200
# XLA ignores torch's thread setting. These keep SBX's computation on one thread as torch's is:
# XLA:CPU's multi-threaded Eigen off, one intra-op thread, no GPU probing. Checked: SBX SAC's
# training used <= 1 CPU second per wall second with them (the table's "per CPU s" column shows
# it for every run). The process is not pinned to a core, like the torch workers: pinning made
# SBX faster on a loaded machine, which would favour one system.
SBX_ENV = {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
           "JAX_PLATFORMS": "cpu"}

# Targets of the issue, as velora/SB3 ratios: (metric, comparison, bound).
TARGETS: dict[str, dict[str, tuple[str, float]]] = {
    "stored_state": {"sps_learning": (">=", 3.0), "us_per_action": ("<=", 0.2),
                     "peak_rss": ("<=", 1.0), "params_total": ("<=", 0.05)},
    "sequence": {"sps_learning": (">=", 1.0), "us_per_action": ("<=", 0.2),
                 "peak_rss": ("<=", 1.0), "params_total": ("<=", 0.05)},
}


# ---------------------------------------------------------------------------- systems
def system_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The systems of one run: the random ceiling, the SB3 peer, velora's agent(s)."""
    specs: list[dict[str, Any]] = [{"key": "random", "kind": "random", "label": "random policy (ceiling)"}]
    if args.peer == "sac":
        specs.append({"key": "sb3", "kind": "sb3", "algo": "sac",
                      "label": "SB3 SAC (MlpPolicy 256×256)"})
        velora_cls = "LiquidSAC"
    else:
        specs.append({"key": "sb3", "kind": "sb3", "algo": "td3",
                      "label": "SB3 TD3 (MlpPolicy 400×300)"})
        velora_cls = "LiquidDDPG"
    if args.sbx:
        specs.append({"key": "sbx", "kind": "sbx", "algo": "sac",
                      "label": "SBX SAC (JAX, MlpPolicy 256×256)"})
    specs.append({"key": "velora_stored", "kind": "velora", "cls": velora_cls, "replay": "stored_state",
                  "label": f"velora {velora_cls} (stored_state)"})
    if args.replay == "sequence":
        specs.append({"key": "velora_sequence", "kind": "velora", "cls": velora_cls,
                      "replay": "sequence",
                      "label": f"velora {velora_cls} (sequence, seq_len {args.seq_len}, "
                               f"burn_in {args.burn_in}, {sequence_windows(vars(args))} windows, "
                               f"{args.seq_gradient_steps} update"
                               f"{'s' if args.seq_gradient_steps > 1 else ''} per env step)"})
    return specs


class RandomSystem:
    """The env stepped by uniformly random actions: no network, no buffer, no learning."""

    def __init__(self, cfg: dict[str, Any], seed: int) -> None:
        import gymnasium as gym

        self.env = gym.make(cfg["env"])
        self.env.action_space.seed(seed)
        self.env.reset(seed=seed)

    def train(self, steps: int) -> None:
        env = self.env
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()

    def evaluate(self, n_episodes: int, seed: int) -> None:
        return None

    def predict_one(self, obs: Any) -> Any:
        return self.env.action_space.sample()

    def params(self) -> dict[str, int]:
        return {}


def evaluate_on_fixed_episodes(policy: Any, env: Any, n_episodes: int, seed: int
                               ) -> dict[str, float]:
    """Mean, std and worst return of ``policy`` on reset seeds ``seed .. seed + n - 1``, by the
    evaluation protocol's loop; closes ``env``."""
    from velora.evaluation import episode_returns

    try:
        returns = episode_returns(policy, env, range(seed, seed + n_episodes))
    finally:
        env.close()
    return {"mean": float(returns.mean()), "std": float(returns.std()),
            "worst": float(returns.min())}


class SB3System:
    def __init__(self, cfg: dict[str, Any], seed: int, algo: str) -> None:
        import gymnasium as gym
        import numpy as np

        self.env_id = cfg["env"]
        env = gym.make(self.env_id)
        common_kw = {"learning_rate": cfg["lr"], "batch_size": cfg["batch_size"],
                     "learning_starts": cfg["learning_starts"], "train_freq": 1, "gradient_steps": 1,
                     "buffer_size": cfg["buffer_size"], "seed": seed, "device": "cpu", "verbose": 0}
        if algo == "sac":
            from stable_baselines3 import SAC

            self.model = SAC("MlpPolicy", env, **common_kw)
        else:
            from stable_baselines3 import TD3
            from stable_baselines3.common.noise import NormalActionNoise

            space = env.action_space
            # velora's noise_std is in the [-1, 1] action scale; give SB3 the same in env units.
            sigma = cfg["noise_std"] * (space.high - space.low) / 2.0
            noise = NormalActionNoise(mean=np.zeros(space.shape), sigma=sigma)
            self.model = TD3("MlpPolicy", env, action_noise=noise, **common_kw)

    def train(self, steps: int) -> None:
        self.model.learn(steps, reset_num_timesteps=False, progress_bar=False)

    def evaluate(self, n_episodes: int, seed: int) -> dict[str, float]:
        import gymnasium as gym

        return evaluate_on_fixed_episodes(self.model, gym.make(self.env_id), n_episodes, seed)

    def predict_one(self, obs: Any) -> Any:
        return self.model.predict(obs, deterministic=True)[0]

    def params(self) -> dict[str, int]:
        def count(module: Any) -> int:
            return sum(p.numel() for p in module.parameters() if p.requires_grad)

        actor, critic = count(self.model.actor), count(self.model.critic)
        return {"actor": actor, "critic": critic, "total": actor + critic, "active": actor + critic}


class SBXSystem(SB3System):
    """SBX SAC (``sbx-rl``): SB3's SAC in JAX, with the same settings as :class:`SB3System`.

    JAX compiles a jitted function on its first call for each model (the model's networks are
    static arguments), so the first update would take seconds. Before any timing, :meth:`warm_up`
    calls the model's own update and acting functions once on a zero batch of the real shapes
    and throws the results away: JAX functions change no state, so training is unchanged.
    """

    def __init__(self, cfg: dict[str, Any], seed: int) -> None:
        import gymnasium as gym
        from sbx import SAC

        self.env_id = cfg["env"]
        self.model = SAC("MlpPolicy", gym.make(self.env_id), learning_rate=cfg["lr"],
                         batch_size=cfg["batch_size"], learning_starts=cfg["learning_starts"],
                         train_freq=1, gradient_steps=1, buffer_size=cfg["buffer_size"],
                         seed=seed, verbose=0)
        self.warm_up(cfg["batch_size"])

    def warm_up(self, batch_size: int) -> None:
        """Compile the update (one gradient step of ``batch_size``) and stochastic and
        deterministic acting on one observation; every result is discarded."""
        import numpy as np
        from sbx.common.policies import BaseJaxPolicy
        from sbx.common.type_aliases import ReplayBufferSamplesNp

        model, policy = self.model, self.model.policy
        # What SBX's train() sets before each update: the learning rates as Python floats (its
        # jit traces them weakly typed, unlike the arrays the optimisers start with). The same
        # values the first update sets, set early.
        lr = float(model.lr_schedule(model._current_progress_remaining))
        policy.actor_state.opt_state.hyperparams["learning_rate"] = lr
        policy.qf_state.opt_state.hyperparams["learning_rate"] = model.initial_qf_learning_rate or lr
        obs = np.zeros((batch_size, *model.observation_space.shape), np.float32)
        actions = np.zeros((batch_size, *model.action_space.shape), np.float32)
        zeros = np.zeros(batch_size, np.float32)
        data = ReplayBufferSamplesNp(obs, actions, obs, zeros, zeros,
                                     np.full(batch_size, model.gamma, np.float32))
        out = type(model)._train(model.tau, model.target_entropy, 1, data, model.policy_delay,
                                 (model._n_updates + 1) % model.policy_delay, policy.qf_state,
                                 policy.actor_state, model.ent_coef_state, model.key)
        out[-1][0].block_until_ready()
        BaseJaxPolicy.sample_action(policy.actor_state, obs[:1], policy.noise_key).block_until_ready()
        BaseJaxPolicy.select_action(policy.actor_state, obs[:1]).block_until_ready()

    def params(self) -> dict[str, int]:
        import jax

        def count(tree: Any) -> int:
            return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(tree))

        policy = self.model.policy
        actor, critic = count(policy.actor_state.params), count(policy.qf_state.params)
        return {"actor": actor, "critic": critic, "total": actor + critic, "active": actor + critic}


def sequence_windows(cfg: dict[str, Any]) -> int:
    """Windows per sequence-mode update: ``--seq-batch``, else as many transitions as the
    one-step batch (``batch_size // seq_len``, velora's own default)."""
    return cfg.get("seq_batch") or max(1, cfg["batch_size"] // cfg["seq_len"])


class VeloraSystem:
    def __init__(self, cfg: dict[str, Any], seed: int, cls_name: str, replay: str) -> None:
        from velora import agents

        cls = getattr(agents, cls_name)
        kw: dict[str, Any] = {"replay": replay, "batch_size": cfg["batch_size"],
                              "learning_starts": cfg["learning_starts"], "train_freq": 1,
                              "gradient_steps": 1, "buffer_size": cfg["buffer_size"], "seed": seed,
                              "device": "cpu", "threads": cfg["threads"]}
        if replay == "sequence":
            kw.update(seq_len=cfg["seq_len"], burn_in=cfg["burn_in"],
                      batch_size=sequence_windows(cfg),
                      gradient_steps=cfg.get("seq_gradient_steps", 1))
        if cls_name == "LiquidDDPG":
            kw["noise_std"] = cfg["noise_std"]  # the same exploration noise as the TD3 peer
        if cfg.get("velora_config") is not None:
            from velora.cli import config_hyperparameters

            kw = {**config_hyperparameters(cls, cfg["velora_config"]), **kw}
        self.env_id = cfg["env"]
        self.agent = cls(self.env_id, **kw)
        # what predict reads: the env's observation, plus the history inputs where the replay
        # mode reads them (sequence mode's default)
        self.observation_space = self.agent.observation_space
        self.state = None

    def train(self, steps: int) -> None:
        self.agent.learn(steps, log_dir=False, progress_bar=False)

    def evaluate(self, n_episodes: int, seed: int) -> dict[str, float]:
        from velora.envs import make_env

        env = self.agent.wrap_env(make_env(self.env_id))
        return evaluate_on_fixed_episodes(self.agent, env, n_episodes, seed)

    def predict_one(self, obs: Any) -> Any:
        action, self.state = self.agent.predict(obs, self.state, deterministic=True)
        return action

    def params(self) -> dict[str, int]:
        out = {"total": 0, "active": 0}
        for name, net in self.agent.networks().items():
            if "target" in name:
                continue
            ncps = [m for m in net.modules() if hasattr(type(m), "active_params")]
            total = sum(m.total_params for m in ncps)
            active = sum(m.active_params for m in ncps)
            out[f"{name}_total"], out[f"{name}_active"] = total, active
            out["total"] += total
            out["active"] += active
        return out


def build_system(spec: dict[str, Any], cfg: dict[str, Any], seed: int) -> Any:
    if spec["kind"] == "random":
        return RandomSystem(cfg, seed)
    if spec["kind"] == "sb3":
        return SB3System(cfg, seed, spec["algo"])
    if spec["kind"] == "sbx":
        return SBXSystem(cfg, seed)
    return VeloraSystem(cfg, seed, spec["cls"], spec["replay"])


def action_latency_us(system: Any, obs: Any, warmup: bool) -> tuple[float, float]:
    """Microseconds per single-observation ``predict`` over ``LATENCY_CALLS`` calls (after
    ``LATENCY_WARMUP`` untimed calls the first time): wall and CPU time. The parent asks for
    ``LATENCY_REPEATS`` of these, the systems taking turns, and keeps the median."""
    for _ in range(LATENCY_WARMUP if warmup else 0):
        system.predict_one(obs)
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(LATENCY_CALLS):
        system.predict_one(obs)
    return ((time.perf_counter() - start) / LATENCY_CALLS * 1e6,
            (time.process_time() - start_cpu) / LATENCY_CALLS * 1e6)


def worker(spec: dict[str, Any], cfg: dict[str, Any], seed: int, conn: Any) -> None:
    """One system in its own process, driven over ``conn``: ``("train", steps)``,
    ``("eval", episodes, seed)``, ``("latency",)``, ``("finish",)``."""
    try:
        if spec["kind"] == "sbx":  # before JAX loads: it reads these once
            os.environ.update(SBX_ENV)
        import torch

        torch.set_num_threads(cfg["threads"])
        if cfg["env"].startswith("velora/"):
            import velora.envs  # noqa: F401 - registers velora's env ids
        start = time.perf_counter()
        system = build_system(spec, cfg, seed)
        conn.send({"ok": True, "build_s": time.perf_counter() - start})
        latency: list[float] = []
        latency_cpu: list[float] = []
        latency_obs = None
        while True:
            cmd = conn.recv()
            if cmd[0] == "train":
                start, start_cpu = time.perf_counter(), time.process_time()
                system.train(cmd[1])
                conn.send({"ok": True, "steps": cmd[1], "seconds": time.perf_counter() - start,
                           "cpu_seconds": time.process_time() - start_cpu})
            elif cmd[0] == "eval":
                conn.send({"ok": True, "eval": system.evaluate(cmd[1], cmd[2])})
            elif cmd[0] == "latency":
                if latency_obs is None:
                    import gymnasium as gym
                    import numpy as np

                    space = getattr(system, "observation_space", None) \
                        or gym.make(cfg["env"]).observation_space
                    space.seed(seed)
                    latency_obs = np.asarray(space.sample(), dtype=space.dtype)
                    wall, cpu = action_latency_us(system, latency_obs, warmup=True)
                else:
                    wall, cpu = action_latency_us(system, latency_obs, warmup=False)
                latency.append(wall)
                latency_cpu.append(cpu)
                conn.send({"ok": True})
            elif cmd[0] == "finish":
                import gymnasium as gym
                import numpy as np

                versions = {"torch": torch.__version__, "gymnasium": gym.__version__,
                            "numpy": np.__version__}
                if spec["kind"] in ("sb3", "sbx"):
                    import stable_baselines3

                    versions["stable_baselines3"] = stable_baselines3.__version__
                if spec["kind"] == "sbx":
                    from importlib.metadata import version

                    import jax

                    versions.update(sbx=version("sbx-rl"), jax=jax.__version__)
                if spec["kind"] == "velora":
                    from importlib.metadata import version

                    versions["velora"] = version("velora")
                conn.send({"ok": True, "latency_us": latency, "latency_cpu_us": latency_cpu,
                           "params": system.params(),
                           "threads": torch.get_num_threads(), "versions": versions,
                           **common.peak_rss_mib()})
                return
    except Exception as err:  # report to the parent instead of leaving it waiting
        import traceback

        conn.send({"ok": False, "error": f"{type(err).__name__}: {err}",
                   "traceback": traceback.format_exc()})


# ---------------------------------------------------------------------------- orchestration
def call(conn: Any, key: str, *cmd: Any) -> dict[str, Any]:
    if cmd:
        conn.send(cmd)
    reply = conn.recv()
    if not reply.get("ok"):
        raise RuntimeError(f"{key} failed: {reply.get('error')}\n{reply.get('traceback', '')}")
    return reply


def boundaries(args: argparse.Namespace) -> tuple[list[int], set[int]]:
    """Step counts where training pauses (segment ends) and those that are eval checkpoints."""
    checkpoints = set(range(args.eval_every, args.steps + 1, args.eval_every)) | {args.steps}
    stops = set(range(args.learning_starts + args.segment, args.steps, args.segment))
    if 0 < args.learning_starts < args.steps:
        stops.add(args.learning_starts)
    if args.learning_starts == 0:
        stops |= set(range(args.segment, args.steps, args.segment))
    return sorted(stops | checkpoints), checkpoints


def run_seed(args: argparse.Namespace, cfg: dict[str, Any], specs: list[dict[str, Any]], seed: int
             ) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    procs, conns = {}, {}
    for spec in specs:
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(spec, cfg, seed, child_end), daemon=True)
        proc.start()
        child_end.close()
        procs[spec["key"]], conns[spec["key"]] = proc, parent_end
    results: dict[str, dict[str, Any]] = {s["key"]: {"segments": [], "evals": {}} for s in specs}
    try:
        for spec in specs:
            results[spec["key"]]["build_s"] = call(conns[spec["key"]], spec["key"])["build_s"]
        stops, checkpoints = boundaries(args)
        done = 0
        for index, stop in enumerate(stops):
            order = specs[index % len(specs):] + specs[:index % len(specs)]
            for spec in order:
                reply = call(conns[spec["key"]], spec["key"], "train", stop - done)
                results[spec["key"]]["segments"].append(
                    {"start": done, "stop": stop, "seconds": reply["seconds"],
                     "cpu_seconds": reply["cpu_seconds"], "learning": done >= args.learning_starts})
            done = stop
            if stop in checkpoints:
                line = []
                for spec in specs:
                    if spec["kind"] == "random":
                        continue
                    ev = call(conns[spec["key"]], spec["key"], "eval", args.eval_episodes,
                              EVAL_SEED)["eval"]
                    results[spec["key"]]["evals"][stop] = ev
                    line.append(f"{spec['key']} {ev['mean']:.0f}")
                print(f"  seed {seed} step {stop}: eval " + ", ".join(line), flush=True)
            else:
                print(f"  seed {seed} step {stop}", flush=True)
        actors = [spec for spec in specs if spec["kind"] != "random"]
        for index in range(LATENCY_REPEATS):
            for spec in actors[index % len(actors):] + actors[:index % len(actors)]:
                call(conns[spec["key"]], spec["key"], "latency")
        for spec in specs:
            results[spec["key"]].update(call(conns[spec["key"]], spec["key"], "finish"))
            results[spec["key"]].pop("ok", None)
    finally:
        for key, proc in procs.items():
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
            conns[key].close()
    return results


def summarise_seed(result: dict[str, Any], learning_starts: int, steps: int) -> dict[str, Any]:
    segs = result["segments"]
    total_s = sum(s["seconds"] for s in segs)
    warm = [s for s in segs if not s["learning"]]
    learn = [s for s in segs if s["learning"]]
    warm_s, learn_s = sum(s["seconds"] for s in warm), sum(s["seconds"] for s in learn)
    learn_cpu = sum(s["cpu_seconds"] for s in learn)
    return {
        "sps_overall": steps / total_s,
        "sps_warmup": learning_starts / warm_s if warm_s > 0 else None,
        "sps_learning": (steps - learning_starts) / learn_s if learn_s > 0 else None,
        "sps_learning_cpu": (steps - learning_starts) / learn_cpu if learn_cpu > 0 else None,
        "segment_sps": [(s["stop"] - s["start"]) / s["seconds"] for s in learn],
        "us_per_action": common.median(result["latency_us"]) if result.get("latency_us") else None,
        "us_per_action_cpu": common.median(result["latency_cpu_us"]) if result.get("latency_cpu_us")
        else None,
        "peak_rss": result["ru_maxrss_mib"],
        "vmhwm": result.get("vmhwm_mib"),
        "params_total": result["params"].get("total"),
        "params_active": result["params"].get("active"),
    }


def aggregate(args: argparse.Namespace, specs: list[dict[str, Any]],
              per_seed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for spec in specs:
        key = spec["key"]
        rows = [summarise_seed(per_seed[seed][key], args.learning_starts, args.steps)
                for seed in args.seeds]
        entry: dict[str, Any] = {"label": spec["label"], "per_seed": rows}
        for metric in METRICS:
            entry[metric] = common.median(r[metric] for r in rows)
        checkpoints = sorted({step for seed in args.seeds for step in per_seed[seed][key]["evals"]})
        entry["evals"] = {step: [per_seed[seed][key]["evals"][step]["mean"] for seed in args.seeds
                                 if step in per_seed[seed][key]["evals"]] for step in checkpoints}
        summary[key] = entry
    ceiling = summary["random"]["sps_overall"]
    for key, entry in summary.items():
        if key != "random":
            entry["ceiling_fraction_learning"] = (entry["sps_learning"] or float("nan")) / ceiling
            entry["ceiling_fraction_overall"] = entry["sps_overall"] / ceiling

    def ratios(key: str, peer_key: str) -> dict[str, Any]:
        entry, peer = summary[key], summary[peer_key]
        out = {m: entry[m] / peer[m] for m in METRICS if m != "sps_warmup" and entry[m] and peer[m]}
        # Paired: segment i of one system against segment i of the peer, run back to back.
        paired = [v / p for seed in args.seeds for v, p in zip(
            summarise_seed(per_seed[seed][key], args.learning_starts, args.steps)["segment_sps"],
            summarise_seed(per_seed[seed][peer_key], args.learning_starts, args.steps)["segment_sps"],
            strict=True)]
        out["sps_learning_paired"] = common.median(paired)
        out["sps_learning_paired_range"] = [min(paired), max(paired)] if paired else None
        return out

    for key, entry in summary.items():
        if key.startswith("velora") or key == "sbx":
            entry["ratios"] = ratios(key, "sb3")
        if key.startswith("velora") and "sbx" in summary:
            entry["ratios_sbx"] = ratios(key, "sbx")
    return summary


# ---------------------------------------------------------------------------- report
def check(value: float | None, target: tuple[str, float]) -> str:
    if value is None:
        return "–"
    op, bound = target
    met = value >= bound if op == ">=" else value <= bound
    return f"{value:.2f}× {'✅' if met else '❌'} (target {op} {bound:g}×)"


def markdown(args: argparse.Namespace, summary: dict[str, Any], meta: dict[str, Any]) -> str:
    versions = meta["versions"]
    machine = meta["machine"]
    lines = [
        f"Command: `{meta['command']}`",
        "",
        f"Run {meta['date']}; {meta['wall_s'] / 60:.1f} min wall. torch {versions.get('torch')}, "
        f"stable-baselines3 {versions.get('stable_baselines3')}, gymnasium {versions.get('gymnasium')}, "
        f"velora {versions.get('velora')}, Python {machine['python']}. "
        f"`torch.set_num_threads({args.threads})` in every process"
        + (f" (velora: `threads={args.threads}`); SBX {versions.get('sbx')} on jax "
           f"{versions.get('jax')} with `XLA_FLAGS=\"{SBX_ENV['XLA_FLAGS']}\"`, its update "
           f"compiled before timing. " if "sbx" in summary else ". ") +
        f"Machine: {machine['cpu_count']} cores ({machine['cpu_model']}); 1-min load average "
        f"{machine['loadavg_1m']} at the start and {meta['loadavg_end']} at the end — other jobs "
        f"shared the CPUs, so read the ratios, not the absolute figures.",
        "",
        f"Settings: `{args.env}`, {args.steps:,} env steps, seeds {args.seeds}, learning_starts "
        f"{args.learning_starts:,}, batch {args.batch_size}, 1 gradient step per env step "
        f"(unless a label says otherwise), replay capacity {args.buffer_size:,}, lr {args.lr:g} "
        f"for SB3 (velora: "
        + (f"`{args.velora_config}`" if args.velora_config is not None else "its defaults")
        + "). Each "
        f"system in its own spawned process; the systems take turns every {args.segment} steps "
        f"(rotating order). Eval: deterministic, {args.eval_episodes} episodes, reset seeds "
        f"{EVAL_SEED}…{EVAL_SEED + args.eval_episodes - 1} for every system. Figures are medians over "
        f"seeds ([min, max] where there are several).",
        "",
    ]
    checkpoints = sorted({s for e in summary.values() for s in e["evals"]})
    eval_head = " / ".join(f"{s / 1000:g}k" for s in checkpoints)
    lines += [
        f"| system | SPS overall | SPS after learning_starts (per CPU s) | SPS warm-up | % of "
        f"ceiling (after l.s.) | eval return @ {eval_head} | peak RSS MiB | parameters "
        f"(floats stored) | µs / action (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, e in summary.items():
        seeds = e["per_seed"]
        sps = common.spread([r["sps_overall"] for r in seeds], "{:,.1f}")
        learning = common.spread([r["sps_learning"] for r in seeds])
        learning += f" ({common.spread([r['sps_learning_cpu'] for r in seeds])})"
        warm = common.spread([r["sps_warmup"] for r in seeds], "{:.0f}")
        if key == "random":
            lines.append(f"| {e['label']} | {sps} | – | – | 100 | – | {e['peak_rss']:.0f} | – | – |")
            continue
        frac = f"{100 * e['ceiling_fraction_learning']:.2f}"
        evals = " / ".join(common.spread(e["evals"][s], "{:.0f}") if s in e["evals"] else "–"
                           for s in checkpoints)
        params = f"{e['params_active']:,.0f}"
        if e["params_active"] != e["params_total"]:
            params += f" ({e['params_total']:,.0f})"
        lines.append(f"| {e['label']} | {sps} | {learning} | {warm} | {frac} | {evals} | "
                     f"{e['peak_rss']:.0f} | {params} | {e['us_per_action']:.0f} "
                     f"({e['us_per_action_cpu']:.0f}) |")
    velora_keys = [k for k in summary if k.startswith("velora")]
    lines += ["", "velora / SB3 (below 1 is smaller, above 1 is larger):", "",
              "| ratio | " + " | ".join(summary[k]["label"] for k in velora_keys) + " |",
              "|---|" + "---|" * len(velora_keys)]
    rows = [
        ("SPS after learning_starts (paired segments, median)", "sps_learning_paired", "sps_learning"),
        ("SPS after learning_starts (ratio of totals)", "sps_learning", None),
        ("SPS overall", "sps_overall", None),
        ("SPS after learning_starts, per CPU second", "sps_learning_cpu", "sps_learning"),
        ("µs per action", "us_per_action", "us_per_action"),
        ("µs per action, CPU time", "us_per_action_cpu", "us_per_action"),
        ("peak RSS (getrusage)", "peak_rss", "peak_rss"),
        ("peak RSS (VmHWM)", "vmhwm", None),
        ("parameters (trainable: weights on a synapse, biases)", "params_active", "params_total"),
        ("floats stored (dense weights, zeros off the wiring included)", "params_total", None),
    ]
    for title, metric, target_key in rows:
        cells = []
        for k in velora_keys:
            value = summary[k]["ratios"].get(metric)
            replay = "sequence" if k.endswith("sequence") else "stored_state"
            target = TARGETS[replay].get(target_key) if target_key and args.peer == "sac" else None
            if value is None:
                cells.append("–")
            elif target:
                cells.append(check(value, target))
            else:
                cells.append(f"{value:.3f}×" if value < 0.1 else f"{value:.2f}×")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if "sbx" in summary:
        sbx_rows = [("SPS after learning_starts (paired segments, median)", "sps_learning_paired"),
                    ("SPS after learning_starts (ratio of totals)", "sps_learning"),
                    ("SPS after learning_starts, per CPU second", "sps_learning_cpu"),
                    ("SPS overall", "sps_overall"), ("µs per action", "us_per_action"),
                    ("peak RSS (getrusage)", "peak_rss")]
        sbx = summary["sbx"]["ratios"]
        lines += ["", "velora / SBX SAC (JAX), same run (goals: stored-state above 1, sequence at "
                  "least 1, in SPS after learning_starts):", "",
                  "| ratio | " + " | ".join(summary[k]["label"] for k in velora_keys)
                  + " | SBX SAC / SB3 SAC |", "|---|" + "---|" * (len(velora_keys) + 1)]
        for title, metric in sbx_rows:
            cells = [summary[k]["ratios_sbx"].get(metric) for k in velora_keys] + [sbx.get(metric)]
            lines.append(f"| {title} | " + " | ".join("–" if v is None else f"{v:.2f}×"
                                                       for v in cells) + " |")
    lines += ["", "SPS as a share of the ceiling (random policy, no learning, "
              f"{summary['random']['sps_overall']:,.0f} SPS): "
              + "; ".join(f"{e['label']} {100 * e['ceiling_fraction_overall']:.2f} % overall"
                          for k, e in summary.items() if k != "random") + "."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--peer", choices=("sac", "td3"), default="sac",
                   help="sac: SB3 SAC vs LiquidSAC; td3: SB3 TD3 vs LiquidDDPG")
    p.add_argument("--replay", choices=("stored_state", "sequence"), default="stored_state",
                   help="sequence: also train a sequence-mode velora agent next to the stored_state one")
    p.add_argument("--steps", type=int, default=None, help="env steps per system (default 5000)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="(default: 0)")
    p.add_argument("--learning-starts", type=int, default=None, help="(default 1000)")
    p.add_argument("--eval-every", type=int, default=None, help="(default 1000)")
    p.add_argument("--eval-episodes", type=int, default=None,
                   help="fixed evaluation episodes, reset seeds 0..n-1 (default 100)")
    p.add_argument("--segment", type=int, default=None,
                   help="env steps each system runs before the next takes its turn (default 500)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--buffer-size", type=int, default=1_000_000)
    p.add_argument("--lr", type=float, default=1e-3, help="SB3's learning rate")
    p.add_argument("--noise-std", type=float, default=0.1,
                   help="Gaussian action noise of both TD3 and LiquidDDPG, in the [-1, 1] action scale")
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--seq-batch", type=int, default=None,
                   help="windows per sequence-mode update (default: --batch-size // --seq-len, "
                        "velora's default: 16 windows of 16 steps train on 256 transitions per "
                        "update, as SB3 does with batch 256)")
    p.add_argument("--burn-in", type=int, default=8)
    p.add_argument("--seq-gradient-steps", type=int, default=1,
                   help="updates per env step of the sequence-mode agent (1: the same work as SB3; "
                        "2: the sequence recipe's default)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in every process")
    p.add_argument("--velora-config", type=Path, default=None,
                   help="a `velora train --config` file whose hyperparameters velora's agents "
                   "start from (e.g. configs/mujoco/halfcheetah.toml); the settings shared with "
                   "the peer (learning_starts, batch, replay capacity) still come from this "
                   "command")
    p.add_argument("--sbx", action="store_true",
                   help="also train SBX SAC (sbx-rl, JAX; the bench extra), XLA on one core")
    p.add_argument("--quick", action="store_true",
                   help="1 seed, 1,500 steps, learning_starts 500, eval every 500 steps over 3 episodes")
    p.add_argument("--json", type=Path, default=None, help="write the full results here")
    p.add_argument("--section", default=None,
                   help="marker name in docs/benchmarks.md (default: compare, or compare-quick)")
    p.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    p.add_argument("--title", default=None,
                   help="the section's first line (default: '## velora vs Stable-Baselines3', "
                        "with ' (quick run)' for --quick)")
    args = p.parse_args(argv)
    quick = {"steps": 1500, "seeds": [0], "learning_starts": 500, "eval_every": 500,
             "eval_episodes": 3, "segment": 500}
    full = {"steps": 5000, "seeds": [0], "learning_starts": 1000, "eval_every": 1000,
            "eval_episodes": 100, "segment": 500}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.section is None:
        args.section = "compare-quick" if args.quick else "compare"
    if args.sbx and args.peer != "sac":
        p.error("--sbx adds SBX SAC, the peer of --peer sac")
    if args.sbx:
        import importlib.util

        if importlib.util.find_spec("sbx") is None:
            p.error("--sbx needs sbx-rl: pip install -e '.[bench]'")
    if not 0 <= args.learning_starts < args.steps:
        p.error("--learning-starts must be in [0, --steps)")
    if args.seq_gradient_steps < 1:
        p.error(f"--seq-gradient-steps must be >= 1, got {args.seq_gradient_steps}")
    if args.segment < 1 or args.eval_every < 1:
        p.error("--segment and --eval-every must be >= 1")
    if args.velora_config is not None:  # checked here, before any system starts
        from velora import agents
        from velora.cli import config_hyperparameters

        cls = agents.LiquidSAC if args.peer == "sac" else agents.LiquidDDPG
        try:
            config_hyperparameters(cls, args.velora_config)
        except ValueError as err:
            p.error(f"--velora-config: {err}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    specs = system_specs(args)
    cfg = {"env": args.env, "lr": args.lr, "batch_size": args.batch_size,
           "learning_starts": args.learning_starts, "buffer_size": args.buffer_size,
           "seq_len": args.seq_len, "burn_in": args.burn_in, "threads": args.threads,
           "seq_batch": args.seq_batch, "seq_gradient_steps": args.seq_gradient_steps,
           "noise_std": args.noise_std, "velora_config": args.velora_config}
    meta: dict[str, Any] = {"command": common.command_line(), "date": common.today(),
                            "machine": common.machine_note()}
    started = time.perf_counter()
    per_seed = {}
    for seed in args.seeds:
        print(f"seed {seed}: " + ", ".join(s["label"] for s in specs), flush=True)
        per_seed[seed] = run_seed(args, cfg, specs, seed)
    meta["wall_s"] = time.perf_counter() - started
    meta["loadavg_end"] = common.machine_note()["loadavg_1m"]
    versions: dict[str, str] = {}
    for result in per_seed[args.seeds[0]].values():
        versions.update(result["versions"])
    meta["versions"] = versions
    meta["threads_reported"] = {k: r["threads"] for k, r in per_seed[args.seeds[0]].items()}
    summary = aggregate(args, specs, per_seed)
    table = markdown(args, summary, meta)
    print()
    print(table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "meta": meta, "summary": summary, "raw": per_seed}
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    if not args.no_doc:
        title = args.title or ("## velora vs Stable-Baselines3"
                               + (" (quick run)" if args.quick else ""))
        path = common.write_section(args.section, f"{title}\n\n{table}")
        print(f"\nwrote {path} section {args.section!r}")
    return summary


if __name__ == "__main__":
    main()
