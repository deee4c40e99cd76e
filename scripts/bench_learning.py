"""Learning benchmarks under velora's evaluation protocol (``velora.evaluation``).

Every row trains velora's agent **and its peers in the same script**, over several seeds, and
evaluates every trained policy deterministically on the same fixed episodes (reset seeds
0..99) at each checkpoint of the curve. Results are written as they come, one JSON line per
(system, seed, step) evaluation, to ``docs/results/<row>.jsonl`` (``<row>.threads-default.jsonl``
for runs with torch's default thread count), so a run that is cut still counts for what it
finished, and re-running the same command skips the (system, seed) runs already complete.
Each line names the commit it ran on (``"code"``, ``scripts/bench/_common.code_version``)
and the CPU model (``"cpu"``, from the thirteenth session on).

    python scripts/bench_learning.py run pendulum_sac --seeds 0 1 2 3 4 --jobs 2
    python scripts/bench_learning.py run pendulum_sac --systems velora --threads 0   # torch default
    python scripts/bench_learning.py report pendulum_sac --plot docs/img/pendulum_sac.png
    python scripts/bench_learning.py run halfcheetah_sac --seeds 0 1 2      # needs velora[mujoco]
    python scripts/bench_learning.py list

The MuJoCo rows (``MUJOCO_ROWS``: fully observed, -P and -V, DDPG vs TD3) train velora with the
files in ``configs/mujoco`` and evaluate on 20 fixed episodes; ``halfcheetah_smoke`` is a
one-seed, 10k-step smoke test of the HalfCheetah row.

``report`` prints, per system and checkpoint: the mean over all seeds x episodes with a 95 %
bootstrap interval over seeds, the interquartile mean of the per-seed means (``rliable``), the
worst single episode and the share of episodes at or above the row's bar. It needs the
``bench`` extra (``pip install -e ".[bench]"``: SB3, sb3-contrib, rliable). Run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "docs" / "results"


@dataclass(frozen=True)
class System:
    """One trainable system of a row: ``kind`` names the builder, ``kwargs`` its arguments."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    env: str | None = None  # another env id than the row's (e.g. a peer without history)
    # velora only: a ``velora train --config`` TOML file (relative to the repository) whose
    # agent hyperparameters the system starts from; ``kwargs`` win over it.
    config: str | None = None


# RL-Zoo's tuned RecurrentPPO settings for the velocity-free Pendulum (hyperparams/ppo_lstm.yml,
# PendulumNoVel-v1), used for both partially observable Pendulum rows.
RECURRENT_PPO_PENDULUM = {
    "n_envs": 4, "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10,
    "ent_coef": 0.0, "learning_rate": 1e-3, "clip_range": 0.2, "use_sde": True,
    "sde_sample_freq": 4,
}
# RL-Zoo's tuned DQN for CartPole-v1 (hyperparams/dqn.yml).
DQN_CARTPOLE = {
    "learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000, "learning_starts": 1000,
    "gamma": 0.99, "target_update_interval": 10, "train_freq": 256, "gradient_steps": 128,
    "exploration_fraction": 0.16, "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}


@dataclass(frozen=True)
class Row:
    """One benchmark row: an env, a step budget, the bar an episode must reach, the systems."""

    env: str
    steps: int
    eval_every: int
    bar: float
    systems: dict[str, System]
    note: str = ""
    eval_episodes: int | None = None  # the first N of the protocol's reset seeds; None: all
    decimals: int = 1  # of the returns in reports (POPGym's lie in [-1, 1]: 3)
    # A partially observed row's fully observed twin (e.g. "halfcheetah_sac" for
    # "halfcheetah_p_sac"): the report adds what fraction of that row's peer return each
    # system recovers at the same step.
    full_obs_row: str | None = None


# MuJoCo (the ``mujoco`` extra). velora reads the tuned-hyperparameter files of
# configs/mujoco (the values the benchmark used), SB3 runs with its defaults on the same
# observation; 20 fixed evaluation episodes of up to 1,000 steps (reset seeds 0..19) per
# checkpoint. Bars: returns of a policy that clearly runs / hops / walks at 100k steps.
MUJOCO_EVAL_EPISODES = 20


def _mujoco_row(env: str, config: str, bar: float, note: str, *, ddpg: bool = False,
                steps: int = 100_000, full_obs_row: str | None = None) -> Row:
    velora = System("velora_ddpg" if ddpg else "velora_sac", config=f"configs/mujoco/{config}")
    # SB3 TD3's defaults have no exploration noise (action_noise=None); sb3_td3_noise is the
    # control with RL Zoo's N(0, 0.1) for HalfCheetah. The goal is judged against the defaults.
    peer = {"sb3_td3": System("sb3_td3"),
            "sb3_td3_noise": System("sb3_td3", {"action_noise_std": 0.1})} if ddpg \
        else {"sb3_sac": System("sb3_sac")}
    return Row(env, steps, 10_000, bar, {"velora": velora, **peer}, note,
               eval_episodes=MUJOCO_EVAL_EPISODES, full_obs_row=full_obs_row)


def _mujoco_variants(env: str, config: str, bar: float, variants: dict[str, dict[str, Any]],
                     note: str, *, shipped: bool = False, peer: bool = False,
                     full_obs_row: str | None = None) -> Row:
    """A row of what was tried against a MuJoCo row's gap: LiquidSAC with ``configs/mujoco/``
    ``config`` and each variant's changes (name -> hyperparameters), at the MuJoCo rows' budget
    and 20 episodes; with ``shipped`` the config as it is ("velora"), with ``peer`` SB3 SAC with
    its defaults ("sb3_sac"), both ahead of the variants."""
    path = f"configs/mujoco/{config}"
    systems = {"velora": System("velora_sac", config=path)} if shipped else {}
    if peer:
        systems["sb3_sac"] = System("sb3_sac")
    systems.update({name: System("velora_sac", changes, config=path)
                    for name, changes in variants.items()})
    return Row(env, 100_000, 10_000, bar, systems, note, eval_episodes=MUJOCO_EVAL_EPISODES,
               full_obs_row=full_obs_row)


MUJOCO_ROWS: dict[str, Row] = {
    "halfcheetah_sac": _mujoco_row("HalfCheetah-v5", "halfcheetah.toml", 3000.0,
                                   "LiquidSAC stored state (configs/mujoco) vs SB3 SAC (defaults)"),
    "hopper_sac": _mujoco_row("Hopper-v5", "hopper.toml", 1000.0,
                              "LiquidSAC stored state (configs/mujoco) vs SB3 SAC (defaults)"),
    "walker2d_sac": _mujoco_row("Walker2d-v5", "walker2d.toml", 1000.0,
                                "LiquidSAC stored state (configs/mujoco) vs SB3 SAC (defaults)"),
    "halfcheetah_p_sac": _mujoco_row("velora/HalfCheetah-P-v5", "halfcheetah_p.toml", 1500.0,
                                     "positions only: LiquidSAC sequence mode vs SB3 SAC",
                                     full_obs_row="halfcheetah_sac"),
    "hopper_p_sac": _mujoco_row("velora/Hopper-P-v5", "hopper_p.toml", 500.0,
                                "positions only: LiquidSAC sequence mode vs SB3 SAC",
                                full_obs_row="hopper_sac"),
    "walker2d_p_sac": _mujoco_row("velora/Walker2d-P-v5", "walker2d_p.toml", 500.0,
                                  "positions only: LiquidSAC sequence mode vs SB3 SAC",
                                  full_obs_row="walker2d_sac"),
    "halfcheetah_v_sac": _mujoco_row("velora/HalfCheetah-V-v5", "halfcheetah_v.toml", 1500.0,
                                     "velocities only: LiquidSAC sequence mode vs SB3 SAC",
                                     full_obs_row="halfcheetah_sac"),
    "hopper_v_sac": _mujoco_row("velora/Hopper-V-v5", "hopper_v.toml", 500.0,
                                "velocities only: LiquidSAC sequence mode vs SB3 SAC",
                                full_obs_row="hopper_sac"),
    "halfcheetah_ddpg": _mujoco_row("HalfCheetah-v5", "halfcheetah.toml", 3000.0,
                                    "LiquidDDPG (configs/mujoco/halfcheetah.toml) vs SB3 TD3 "
                                    "(defaults)", ddpg=True),
}

ROWS: dict[str, Row] = {
    "pendulum_sac": Row(
        "Pendulum-v1", 10_000, 2_500, -200.0,
        {"velora": System("velora_sac"),
         "sb3_sac": System("sb3_sac", {"learning_rate": 1e-3})},
        "LiquidSAC stored state (defaults) vs SB3 SAC (lr 1e-3, other defaults)"),
    # What was tried against pendulum_sac's remaining gap (issue 15): velora's defaults with
    # one or more hyperparameters changed, 5 seeds each, at the row's 10k steps. The peer
    # figure is pendulum_sac's SB3 SAC (same script, same episodes).
    "pendulum_sac_variants": Row(
        "Pendulum-v1", 10_000, 10_000, -200.0,
        {name: System("velora_sac", kwargs) for name, kwargs in (
            ("tau_0.01", {"tau": 0.01}),
            ("target_entropy_-2", {"target_entropy": -2.0}),
            ("critic_lr_2e-3", {"critic_lr": 2e-3}),
            ("init_alpha_0.5", {"init_alpha": 0.5}),
            ("burn_in_16", {"burn_in": 16}),
            ("n_neurons_24", {"n_neurons": 24}),
            ("critic_neurons_64", {"critic_neurons": 64}),
            ("n_neurons_24+target_entropy_-2", {"n_neurons": 24, "target_entropy": -2.0}),
            ("n_neurons_24+tau_0.01", {"n_neurons": 24, "tau": 0.01}),
            ("n_neurons_24+target_entropy_-2+tau_0.01",
             {"n_neurons": 24, "target_entropy": -2.0, "tau": 0.01}))},
        "LiquidSAC stored state, the defaults with the named changes (pendulum_sac's SB3 SAC is "
        "the peer)"),
    # The variants above were chosen among on training seeds 0..4; this row re-runs the two
    # that came closest to the goal (best mean; the only worst episode above SB3's), the
    # defaults and SB3 SAC on training seeds 5..9, which chose nothing (run with --seeds 5 6 7
    # 8 9), on the same 100 evaluation episodes.
    "pendulum_sac_holdout": Row(
        "Pendulum-v1", 10_000, 10_000, -200.0,
        {"velora": System("velora_sac"),
         "sb3_sac": System("sb3_sac", {"learning_rate": 1e-3}),
         "critic_neurons_64": System("velora_sac", {"critic_neurons": 64}),
         "n_neurons_24+target_entropy_-2+tau_0.01": System(
             "velora_sac", {"n_neurons": 24, "target_entropy": -2.0, "tau": 0.01})},
        "LiquidSAC stored state (defaults), the two closest variants of pendulum_sac_variants "
        "and SB3 SAC (lr 1e-3), on training seeds 5..9 that chose nothing"),
    "pendulum_novel": Row(
        "velora/PendulumNoVel-v1", 30_000, 10_000, -200.0,
        {"velora": System("velora_sac", {"replay": "sequence"}),
         "sb3_sac": System("sb3_sac", {"learning_rate": 1e-3}),
         "sb3_recurrent_ppo": System("sb3_recurrent_ppo", RECURRENT_PPO_PENDULUM)},
        "cos θ, sin θ only: LiquidSAC sequence mode (defaults) vs memoryless SB3 SAC and "
        "RecurrentPPO (RL-Zoo settings)"),
    "pendulum_velonly": Row(
        "velora/PendulumVelOnly-v1", 40_000, 10_000, -200.0,
        {"velora": System("velora_sac", {"replay": "sequence"}),
         "sb3_sac": System("sb3_sac", {"learning_rate": 1e-3}),
         "sb3_recurrent_ppo": System("sb3_recurrent_ppo", RECURRENT_PPO_PENDULUM)},
        "θ̇ only: LiquidSAC sequence mode (defaults) vs memoryless SB3 SAC and RecurrentPPO"),
    # What was tried against pendulum_velonly's one-sided seeds (issue 15): a policy that
    # handles the starts on one side of the vertical and takes an extra swing from the other
    # side. A higher entropy target keeps the swing direction explored for longer.
    "pendulum_velonly_variants": Row(
        "velora/PendulumVelOnly-v1", 40_000, 10_000, -200.0,
        {"target_entropy_0": System("velora_sac", {"replay": "sequence", "target_entropy": 0.0})},
        "θ̇ only: LiquidSAC sequence mode, the defaults with the named change "
        "(pendulum_velonly's peers)"),
    "pendulum_ddpg": Row(
        "Pendulum-v1", 20_000, 5_000, -200.0,
        {"velora": System("velora_ddpg"),
         "sb3_td3": System("sb3_td3", {"learning_rate": 1e-3, "action_noise_std": 0.1})},
        "LiquidDDPG (defaults) vs SB3 TD3 (lr 1e-3, N(0, 0.1) action noise)"),
    "pendulum_td3": Row(
        "Pendulum-v1", 20_000, 5_000, -200.0,
        {"velora": System("velora_td3"),
         "sb3_td3": System("sb3_td3", {"learning_rate": 1e-3, "action_noise_std": 0.1})},
        "LiquidTD3 (defaults) vs SB3 TD3 (lr 1e-3, N(0, 0.1) action noise)"),
    "cartpole_sac_discrete": Row(
        "CartPole-v1", 50_000, 10_000, 475.0,
        {"velora": System("velora_sac_discrete"),
         "sb3_dqn": System("sb3_dqn", DQN_CARTPOLE)},
        "LiquidSACDiscrete (defaults) vs SB3 DQN (RL-Zoo settings)"),
    # Learning with vector envs at one update per env step (issue 19 item 3): n envs step
    # together and each vector step is followed by n updates. "velora" is pendulum_sac's own
    # system (one env); async envs run the same maths as sync ones.
    "pendulum_sac_vector": Row(
        "Pendulum-v1", 10_000, 2_500, -200.0,
        {"velora": System("velora_sac"),
         **{f"velora_envs{n}": System("velora_sac", {"num_envs": n, "gradient_steps": n})
            for n in (2, 4, 8)},
         "velora_envs4_async": System("velora_sac", {"num_envs": 4, "gradient_steps": 4,
                                                     "vectorization": "async"})},
        "LiquidSAC stored state (defaults) with num_envs 1, 2, 4, 8 and gradient_steps = "
        "num_envs (one update per env step)"),
    **MUJOCO_ROWS,
    # What was tried against hopper_sac's gap to SB3 SAC (issue 18): its configuration with one
    # change, 3 seeds, on the row's 20 episodes; hopper_sac's SB3 SAC is the peer. The "auto"
    # actor for Hopper's 3 actions is 16 neurons (6 command neurons for 6 motor neurons);
    # HalfCheetah's and Walker2d's is 32. Without normalisation: the running statistics start
    # from 10k random steps of episodes that fall within tens of steps (Hopper and Walker2d end
    # an episode on a fall, HalfCheetah never does), so later states may sit at the clip.
    "hopper_sac_variants": _mujoco_variants(
        "Hopper-v5", "hopper.toml", 1000.0,
        {"n_neurons_32": {"n_neurons": 32},
         "no_normalization": {"normalize_observations": False}},
        "LiquidSAC stored state, configs/mujoco/hopper.toml with the named change (hopper_sac's "
        "SB3 SAC is the peer)"),
    # hopper_sac_variants' 32-neuron actor was the better of two variants on seeds 0..2, the
    # seeds that chose it; this row re-runs it beside the configuration as shipped and SB3 SAC
    # on training seeds 3..5, which chose nothing (run with --seeds 3 4 5), on the same 20
    # evaluation episodes.
    "hopper_sac_holdout": _mujoco_variants(
        "Hopper-v5", "hopper.toml", 1000.0, {"n_neurons_32": {"n_neurons": 32}},
        "LiquidSAC stored state (configs/mujoco/hopper.toml as shipped and with a 32-neuron "
        "actor) vs SB3 SAC (defaults), on training seeds 3..5 that chose nothing",
        shipped=True, peer=True),
    # What was tried against walker2d_sac's gap to SB3 SAC (issue 18): its configuration with one
    # change, 3 seeds, on the row's 20 episodes; walker2d_sac's SB3 SAC is the peer. The "auto"
    # critics for Walker2d are 48 neurons (SB3 SAC's are 256x256 MLPs); the config's 10,000
    # uniform random steps before learning are 9,900 more than SB3 SAC's default 100.
    "walker2d_sac_variants": _mujoco_variants(
        "Walker2d-v5", "walker2d.toml", 1000.0,
        {"critic_neurons_128": {"critic_neurons": 128},
         "learning_starts_1000": {"learning_starts": 1000}},
        "LiquidSAC stored state, configs/mujoco/walker2d.toml with the named change "
        "(walker2d_sac's SB3 SAC is the peer)"),
    # walker2d_sac_variants' critic_neurons_128, the better of its two variants on seeds 0..2,
    # beside the configuration as shipped on training seeds 3..5, which chose nothing (run with
    # --seeds 3 4 5), on the same 20 evaluation episodes.
    "walker2d_sac_holdout": _mujoco_variants(
        "Walker2d-v5", "walker2d.toml", 1000.0, {"critic_neurons_128": {"critic_neurons": 128}},
        "LiquidSAC stored state (configs/mujoco/walker2d.toml as shipped and with critics of 128 "
        "neurons), on training seeds 3..5 that chose nothing", shipped=True),
    # The same change on walker2d_p_sac (positions only, sequence mode: its "auto" critics are
    # 64 neurons); walker2d_p_sac's SB3 SAC is the peer.
    "walker2d_p_sac_variants": _mujoco_variants(
        "velora/Walker2d-P-v5", "walker2d_p.toml", 500.0,
        {"critic_neurons_128": {"critic_neurons": 128}},
        "LiquidSAC sequence mode, configs/mujoco/walker2d_p.toml with the named change "
        "(walker2d_p_sac's SB3 SAC is the peer)", full_obs_row="walker2d_sac"),
    # A smoke figure, not a result: one seed, 10k steps, 5 episodes. velora starts learning
    # at 1,000 steps here (the config's 10,000 would leave no update in 10k), SB3 at its 100.
    "halfcheetah_smoke": Row(
        "HalfCheetah-v5", 10_000, 10_000, 3000.0,
        {"velora": System("velora_sac", {"learning_starts": 1000},
                          config="configs/mujoco/halfcheetah.toml"),
         "velora_defaults": System("velora_sac"),
         "sb3_sac": System("sb3_sac"),
         # which of the config's two options made the difference (defaults otherwise)
         "velora_normalize_only": System("velora_sac", {"normalize_observations": True}),
         "velora_auto_only": System("velora_sac", {"n_neurons": "auto", "critic_neurons": "auto"})},
        "smoke: LiquidSAC (configs/mujoco/halfcheetah.toml, learning_starts 1000), LiquidSAC "
        "(defaults; learning_starts is 1000 by default) and each of the config's two options "
        "alone vs SB3 SAC (defaults)", eval_episodes=5),
}

# POPGym's memory tasks (Morad et al., ICLR 2023), Easy level, on POPGym's return scale [-1, 1]:
# velora's liquid agent in sequence mode (defaults) against sb3-contrib's RecurrentPPO (LSTM, its
# defaults) and a memoryless floor (SB3 PPO with an MLP, its defaults). SB3 reads the observation
# flattened (one-hot for discrete parts: gymnasium's FlattenObservation) where it cannot read the
# space itself; velora encodes every space natively (velora.spaces). Budget 50k env steps per run,
# 3 seeds. The bar: a positive return, i.e. more reward than penalty in the episode.
POPGYM_TASKS = (
    "RepeatPreviousEasy", "RepeatFirstEasy", "CountRecallEasy", "AutoencodeEasy",
    "PositionOnlyCartPoleEasy", "NoisyPositionOnlyCartPoleEasy", "PositionOnlyPendulumEasy",
    "NoisyPositionOnlyPendulumEasy", "HigherLowerEasy", "MultiarmedBanditEasy", "MineSweeperEasy",
)
# Box-action tasks train LiquidSAC; the rest (Discrete / MultiDiscrete actions) LiquidSACDiscrete.
_POPGYM_BOX_ACTIONS = {"PositionOnlyPendulumEasy", "NoisyPositionOnlyPendulumEasy"}
for _task in POPGYM_TASKS:
    ROWS[f"popgym_{_task}"] = Row(
        f"popgym-{_task}-v0", 50_000, 10_000, 0.0,
        {"velora": System("velora_sac" if _task in _POPGYM_BOX_ACTIONS else "velora_sac_discrete",
                          {"replay": "sequence"}),
         "sb3_recurrent_ppo": System("sb3_recurrent_ppo", {"flatten": True}),
         "sb3_ppo": System("sb3_ppo", {"flatten": True}),
         # A control, not the peers: the same SB3 defaults given the previous action
         # and reward that velora reads by default (POPGym's own baselines append the action).
         "sb3_recurrent_ppo_history": System("sb3_recurrent_ppo",
                                             {"flatten": True, "history": "action,reward"}),
         "sb3_ppo_history": System("sb3_ppo", {"flatten": True, "history": "action,reward"})},
        "POPGym: velora sequence mode (defaults) vs RecurrentPPO (defaults) and memoryless PPO "
        "(defaults); return on POPGym's [-1, 1] scale; *_history: the peers given the previous "
        "action and reward", decimals=3)


# ---------------------------------------------------------------------------- systems
def config_kwargs(cls: type, config: str | None) -> dict[str, Any]:
    """The agent hyperparameters of a ``velora train --config`` file (its run options, such as
    ``steps``, are the row's business), checked as the command line checks them."""
    if config is None:
        return {}
    from velora.cli import config_hyperparameters

    return config_hyperparameters(cls, REPO_ROOT / config)


class VeloraSystem:
    def __init__(self, kind: str, env_id: str, seed: int, kwargs: dict[str, Any],
                 config: str | None = None) -> None:
        from velora.agents import agent_class

        cls = agent_class(kind.removeprefix("velora_"))  # velora_<algorithm> in the registry
        self.agent = cls(env_id, seed=seed, **{**config_kwargs(cls, config), **kwargs})
        self.sps = float("nan")

    def train(self, steps: int) -> None:
        self.agent.learn(steps, log_dir=False, progress_bar=False)
        self.sps = self.agent.last_sps

    def eval_env(self, env_id: str) -> Any:
        from velora.envs import make_env

        return self.agent.wrap_env(make_env(env_id))

    @property
    def policy(self) -> Any:
        return self.agent

    def params(self) -> int:
        return sum(int(p.numel()) for name, net in self.agent.networks().items()
                   if "target" not in name for p in net.parameters() if p.requires_grad)


class SB3System:
    """SB3 / sb3-contrib models, trained in chunks with ``reset_num_timesteps=False``."""

    def __init__(self, kind: str, env_id: str, seed: int, kwargs: dict[str, Any]) -> None:
        import gymnasium as gym
        import numpy as np
        import torch
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.noise import NormalActionNoise
        from stable_baselines3.common.vec_env import VecNormalize

        from velora.envs import register_env_id  # velora's ids; POPGym's when installed

        register_env_id(env_id)

        kwargs = dict(kwargs)
        self.flatten = kwargs.pop("flatten", False)
        # "action,reward": the previous action and reward appended to the observation, as
        # velora's sequence mode reads them by default (velora.envs.with_history)
        self.history = kwargs.pop("history", "")
        n_envs = kwargs.pop("n_envs", 1)
        normalize = kwargs.pop("normalize", False)
        noise_std = kwargs.pop("action_noise_std", None)
        policy_kwargs = dict(kwargs.pop("policy_kwargs", {}))
        if "activation_fn" in policy_kwargs:
            policy_kwargs["activation_fn"] = getattr(torch.nn, policy_kwargs["activation_fn"])
        env = make_vec_env(env_id, n_envs=n_envs, seed=seed, wrapper_class=self._wrap)
        self.vec_normalize: VecNormalize | None = None
        if normalize:
            env = self.vec_normalize = VecNormalize(env, gamma=kwargs.get("gamma", 0.99))
        if noise_std is not None:
            act_dim = gym.make(env_id).action_space.shape[0]
            kwargs["action_noise"] = NormalActionNoise(np.zeros(act_dim),
                                                       noise_std * np.ones(act_dim))
        if kind == "sb3_recurrent_ppo":
            from sb3_contrib import RecurrentPPO as cls
            policy = "MlpLstmPolicy"
        else:
            import stable_baselines3 as sb3

            cls = {"sb3_sac": sb3.SAC, "sb3_td3": sb3.TD3, "sb3_dqn": sb3.DQN,
                   "sb3_ppo": sb3.PPO}[kind]
            policy = "MlpPolicy"
        self.model = cls(policy, env, seed=seed, verbose=0, policy_kwargs=policy_kwargs or None,
                         **kwargs)
        self.sps = float("nan")

    def train(self, steps: int) -> None:
        start, before = time.perf_counter(), self.model.num_timesteps
        self.model.learn(steps, reset_num_timesteps=False)
        self.sps = (self.model.num_timesteps - before) / (time.perf_counter() - start)

    def _wrap(self, env: Any) -> Any:
        """The observation SB3 reads, in training and in evaluation alike."""
        import gymnasium as gym

        from velora.envs import with_history

        if self.flatten:
            env = gym.wrappers.FlattenObservation(env)
        return with_history(env, self.history)

    def eval_env(self, env_id: str) -> Any:
        import gymnasium as gym

        return self._wrap(gym.make(env_id))

    @property
    def policy(self) -> Any:
        if self.vec_normalize is None:
            return self.model
        return _NormalizedPolicy(self.model, self.vec_normalize)

    def params(self) -> int:
        return sum(int(p.numel()) for p in self.model.policy.parameters() if p.requires_grad)


class _NormalizedPolicy:
    """A model trained behind ``VecNormalize`` acts on normalised observations (frozen stats)."""

    def __init__(self, model: Any, vec_normalize: Any) -> None:
        self.model, self.vec_normalize = model, vec_normalize

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[Any, Any]:
        obs = self.vec_normalize.normalize_obs(observation)
        return self.model.predict(obs, state=state, episode_start=episode_start,
                                  deterministic=deterministic)


def build(system: System, env_id: str, seed: int, threads: int | None = None
          ) -> VeloraSystem | SB3System:
    """``threads``: torch intra-op threads for a velora agent (its ``threads`` setting);
    ``None``: velora's rule. SB3 runs with whatever torch is set to."""
    kind = system.kind
    if kind.startswith("velora_"):
        kwargs = system.kwargs if threads is None else {**system.kwargs, "threads": threads}
        return VeloraSystem(kind, env_id, seed, kwargs, system.config)
    return SB3System(kind, env_id, seed, system.kwargs)


# ---------------------------------------------------------------------------- running
def results_path(row: str, threads: int, steps: int | None = None) -> Path:
    """``docs/results/<row>[.threads-...][.steps-N].jsonl``: runs with another thread count or
    another budget than the row's (``--steps``) keep their own file."""
    suffix = "" if threads == 1 else ".threads-default" if threads == 0 else f".threads-{threads}"
    if steps is not None and steps != ROWS[row].steps:
        suffix += f".steps-{steps}"
    return RESULTS / f"{row}{suffix}.jsonl"


def budget(row_name: str, steps: int | None, eval_every: int | None) -> Row:
    """The row, with its step budget and evaluation interval replaced where given."""
    row = ROWS[row_name]
    return replace(row, steps=steps or row.steps, eval_every=eval_every or row.eval_every)


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:  # a line cut by a killed run
            continue
    return lines


def run_job(row_name: str, system_name: str, seed: int, threads: int, steps: int | None = None,
            eval_every: int | None = None) -> None:
    """Train one system on one seed, evaluating at every checkpoint; append JSON lines."""
    import torch

    from velora.evaluation import EVAL_SEEDS, episode_returns

    if threads > 0:
        torch.set_num_threads(threads)
    row = budget(row_name, steps, eval_every)
    system = row.systems[system_name]
    env_id = system.env or row.env
    # velora agents get the count as their ``threads`` setting: without it velora's own rule
    # (velora.threads) would run its small circuits on one thread whatever torch was set to.
    trained = build(system, env_id, seed, threads or torch.get_num_threads())
    code, cpu = bench_common().code_version(), bench_common().cpu_model()
    path = results_path(row_name, threads, row.steps)
    seeds = EVAL_SEEDS if row.eval_episodes is None else EVAL_SEEDS[: row.eval_episodes]
    start, steps = time.perf_counter(), 0
    while steps < row.steps:
        chunk = min(row.eval_every, row.steps - steps)
        trained.train(chunk)
        steps += chunk
        env = trained.eval_env(env_id)
        returns = episode_returns(trained.policy, env, seeds)
        env.close()
        line = {"row": row_name, "system": system_name, "seed": seed, "step": steps,
                "threads": threads or torch.get_num_threads(), "sps": round(trained.sps, 1),
                "wall_s": round(time.perf_counter() - start, 1), "params": trained.params(),
                "mean": round(float(returns.mean()), 2), "worst": round(float(returns.min()), 2),
                "returns": [round(float(r), 3) for r in returns], "code": code, "cpu": cpu}
        with path.open("a") as f:  # one short append per evaluation: a cut run keeps its lines
            f.write(json.dumps(line) + "\n")
        print(f"{row_name} {system_name} seed {seed} step {steps}: mean {line['mean']:.1f} "
              f"worst {line['worst']:.1f} ({line['wall_s']:.0f} s)", flush=True)


def run(args: argparse.Namespace) -> None:
    steps, eval_every = getattr(args, "steps", None), getattr(args, "eval_every", None)
    row = budget(args.row, steps, eval_every)
    systems = args.systems or list(row.systems)
    unknown = sorted(set(systems) - set(row.systems))
    if unknown:
        raise SystemExit(f"--systems: {unknown} not in row {args.row} ({sorted(row.systems)})")
    path = results_path(args.row, args.threads, row.steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {(line["system"], line["seed"]) for line in read_lines(path)
            if line["step"] >= row.steps}
    jobs = [(s, seed) for seed in args.seeds for s in systems if (s, seed) not in done]
    if not jobs:
        print("nothing to run: every (system, seed) is complete in", path)
    # A run cut before its last evaluation starts again from scratch: drop its partial lines
    # (rewriting the file only then, so runs of other systems of the row may run beside this).
    pending = set(jobs)
    lines = read_lines(path)
    kept = [line for line in lines if (line["system"], line["seed"]) not in pending]
    if len(kept) < len(lines):
        path.write_text("".join(json.dumps(line) + "\n" for line in kept))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads)) if args.threads > 0 \
        else dict(os.environ)
    running: list[subprocess.Popen[bytes]] = []
    for system, seed in jobs:
        while len(running) >= args.jobs:
            running = [p for p in running if p.poll() is None]
            time.sleep(0.5)
        cmd = [sys.executable, __file__, "_job", args.row, system, str(seed), str(args.threads),
               str(row.steps), str(row.eval_every)]
        running.append(subprocess.Popen(cmd, env=env))
    for p in running:
        p.wait()


# ---------------------------------------------------------------------------- reporting
def collect(row_name: str, threads: int, steps: int | None = None
            ) -> dict[str, dict[int, dict[int, list[float]]]]:
    """``{system: {step: {seed: returns}}}`` from the row's results file."""
    table: dict[str, dict[int, dict[int, list[float]]]] = {}
    for line in read_lines(results_path(row_name, threads, steps)):
        table.setdefault(line["system"], {}).setdefault(line["step"], {})[line["seed"]] = \
            line["returns"]
    return table


def report(args: argparse.Namespace) -> str:
    import numpy as np

    from velora.evaluation import summarize

    steps_arg = getattr(args, "steps", None)
    row = budget(args.row, steps_arg, None)
    table = collect(args.row, args.threads, row.steps)
    episodes = "0..99" if row.eval_episodes is None else f"0..{row.eval_episodes - 1}"
    lines = [f"**{args.row}** — {row.env}, {row.steps:,} steps; {row.note}. Each trained policy "
             f"evaluated deterministically on reset seeds {episodes}; bar {row.bar:g}.", "",
             "| system | step | seeds | mean [95 % CI] | IQM [95 % CI] | worst episode | "
             "episodes ≥ bar | per-seed means |",
             "|---|---|---|---|---|---|---|---|"]
    curves: dict[str, list[tuple[int, Any]]] = {}
    for system in row.systems:
        for step in sorted(table.get(system, {})):
            by_seed = table[system][step]
            seeds = sorted(by_seed)
            s = summarize(np.array([by_seed[k] for k in seeds]), row.bar)
            curves.setdefault(system, []).append((step, s))
            d = row.decimals
            per_seed = ", ".join(f"{m:.{max(0, d - 1)}f}" for m in s.seed_means)
            lines.append(f"| {system} | {step:,} | {len(seeds)} | {s.mean:.{d}f} "
                         f"[{s.mean_ci[0]:.{d}f}, {s.mean_ci[1]:.{d}f}] | {s.iqm:.{d}f} "
                         f"[{s.iqm_ci[0]:.{d}f}, {s.iqm_ci[1]:.{d}f}] | {s.worst:.{d}f} | "
                         f"{100 * s.share_at_bar:.0f} % | {per_seed} |")
    if row.full_obs_row is not None:
        lines += ["", *full_observation_fractions(row, table, args.threads, steps_arg)]
    text = "\n".join(lines)
    print(text)
    if args.plot:
        plot(args.row, curves, args.plot)
    return text


# The POPGym goals: velora's mean return above RecurrentPPO's on every task, and at least
# POPGYM_MEMORY_MARGIN above the memoryless floor's on the tasks that need memory; both judged on
# POPGYM_SEEDS seeds per system at the row's budget.
POPGYM_SEEDS = 3
POPGYM_MEMORY_MARGIN = 0.2
POPGYM_MEMORY_TASKS = tuple(t for t in POPGYM_TASKS if t.startswith(("Repeat", "CountRecall",
                                                                     "Autoencode"))
                            or "PositionOnly" in t)


def popgym_summary(threads: int = 1) -> str:
    """The POPGym table: per task, each system's mean return over every episode of the seeds
    complete at the row's budget, with its 95 % bootstrap interval and seed count, and whether
    the issue's two goals are met (judged only once every system has ``POPGYM_SEEDS`` seeds)."""
    systems = ("velora", "sb3_recurrent_ppo", "sb3_ppo")
    lines = ["| task | " + " | ".join(systems) + " | velora > RecurrentPPO | "
             f"velora ≥ PPO + {POPGYM_MEMORY_MARGIN:g} (memory tasks) |",
             "|---|---|---|---|---|---|"]
    counts = {"measured": 0, "above_rppo": 0, "memory": 0, "above_floor": 0}
    for task in POPGYM_TASKS:
        name = f"popgym_{task}"
        row = ROWS[name]
        finals = {s: collect(name, threads, row.steps).get(s, {}).get(row.steps, {})
                  for s in systems}
        cells, means = [], {}
        for system in systems:
            by_seed = finals[system]
            if not by_seed:
                cells.append("not run")
                continue
            s = _final_summary(by_seed, row.bar)
            means[system] = s.mean
            seeds = f"{len(by_seed)} seed" + ("s" if len(by_seed) > 1 else "")
            cells.append(f"{_mean_with_interval(s)} ({seeds})")
        complete = all(len(finals[s]) >= POPGYM_SEEDS for s in systems)
        if complete:
            counts["measured"] += 1
            lead = means["velora"] - means["sb3_recurrent_ppo"]
            counts["above_rppo"] += lead > 0
            goal_rppo = f"{'yes' if lead > 0 else '**no**'} ({lead:+.3f})"
            if task in POPGYM_MEMORY_TASKS:
                margin = means["velora"] - means["sb3_ppo"]
                counts["memory"] += 1
                counts["above_floor"] += margin >= POPGYM_MEMORY_MARGIN
                goal_floor = f"{'yes' if margin >= POPGYM_MEMORY_MARGIN else '**no**'} " \
                             f"({margin:+.3f})"
            else:
                goal_floor = "no memory goal"
        else:
            goal_rppo = goal_floor = f"pending ({POPGYM_SEEDS} seeds each)"
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {goal_rppo} | {goal_floor} |")
    lines += ["", f"{counts['measured']} of {len(POPGYM_TASKS)} tasks measured on "
              f"{POPGYM_SEEDS} seeds per system; velora above RecurrentPPO on "
              f"{counts['above_rppo']} of them, and at least {POPGYM_MEMORY_MARGIN:g} above the "
              f"memoryless floor on {counts['above_floor']} of the {counts['memory']} memory "
              "tasks among them."]
    return "\n".join(lines + popgym_history_control(threads))


def _final_summary(by_seed: dict[int, list[float]], bar: float) -> Any:
    """The evaluation protocol's summary of one system's final returns, ``{seed: returns}``."""
    import numpy as np

    from velora.evaluation import summarize

    return summarize(np.array([by_seed[k] for k in sorted(by_seed)]), bar)


def _mean_with_interval(s: Any, decimals: int = 3) -> str:
    """``mean [low, high]`` (three decimals: POPGym's scale)."""
    d = decimals
    return f"{s.mean:.{d}f} [{s.mean_ci[0]:.{d}f}, {s.mean_ci[1]:.{d}f}]"


# The MuJoCo goals on returns, judged on MUJOCO_SEEDS seeds per system at the row's
# budget: velora's mean at least the SB3 SAC peer's (fully observed rows), above it (the -P and
# -V rows), and within MUJOCO_TD3_TOLERANCE of SB3 TD3's or above (the DDPG row). The parameter
# and steps/s parts of the fully observed rows' goal come from compare.py, not from these runs.
MUJOCO_SEEDS = 3
MUJOCO_TD3_TOLERANCE = 0.10


def first_peer(row: Row) -> str:
    """The row's first SB3 system: the peer its goal is judged against (later ones are controls)."""
    return next(name for name in row.systems if name.startswith("sb3_"))


def mujoco_goal(row: Row, velora: float, peer: float) -> tuple[bool, str]:
    """Whether velora's final mean return meets the row's goal against its peer's, and the
    goal in words."""
    if "sb3_td3" in row.systems:
        floor = peer - MUJOCO_TD3_TOLERANCE * abs(peer)
        return velora >= floor, f"≥ TD3 − {MUJOCO_TD3_TOLERANCE:.0%}"
    if row.full_obs_row is not None:
        return velora > peer, "> SAC"
    return velora >= peer, "≥ SAC"


def mujoco_summary(threads: int = 1) -> str:
    """The MuJoCo table: per row of ``MUJOCO_ROWS``, velora's and its peer's mean return over
    every episode of the seeds complete at the row's budget (95 % bootstrap interval, each
    seed's mean), whether the issue's goal on returns is met (judged once both have ``MUJOCO_SEEDS``
    seeds) and, for the partially observed rows, what fraction of the fully observed row's
    SB3 SAC mean return velora reaches."""
    lines = ["| row | env | velora | peer | goal on returns | velora / SB3 SAC with the full "
             "observation |", "|---|---|---|---|---|---|"]
    measured = met = 0
    for name, row in MUJOCO_ROWS.items():
        peer_name = first_peer(row)
        table = collect(name, threads, row.steps)
        finals = {s: table.get(s, {}).get(row.steps, {}) for s in ("velora", peer_name)}
        summaries = {s: _final_summary(v, row.bar) for s, v in finals.items() if v}
        # the spread over seeds: the mean's interval and each seed's mean
        cells = [f"{_mean_with_interval(summaries[s], 1)}; seeds "
                 + " / ".join(f"{m:.0f}" for m in summaries[s].seed_means)
                 if s in summaries else "not run" for s in ("velora", peer_name)]
        cells[1] = f"{peer_name}: {cells[1]}"
        if all(len(v) >= MUJOCO_SEEDS for v in finals.values()):
            measured += 1
            ok, goal = mujoco_goal(row, summaries["velora"].mean, summaries[peer_name].mean)
            met += ok
            lead = summaries["velora"].mean - summaries[peer_name].mean
            verdict = f"{goal}: {'yes' if ok else '**no**'} ({lead:+.1f})"
        else:
            verdict = f"pending ({MUJOCO_SEEDS} seeds each)"
        fraction = "–"
        if row.full_obs_row is not None:
            full_row, _, by_step = full_observation_peer(row, threads, None)
            full = by_step.get(full_row.steps, {})
            if "velora" in summaries and len(full) >= MUJOCO_SEEDS:
                full_mean = _final_summary(full, full_row.bar).mean
                fraction = f"{percent_of(summaries['velora'].mean, full_mean)} of {full_mean:.1f}"
            else:
                fraction = "pending"
        lines.append(f"| {name} | {row.env} | {cells[0]} | {cells[1]} | {verdict} | {fraction} |")
    lines += ["", f"{measured} of {len(MUJOCO_ROWS)} rows measured on {MUJOCO_SEEDS} seeds per "
              f"system at {next(iter(MUJOCO_ROWS.values())).steps:,} steps; velora's goal on "
              f"returns met on {met} of them."]
    return "\n".join(lines)


# The control of the POPGym rows: the peers given the previous action and reward
# (``<peer>_history``), each column beside the peer it controls.
POPGYM_HISTORY_CONTROLS = ("sb3_recurrent_ppo_history", "sb3_ppo_history")
POPGYM_CONTROL_COLUMNS = ("velora", "sb3_recurrent_ppo", "sb3_recurrent_ppo_history", "sb3_ppo",
                          "sb3_ppo_history")


def popgym_history_control(threads: int = 1) -> list[str]:
    """Lines of a table, for the tasks where every control has ``POPGYM_SEEDS`` seeds at the
    row's budget: velora's mean return and each peer's without and with the previous action
    and reward (``<peer>`` -> ``<peer>_history``), with the 95 % bootstrap intervals. Empty
    where no task has the control yet."""
    rows = []
    for task in POPGYM_TASKS:
        name = f"popgym_{task}"
        row = ROWS[name]
        finals = collect(name, threads, row.steps)
        final = {s: finals.get(s, {}).get(row.steps, {}) for s in POPGYM_CONTROL_COLUMNS}
        if any(len(final[s]) < POPGYM_SEEDS for s in POPGYM_HISTORY_CONTROLS):
            continue
        cells = [_mean_with_interval(_final_summary(final[s], row.bar)) if final[s] else "not run"
                 for s in POPGYM_CONTROL_COLUMNS]
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["", "Control, the peers given the previous action and reward (history inputs "
            "`action,reward`, as velora's sequence mode reads by default):", "",
            "| task | " + " | ".join(POPGYM_CONTROL_COLUMNS) + " |",
            "|" + "---|" * (len(POPGYM_CONTROL_COLUMNS) + 1), *rows]


def percent_of(mean: float, full_mean: float) -> str:
    """``mean`` as a percentage of the full-observation ``full_mean``; a share of a return at or
    below zero (a policy no better than standing still) means nothing, so it says so instead."""
    if full_mean <= 0:
        return "n/a (full-observation mean ≤ 0)"
    return f"{100 * mean / full_mean:.0f} %"


def full_observation_peer(row: Row, threads: int, steps: int | None
                          ) -> tuple[Row, str, dict[int, dict[int, list[float]]]]:
    """A partially observed row's fully observed twin (at ``steps``, or its own budget), the
    twin's judged peer, and that peer's returns by step and seed."""
    assert row.full_obs_row is not None
    full_row = budget(row.full_obs_row, steps, None)
    peer = first_peer(full_row)
    return full_row, peer, collect(row.full_obs_row, threads, full_row.steps).get(peer, {})


def full_observation_fractions(row: Row, table: dict[str, dict[int, dict[int, list[float]]]],
                               threads: int, steps: int | None) -> list[str]:
    """Lines saying what fraction of the fully observed row's peer mean return (its first
    SB3 system, at the same step) each system of this partially observed row reaches."""
    import numpy as np

    _, peer, full = full_observation_peer(row, threads, steps)
    lines = [f"Fraction of {peer}'s mean return with the full observation "
             f"(row {row.full_obs_row}, same step, same episodes):", ""]
    for system in row.systems:
        for step in sorted(set(table.get(system, {})) & set(full)):
            mean = float(np.mean(list(table[system][step].values())))
            full_mean = float(np.mean(list(full[step].values())))
            lines.append(f"- {system} at {step:,}: {mean:.1f} / {full_mean:.1f} = "
                         f"{percent_of(mean, full_mean)}")
    if len(lines) == 2:
        lines.append(f"- no step measured in both rows yet ({row.full_obs_row} has "
                     f"{sorted(full) or 'no'} {peer} results)")
    return lines


def plot(row_name: str, curves: dict[str, list[tuple[int, Any]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row = ROWS[row_name]
    fig, ax = plt.subplots(figsize=(6, 4))
    for system, points in curves.items():
        steps = [p[0] for p in points]
        ax.plot(steps, [p[1].mean for p in points], marker="o", label=system)
        ax.fill_between(steps, [p[1].mean_ci[0] for p in points],
                        [p[1].mean_ci[1] for p in points], alpha=0.25)
    ax.axhline(row.bar, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("env steps")
    episodes = "0..99" if row.eval_episodes is None else f"0..{row.eval_episodes - 1}"
    ax.set_ylabel(f"mean return, reset seeds {episodes} (95 % CI over seeds)")
    ax.set_title(f"{row_name}\n{row.env}", fontsize="medium")
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print("wrote", out)


def bench_common() -> Any:
    """``scripts/bench/_common.py``, the benchmark scripts' shared helpers."""
    if str(REPO_ROOT / "scripts" / "bench") not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / "scripts" / "bench"))
    import _common

    return _common


SUMMARIES = {"popgym": popgym_summary, "mujoco": mujoco_summary}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_job":  # a worker process started by `run`
        row, system, seed, threads = argv[1:5]
        steps, eval_every = (int(v) for v in argv[5:7]) if len(argv) >= 7 else (None, None)
        run_job(row, system, int(seed), int(threads), steps, eval_every)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train and evaluate, appending to the row's results")
    p_run.add_argument("row", choices=sorted(ROWS))
    p_run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p_run.add_argument("--systems", nargs="+", default=None, help="default: all of the row's")
    p_run.add_argument("--jobs", type=int, default=2, help="processes at once (one `run` per row "
                       "and system at a time: a second would restart the first's jobs)")
    p_run.add_argument("--threads", type=int, default=1, help="torch threads; 0: torch's default")
    p_run.add_argument("--steps", type=int, default=None,
                       help="another step budget than the row's (e.g. 1000000 for MuJoCo's full "
                       "budget; results go to their own .steps-N file)")
    p_run.add_argument("--eval-every", type=int, default=None, help="with --steps: the interval")
    p_rep = sub.add_parser("report", help="the protocol's table (and curves) from the results")
    p_rep.add_argument("row", choices=sorted(ROWS))
    p_rep.add_argument("--threads", type=int, default=1)
    p_rep.add_argument("--steps", type=int, default=None, help="the budget a run used (--steps)")
    p_rep.add_argument("--plot", type=Path, default=None)
    p_sum = sub.add_parser("summary", help="a suite's table (POPGym, MuJoCo): every row at its "
                           "budget, and the issue's goals")
    p_sum.add_argument("suite", choices=sorted(SUMMARIES))
    p_sum.add_argument("--threads", type=int, default=1)
    p_sum.add_argument("--docs", type=Path, default=None, help="also write it between the "
                       "<!-- <suite>-summary:start/end --> markers of this file")
    sub.add_parser("list", help="the rows")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "report":
        report(args)
    elif args.command == "summary":
        text = SUMMARIES[args.suite](args.threads)
        print(text)
        if args.docs is not None:
            bench_common().replace_between_markers(args.docs, f"{args.suite}-summary", text)
    else:
        for name, row in ROWS.items():
            print(f"{name}: {row.env}, {row.steps} steps, systems {', '.join(row.systems)}")


if __name__ == "__main__":
    main()
