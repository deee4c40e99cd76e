"""How long does an agent remember? ``LiquidSACDiscrete`` on the passive T-maze
(``velora/TMazePassive-v0``, Ni et al. 2023) for corridor lengths L, with the liquid (CfC) head
and LSTM / GRU heads of (about) the same trainable parameters (``recurrent_cell``).

Each run (cell, L, seed) trains in sequence mode and, every ``--eval-every`` env steps, plays
one deterministic episode per cue value (+1 and -1; the policy and the maze are deterministic,
so that is the whole evaluation). A run is *solved* at the first evaluation where the policy
turns the right way for both cues; L is solved by a cell when all its seeds solve it within the
step budget (100k env steps). Results are written as they come, one JSON line per evaluation,
to ``docs/results/tmaze.jsonl``; re-running the same command skips the runs already finished
(solved, or unsolved after ``--steps``). After every evaluation the agent is saved with its
replay buffer under ``--checkpoints`` (``runs/tmaze/`` by default); a run cut in the middle
continues from its last evaluation when the command is run again (``learn(resume=...)``: the same
weights, buffer, RNG and env states, so the same run as an unbroken one), its lines kept under the
same run id. A cut run without a checkpoint, or one unsolved after a smaller ``--steps``, starts
again from scratch, its old lines superseded by the new run's. Long runs (L = 50, 100: hours at
~10-20 env steps/s) can so be spread over several sittings.

    python scripts/bench_tmaze.py run --lengths 10 --cells cfc lstm gru --seeds 0 1 2
    python scripts/bench_tmaze.py speed --lengths 10 25 50 100   # update cost vs window length
    python scripts/bench_tmaze.py report --docs docs/benchmarks.md
    python scripts/bench_tmaze.py probe runs/tmaze/cfc-L50-eps0.0196078-seed0.final.safetensors \
        --length 50   # how long a finished run's actor state keeps the cue

A finished run keeps its last agent (without the buffer) as ``<run>.final.safetensors``, and
its end line records that agent played, untrained, in the longer corridors of
``--zero-shot-lengths`` (25, 50, 100, 200 by default): whether what it learnt at L holds the cue
for longer. ``--redo`` trains finished runs again (to measure that for runs finished before it
was recorded); the new run supersedes the old lines. A seeded run retraces its old training on
the same CPU and torch build; another CPU may round differently and take another path.

Window: the whole episode must fit in the part of a replay window that gets gradients, or the
cue could reach the decision only through a stored (stale, gradient-free) state. Windows start
anywhere in the stream, so ``seq_len = 2 (L + 1)`` (the default here) holds at least one whole
episode, cue to turn, in every window; ``burn_in`` is 0 (the stored state covers the part
before the first episode start). Batches keep velora's 256 transitions per update
(``256 // seq_len`` windows, at least 1).

Exploration: reaching the junction in time needs L moves right in a row, so the entropy target
is set so that the policy's chance of another action is about ``1 / (L + 1)`` per step (as Ni
et al. set DQN's final epsilon to 1 / T): ``target_entropy_scale = H(eps) / log 4`` with
``H(eps)`` the entropy of ``(1 - eps, eps/3, eps/3, eps/3)``. That alone never tries the turn
at L = 25: the critics guess the untried turn low, so the policy's samples never take it (no
turn in 769 training episodes, docs/benchmarks.md). ``--exploration-epsilon auto`` (the
default) adds ``LiquidSACDiscrete``'s epsilon-greedy exploration at ``1 / (L + 1)``; ``0``
runs without it, as the first L = 10 and L = 25 runs did. The results record the value, and
the report keeps the two settings apart.

Curriculum (``--curriculum-from L0``, its own setting, reported in its own table): the run for
corridor L trains first in a corridor of L0 < L with L0's recipe (window, entropy target and
epsilon of L0, kept for the whole run), and moves to L at the next episode start after an
evaluation at L0 is solved. Every evaluation plays L (and, until the move, L0 too); the run is
solved at the first evaluation that turns the right way for both cues at L, and the step budget
counts the steps in both corridors.

    python scripts/bench_tmaze.py run --lengths 100 --curriculum-from 25 --cells cfc --seeds 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "docs" / "results" / "tmaze.jsonl"
SPEED_RESULTS = REPO_ROOT / "docs" / "results" / "tmaze_speed.jsonl"
CHECKPOINTS = REPO_ROOT / "runs" / "tmaze"  # git-ignored: cut runs' agents and buffers
CELLS = ("cfc", "lstm", "gru")
BUDGET = 100_000  # env steps within which an L must be solved (issue 17)
ZERO_SHOT_LENGTHS = (25, 50, 100, 200)  # where a finished agent is also played, untrained


def exploration_scale(corridor_length: int) -> float:
    """``target_entropy_scale`` for an off-action chance of ``1 / (L + 1)`` per step."""
    eps = 1.0 / (corridor_length + 1)
    entropy = -(1 - eps) * math.log(1 - eps) - eps * math.log(eps / 3)
    return entropy / math.log(4)


def exploration_epsilon(corridor_length: int, setting: str) -> float:
    """``--exploration-epsilon``: ``"auto"`` is ``1 / (L + 1)``; else a number in [0, 1]."""
    return 1.0 / (corridor_length + 1) if setting == "auto" else float(setting)


def epsilon_setting(text: str) -> str:
    """argparse type of ``--exploration-epsilon``: ``auto`` or a number in [0, 1]."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number in [0, 1], got {text!r}")
    return text


def epsilon_label(corridor_length: int, epsilon: float) -> str:
    """How the report names an exploration epsilon: ``0``, ``1/(L+1)`` or the number."""
    if epsilon == 0:
        return "0"
    return "1/(L+1)" if math.isclose(epsilon, 1.0 / (corridor_length + 1)) else f"{epsilon:g}"


def agent_kwargs(corridor_length: int, cell: str, seq_len: int | None, burn_in: int,
                 epsilon: float = 0.0) -> dict[str, Any]:
    """The ``LiquidSACDiscrete`` arguments of a run (sequence mode, velora's defaults else)."""
    kwargs: dict[str, Any] = {
        "replay": "sequence", "seq_len": seq_len or 2 * (corridor_length + 1),
        "burn_in": burn_in, "target_entropy_scale": exploration_scale(corridor_length),
        "buffer_size": 100_000,
    }
    if epsilon > 0:  # left out at 0, the option's default, as the first runs were made
        kwargs["exploration_epsilon"] = epsilon
    if cell != "cfc":  # the default; left out so that cfc runs need no recurrent_cell option
        kwargs["recurrent_cell"] = cell
    return kwargs


def evaluate_cues(agent: Any, corridor_length: int) -> dict[str, Any]:
    """One deterministic episode per cue: the return and whether the turn was right."""
    import gymnasium as gym

    env = agent.wrap_env(gym.make("velora/TMazePassive-v0", corridor_length=corridor_length))
    out: dict[str, Any] = {}
    for cue, name in ((1, "up"), (-1, "down")):
        obs, _ = env.reset(seed=0, options={"cue": cue})
        state, total, done, info = None, 0.0, False, {}
        while not done:
            action, state = agent.predict(obs, state=state, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        out[f"return_{name}"] = total
        out[f"success_{name}"] = bool(info.get("success", False))
    out["solved"] = out["success_up"] and out["success_down"]
    return out


def junction_counter(env: Any) -> Any:
    """``env`` (a passive T-maze) wrapped to count, over its life, the training episodes that
    reached the junction on time, turned there (ended on a goal cell) and turned the right way:
    what tells a memory failure from an exploration failure."""
    import gymnasium as gym

    class JunctionCounter(gym.Wrapper):
        # Plain int attributes, so that a checkpoint's env state carries them (velora's
        # capture_env_state saves numbers, not dicts) and a resumed run counts on.
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.episodes = self.on_time = self.turned = self.right_turns = 0

        @property
        def counts(self) -> dict[str, int]:
            return {"episodes": self.episodes, "on_time": self.on_time, "turned": self.turned,
                    "right_turns": self.right_turns}

        def step(self, action: Any) -> Any:
            obs, reward, terminated, truncated, info = self.env.step(action)
            if terminated:
                maze = self.env.unwrapped
                self.episodes += 1
                self.on_time += int(maze.x == maze.corridor_length)
                self.turned += int(maze.y != 0)
                self.right_turns += int(info["success"])
            return obs, reward, terminated, truncated, info

    return JunctionCounter(env)


def corridor_schedule(env: Any) -> Any:
    """``env`` (a passive T-maze) wrapped so that the corridor can be lengthened between
    episodes: set ``next_length`` and the next episode start gives the maze that corridor, as
    ``PassiveTMaze(next_length)`` would have it (its default penalty ``-1 / L`` included)."""
    import gymnasium as gym

    from velora.envs_memory import PassiveTMaze

    class CorridorSchedule(gym.Wrapper):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.next_length = 0  # 0: no change pending; an int, so a checkpoint carries it

        def reset(self, **kwargs: Any) -> Any:
            if self.next_length:
                # the maze's constructor derives what depends on the length (penalty, episode
                # length); the running maze keeps its RNG and position
                maze = self.env.unwrapped
                lengthened = PassiveTMaze(self.next_length, goal_reward=maze.goal_reward)
                for name in ("corridor_length", "penalty", "episode_length"):
                    setattr(maze, name, getattr(lengthened, name))
                self.next_length = 0
            return self.env.reset(**kwargs)

    return CorridorSchedule(env)


def trainable_params(agent: Any) -> dict[str, int]:
    """Trainable parameters of the actor and of one critic (weights the wiring masks out
    excluded: they are fixed zeros)."""
    from velora.models.rnn import trainable_parameters

    return {"actor_params": trainable_parameters(agent.actor),
            "critic_params": trainable_parameters(agent.critics) // agent.critics.n_members}


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


RunKey = tuple[str, int, float, int, int | None]


def run_key(line: dict[str, Any]) -> RunKey:
    """``(cell, L, exploration epsilon, seed, curriculum's first L)`` of a result line (epsilon 0
    where the line predates the option; ``None`` for a run trained at L from the start)."""
    return (line["cell"], line["L"], line.get("exploration_epsilon", 0.0), line["seed"],
            line.get("curriculum_from"))


def finished(lines: list[dict[str, Any]], cell: str, length: int, seed: int, steps: int,
             epsilon: float = 0.0, curriculum_from: int | None = None) -> bool:
    """Whether a run of (cell, L, epsilon, seed, curriculum) ended solved, or unsolved after at
    least ``steps``."""
    key = (cell, length, epsilon, seed, curriculum_from)
    return any(x.get("event") == "end" and run_key(x) == key
               and (x["solved_at"] is not None or x["steps"] >= steps) for x in lines)


def checkpoint_path(directory: Path, cell: str, length: int, seed: int, epsilon: float,
                    curriculum_from: int | None = None) -> Path:
    """Where a run's latest agent (and, beside it, ``.json`` run state and buffer) is kept."""
    start = "" if curriculum_from is None else f"-from{curriculum_from}"
    return directory / f"{cell}-L{length}{start}-eps{epsilon:.6g}-seed{seed}.safetensors"


def saved_run(path: Path, kwargs: dict[str, Any], lines: list[dict[str, Any]]
              ) -> dict[str, Any] | None:
    """The run state saved beside checkpoint ``path`` if the run can continue from it: same
    agent arguments, its lines still the newest in the results; else ``None``."""
    state_file = path.with_suffix(".json")
    if not (path.exists() and state_file.exists()):
        return None
    state = json.loads(state_file.read_text())
    if state["kwargs"] != json.loads(json.dumps(kwargs)):
        return None
    newest = [x["run"] for x in lines if run_key(x) == run_key(state["base"])]
    return state if newest and newest[-1] == state["base"]["run"] else None


def final_agent_path(path: Path) -> Path:
    """Where a finished run's last agent (no buffer) is kept, for ``probe``."""
    return path.with_name(path.stem + ".final.safetensors")


def remove_checkpoint(path: Path) -> None:
    for file in [path, path.with_suffix(".json"), *path.parent.glob(f"{path.name}.buffer-*")]:
        file.unlink(missing_ok=True)


def run_one(cell: str, length: int, seed: int, args: argparse.Namespace) -> None:
    import gymnasium as gym
    import torch

    import velora.envs  # noqa: F401  (registers velora/TMazePassive-v0)
    from velora._io import atomic_write
    from velora.agents import LiquidSACDiscrete

    torch.set_num_threads(args.threads)
    code = bench_common().code_version()  # of this sitting: a resumed run may span commits
    cpu = bench_common().cpu_model()  # and machines: steps-to-solve can move with the CPU
    first_length = args.curriculum_from or length  # the recipe is the first corridor's
    epsilon = exploration_epsilon(first_length, args.exploration_epsilon)
    kwargs = agent_kwargs(first_length, cell, args.seq_len, args.burn_in, epsilon)
    maze = gym.make("velora/TMazePassive-v0", corridor_length=first_length)
    schedule = corridor_schedule(maze) if args.curriculum_from else None
    env = junction_counter(schedule or maze)
    agent = LiquidSACDiscrete(env, seed=seed, **kwargs)
    ckpt = checkpoint_path(args.checkpoints, cell, length, seed, epsilon, args.curriculum_from)
    state = saved_run(ckpt, kwargs, read_lines(args.out))
    if state is None:
        curriculum = {"curriculum_from": args.curriculum_from} if args.curriculum_from else {}
        base = {"run": uuid.uuid4().hex[:8], "cell": cell, "L": length, "seed": seed, **kwargs,
                **curriculum, "recurrent_cell": cell, "batch_size": agent.batch_size,
                **trainable_params(agent)}
        solved_at, wall_before, resume = None, 0.0, None
    else:
        base, solved_at, wall_before = state["base"], state["solved_at"], state["wall_s"]
        resume = ckpt
        print(f"resume {cell} L={length} seed={seed} at step {state['step']} "
              f"(run {base['run']})", flush=True)
    start = time.perf_counter() - wall_before
    done = state["step"] if resume else 0  # env steps trained so far
    with args.out.open("a") as f:
        while done < args.steps:
            chunk = min(args.eval_every, args.steps - done)
            t0 = time.perf_counter()
            if resume:  # loads the agent, its buffer and the env, then trains to the total
                agent.learn(done + chunk, log_dir=False, progress_bar=False, resume=resume)
                resume = None
            else:
                agent.learn(chunk, log_dir=False, progress_bar=False)
            train_s = time.perf_counter() - t0
            done = agent.num_timesteps
            result = evaluate_cues(agent, length)
            stage: dict[str, Any] = {}
            if schedule is not None:
                # the corridor trained in until now; the move to L waits for L0 to be solved
                stage["train_length"] = env.unwrapped.corridor_length
                if stage["train_length"] != length and not schedule.next_length:
                    stage["stage_solved"] = evaluate_cues(agent, stage["train_length"])["solved"]
                    if stage["stage_solved"]:
                        schedule.next_length = length  # from the next episode start on
            line = {**base, "code": code, "cpu": cpu, "step": agent.num_timesteps,
                    **result, **stage, "sps": chunk / train_s,
                    "wall_s": time.perf_counter() - start,
                    "train_return_last20": sum(agent.episode_returns[-20:]) /
                    max(1, len(agent.episode_returns[-20:])),
                    **{f"train_{k}": v for k, v in env.counts.items()}}
            f.write(json.dumps(line) + "\n")
            f.flush()
            print(f"{cell} L={length} seed={seed} step={agent.num_timesteps} "
                  f"up={result['success_up']} down={result['success_down']} "
                  f"sps={line['sps']:.0f} train_ret={line['train_return_last20']:.2f}", flush=True)
            if result["solved"] and solved_at is None:
                solved_at = agent.num_timesteps
                if not args.continue_after_solve:
                    break
            if agent.num_timesteps < args.steps:  # the run goes on: keep where it is
                args.checkpoints.mkdir(parents=True, exist_ok=True)  # the buffer file needs it
                agent.save(ckpt, include_buffer=True)
                run_state = json.dumps({"base": base, "kwargs": kwargs, "step": done,
                                        "solved_at": solved_at, "wall_s": line["wall_s"]})
                atomic_write(ckpt.with_suffix(".json"),
                             lambda tmp, text=run_state: tmp.write_text(text))
        end_line = {**base, "code": code, "cpu": cpu, "event": "end", "solved_at": solved_at,
                    "steps": agent.num_timesteps, "wall_s": time.perf_counter() - start}
        end_line["zero_shot"] = zero_shot(agent, length, args.zero_shot_lengths)
        f.write(json.dumps(end_line) + "\n")
    agent.save(final_agent_path(ckpt))
    remove_checkpoint(ckpt)


def zero_shot(agent: Any, trained_length: int, lengths: list[int]) -> dict[str, dict[str, bool]]:
    """The trained agent played, without further training, in the corridors of ``lengths``
    longer than the one it trained in: ``{str(L): {"success_up": ..., "success_down": ...}}``
    (:func:`evaluate_cues`). Whether what it learnt holds the cue for longer than it had to."""
    out = {}
    for length in sorted(n for n in set(lengths) if n > trained_length):
        result = evaluate_cues(agent, length)
        out[str(length)] = {"success_up": result["success_up"],
                            "success_down": result["success_down"]}
    return out


def cue_retention(agent: Any, corridor_length: int) -> list[float]:
    """How far apart the actor's hidden states are after the same steps under the two cues:
    ``[|h_up(t) - h_down(t)| for t = 0 .. L]`` (Euclidean norm), playing the deterministic
    policy from the two cues' first observations with the walk of the up-cue episode. Step 0 is
    the state right after the cue; from then on both play the same inputs (the corridor looks
    the same), so the distance is what is left of the cue. 0 means the state forgot it."""
    import gymnasium as gym
    import numpy as np

    env = agent.wrap_env(gym.make("velora/TMazePassive-v0", corridor_length=corridor_length))
    # the up-cue episode last, so that the env walks on in it
    obs = {cue: env.reset(seed=0, options={"cue": cue})[0] for cue in (-1, 1)}
    states: dict[int, Any] = {-1: None, 1: None}
    distances = []
    for _ in range(corridor_length + 1):
        actions = {}
        for cue in (-1, 1):
            actions[cue], states[cue] = agent.predict(obs[cue], state=states[cue],
                                                      deterministic=True)
        distances.append(float(np.linalg.norm(states[1] - states[-1])))
        # both cues go on with the up-cue episode's observations: one walk, two memories
        step_obs, *_ = env.step(actions[1])
        obs = {-1: step_obs, 1: step_obs}
    return distances


def probe(args: argparse.Namespace) -> list[float]:
    """Print :func:`cue_retention` of a saved T-maze agent (``runs/tmaze/*.safetensors``)."""
    import torch

    import velora.envs  # noqa: F401  (registers velora/TMazePassive-v0)
    from velora.agents import LiquidSACDiscrete

    torch.set_num_threads(1)
    agent = LiquidSACDiscrete.load(args.checkpoint)
    distances = cue_retention(agent, args.length)
    for t, d in enumerate(distances):
        print(f"t={t:3d} |h_up - h_down| = {d:.3g}")
    forgotten = next((t for t, d in enumerate(distances) if d == 0.0), None)
    print("the state holds the cue to the junction" if forgotten is None
          else f"the state forgets the cue (identical under both cues) from step {forgotten}")
    for length in args.eval_lengths:  # the same agent in longer (or shorter) corridors
        result = evaluate_cues(agent, length)
        print(f"L={length}: right turn for cue up {result['success_up']}, "
              f"for cue down {result['success_down']}")
    return distances


def run(args: argparse.Namespace) -> None:
    start = args.curriculum_from
    if start is not None and not 1 <= start < min(args.lengths):
        raise SystemExit(f"--curriculum-from must be at least 1 and shorter than every corridor "
                         f"of --lengths {args.lengths}, got {start}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for length in args.lengths:
        for cell in args.cells:
            for seed in args.seeds:
                epsilon = exploration_epsilon(start or length, args.exploration_epsilon)
                if not args.redo and finished(read_lines(args.out), cell, length, seed,
                                              args.steps, epsilon, start):
                    print(f"skip {cell} L={length} seed={seed}: finished", flush=True)
                    continue
                run_one(cell, length, seed, args)


def speed(args: argparse.Namespace) -> None:
    """The cost of training against the window length, without learning runs: per (cell, L),
    fill the buffer with random play, then time ``--updates`` updates (the best of three
    rounds) and the env steps per second that cost allows at ``gradient_steps`` updates per
    step (acting excluded: an upper bound on the training SPS)."""
    import gymnasium as gym
    import torch

    import velora.envs  # noqa: F401  (registers velora/TMazePassive-v0)
    from velora.agents import LiquidSACDiscrete

    torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    code = bench_common().code_version()
    for length in args.lengths:
        for cell in args.cells:
            kwargs = agent_kwargs(length, cell, args.seq_len, args.burn_in)
            env = gym.make("velora/TMazePassive-v0", corridor_length=length)
            agent = LiquidSACDiscrete(env, seed=0, learning_starts=1 << 30, **kwargs)
            agent.learn(max(1000, 2 * (agent.seq_len + agent.burn_in)), log_dir=False,
                        progress_bar=False)
            for _ in range(2):  # warm-up
                agent.update(agent.sample_window())
            rounds = []
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(args.updates):
                    agent.update(agent.sample_window())
                rounds.append((time.perf_counter() - start) / args.updates)
            update_s = min(rounds)
            line = {"cell": cell, "L": length, "seq_len": agent.seq_len, "burn_in": agent.burn_in,
                    "batch_size": agent.batch_size, "update_ms": 1000 * update_s,
                    "gradient_steps": agent.gradient_steps,
                    "sps_bound": 1.0 / (agent.gradient_steps * update_s),
                    "transitions_per_update": agent.batch_size * (agent.seq_len + agent.burn_in),
                    **trainable_params(agent), "code": code}
            host = bench_common().machine_note()  # keys as the T-maze run lines name them
            line.update(cpu=host["cpu_model"], load_1min=host["loadavg_1m"])
            with args.out.open("a") as f:
                f.write(json.dumps(line) + "\n")
            print(f"{cell} L={length} seq_len={agent.seq_len} batch={agent.batch_size}: "
                  f"{line['update_ms']:.1f} ms/update, at most {line['sps_bound']:.0f} SPS",
                  flush=True)


def latest_runs(lines: list[dict[str, Any]]) -> dict[RunKey, list[dict[str, Any]]]:
    """The lines of the newest run of every (cell, L, epsilon, seed, curriculum); older,
    superseded runs dropped. A step evaluated twice (a run cut after writing its line but before
    saving its checkpoint retrains that stretch when resumed) keeps its newer line."""
    newest: dict[RunKey, str] = {}
    for x in lines:
        newest[run_key(x)] = x["run"]
    kept: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    for x in lines:
        if x["run"] == newest[run_key(x)]:
            kept[(x["run"], x.get("step"), x.get("event"))] = x
    runs: dict[RunKey, list[dict[str, Any]]] = {}
    for x in sorted(kept.values(), key=lambda x: ("event" in x, x.get("step", 0))):
        runs.setdefault(run_key(x), []).append(x)
    return runs


def value_span(lines: list[dict[str, Any]], key: str) -> str:
    """``key``'s value over ``lines``: ``"v"`` if one, ``"min–max"`` if they differ (the liquid
    wiring is drawn per seed, and the LSTM / GRU size is matched to it, so sizes vary)."""
    values = sorted({x[key] for x in lines})
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def zero_shot_table(runs: dict[RunKey, list[dict[str, Any]]]) -> list[str]:
    """Rows of the zero-shot table: per cell, trained L and exploration setting, how many of the
    seeds that solved L also turn the right way for both cues in each longer corridor, untrained
    (:func:`zero_shot`, recorded in the runs' end lines). Solved runs finished before the
    measurement existed are counted apart, as not measured."""
    measured: dict[tuple[str, int, float], dict[int, dict[str, Any]]] = {}
    unmeasured: dict[tuple[str, int, float], list[int]] = {}
    for (cell, length, epsilon, seed, curriculum_from), lines in runs.items():
        if curriculum_from is not None:
            continue  # trained in two corridors: the curriculum table has them
        end = next((x for x in lines if x.get("event") == "end"), None)
        if end is None or end.get("solved_at") is None:
            continue  # only an agent that solved its own corridor is asked about longer ones
        if "zero_shot" in end:
            measured.setdefault((cell, length, epsilon), {})[seed] = end["zero_shot"]
        else:
            unmeasured.setdefault((cell, length, epsilon), []).append(seed)
    if not measured:
        return []
    settings = sorted(set(measured) | set(unmeasured),
                      key=lambda k: (CELLS.index(k[0]), k[1], k[2]))
    lengths = sorted({int(n) for seeds in measured.values() for r in seeds.values() for n in r})
    rows = ["", "Zero-shot: solved agents played, without further training, in longer corridors "
            "(seeds turning the right way for both cues / seeds solved at L and measured)", "",
            "| cell | trained at L | exploration epsilon | "
            + " | ".join(f"at L = {n}" for n in lengths) + " | solved, not measured |",
            "|---|---|---|" + "---|" * len(lengths) + "---|"]
    for cell, length, epsilon in settings:
        seeds = measured.get((cell, length, epsilon), {})
        texts = []
        for n in lengths:
            asked = {s: r[str(n)] for s, r in seeds.items() if str(n) in r}
            right = sorted(s for s, r in asked.items() if r["success_up"] and r["success_down"])
            texts.append(f"{len(right)}/{len(asked)}" + (
                f" (s{', s'.join(map(str, right))})" if right else "") if asked else "—")
        missing = sorted(unmeasured.get((cell, length, epsilon), []))
        cells = [cell, str(length), epsilon_label(length, epsilon), *texts,
                 ", ".join(f"s{s}" for s in missing) or "—"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def seed_results(lines: dict[int, list[dict[str, Any]]]) -> tuple[dict[int, int], list[str]]:
    """Per seed of one setting (its runs' lines): the step of the first solved evaluation, and
    the table's text for the seed (``s0: 20000``, ``s1: no (100000)``, ``(cut at ...)``)."""
    solved_at, texts = {}, []
    for s, run_lines in sorted(lines.items()):
        evals = [x for x in run_lines if "event" not in x]
        ended = any(x.get("event") == "end" for x in run_lines)
        first = next((x["step"] for x in evals if x["solved"]), None)
        if first is not None:
            solved_at[s] = first
        last = evals[-1]["step"] if evals else 0
        status = "" if ended else f" (cut at {last})"
        if ended and first is None and last < BUDGET:
            status = f" (run with a {last}-step budget, not {BUDGET})"
        texts.append(f"s{s}: {solved_at.get(s, f'no ({last})')}{status}")
    return solved_at, texts


def mean_sps(lines: dict[int, list[dict[str, Any]]]) -> str:
    sps = [x["sps"] for run_lines in lines.values() for x in run_lines if "event" not in x]
    return f"{(sum(sps) / len(sps)) if sps else float('nan'):.0f}"


def curriculum_table(runs: dict[RunKey, list[dict[str, Any]]]) -> list[str]:
    """Rows of the curriculum table: per cell, L and first corridor L0, the seeds that solved L
    within the budget (steps in both corridors counted) and the step each moved from L0 to L."""
    settings = sorted({(k[0], k[1], k[4], k[2]) for k in runs if k[4] is not None},
                      key=lambda k: (CELLS.index(k[0]), k[1], k[2], k[3]))
    if not settings:
        return []
    rows = ["", "Curriculum: trained in a corridor of L0 (with L0's window and exploration) until "
            "L0 is solved, then in L; evaluated at L; steps in both corridors counted", "",
            "| cell | L | first L0 | exploration epsilon | seq_len | batch | seeds solved | "
            "steps to solve L (per seed) | moved to L at (per seed) | SPS |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    longest: dict[tuple[str, int, str], int | None] = {}
    for cell, length, first, epsilon in settings:
        lines = {k[3]: v for k, v in runs.items() if (k[0], k[1], k[4], k[2]) ==
                 (cell, length, first, epsilon)}
        solved_at, texts = seed_results(lines)
        moved = []
        for s, run_lines in sorted(lines.items()):
            step = next((x["step"] for x in run_lines if x.get("stage_solved")), None)
            solved_before = s in solved_at and (step is None or solved_at[s] <= step)
            moved.append(f"s{s}: " + ("— (L solved with L0)" if solved_before
                                      else str(step) if step is not None else "never"))
        sample = next(iter(lines.values()))[0]
        label = epsilon_label(first, epsilon).replace("L", "L0")  # the first corridor's
        longest.setdefault((cell, first, label), None)
        if len(lines) >= 3 and len(solved_at) == len(lines):
            best = longest[(cell, first, label)]
            longest[(cell, first, label)] = length if best is None else max(best, length)
        rows.append(f"| {cell} | {length} | {first} | {label} | {sample['seq_len']} | "
                    f"{sample['batch_size']} | {len(solved_at)}/{len(lines)} | "
                    f"{'; '.join(texts)} | {'; '.join(moved)} | {mean_sps(lines)} |")
    rows.append("")
    for (cell, first, label), length in longest.items():
        rows.append(f"longest L solved on every one of >= 3 seeds with the curriculum from L0 = "
                    f"{first}, {cell}, exploration epsilon {label}: "
                    f"{'none' if length is None else length}")
    return rows


def report(args: argparse.Namespace) -> str:
    """The memory-length table: per cell and L, the seeds solved and the steps to solve, the
    window, parameters and training speed; then the longest L every seed solved per cell; the
    zero-shot and curriculum tables; the update cost per window."""
    runs = latest_runs(read_lines(args.out))
    rows = ["| cell | L | exploration epsilon | seq_len | burn_in | batch | params (actor / "
            "critic) | seeds solved | steps to solve (per seed) | SPS |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    # the longest L every one of >= 3 seeds solved, per cell and exploration setting
    longest: dict[tuple[str, str], int | None] = {}
    for cell in CELLS:
        settings = sorted({key[1:3] for key in runs if key[0] == cell and key[4] is None})
        for length, epsilon in settings:
            label = epsilon_label(length, epsilon)
            longest.setdefault((cell, label), None)
            lines = {k[3]: v for k, v in runs.items() if k[4] is None
                     and k[:3] == (cell, length, epsilon)}
            solved_at, texts = seed_results(lines)
            firsts = [run_lines[0] for run_lines in lines.values()]
            sample = firsts[0]
            all_solved = len(lines) >= 3 and len(solved_at) == len(lines)
            best = longest[(cell, label)]
            if all_solved and (best is None or length > best):
                longest[(cell, label)] = length
            rows.append(
                f"| {cell} | {length} | {label} | {sample['seq_len']} | {sample['burn_in']} | "
                f"{sample['batch_size']} | {value_span(firsts, 'actor_params')} / "
                f"{value_span(firsts, 'critic_params')} | "
                f"{len(solved_at)}/{len(lines)} | {'; '.join(texts)} | {mean_sps(lines)} |")
    if longest:
        rows.append("")
    for (cell, label), length in longest.items():
        text = "none" if length is None else str(length)
        rows.append(f"longest L solved on every one of >= 3 seeds, {cell}, exploration epsilon "
                    f"{label}: {text}")
    rows += zero_shot_table(runs)
    rows += curriculum_table(runs)
    speed_path = getattr(args, "speed", None)
    speed_lines = read_lines(speed_path) if speed_path is not None else []
    if speed_lines:
        newest = {(x["cell"], x["L"], x["seq_len"], x["burn_in"]): x for x in speed_lines}
        rows += ["", "| cell | L | seq_len | burn_in | batch | ms / update | SPS bound |",
                 "|---|---|---|---|---|---|---|"]
        for (cell, length, seq_len, burn_in), x in sorted(
                newest.items(), key=lambda item: (CELLS.index(item[0][0]), item[0][1:])):
            rows.append(f"| {cell} | {length} | {seq_len} | {burn_in} | {x['batch_size']} | "
                        f"{x['update_ms']:.1f} | {x['sps_bound']:.0f} |")
    table = "\n".join(rows)
    print(table)
    docs = getattr(args, "docs", None)
    if docs is not None:
        bench_common().replace_between_markers(docs, "tmaze", table)
    return table


def bench_common() -> Any:
    """``scripts/bench/_common.py``, the benchmark scripts' shared helpers."""
    if str(REPO_ROOT / "scripts" / "bench") not in sys.path:
        sys.path.insert(0, str(REPO_ROOT / "scripts" / "bench"))
    import _common

    return _common


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="train and evaluate, appending JSON lines")
    run_parser.add_argument("--lengths", type=int, nargs="+", default=[10, 25, 50, 100])
    run_parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    run_parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run_parser.add_argument("--steps", type=int, default=BUDGET)
    run_parser.add_argument("--eval-every", type=int, default=2_000)
    run_parser.add_argument("--seq-len", type=int, default=None,
                            help="default 2 * (L + 1): a whole episode in every window")
    run_parser.add_argument("--burn-in", type=int, default=0)
    run_parser.add_argument("--threads", type=int, default=1)
    run_parser.add_argument("--continue-after-solve", action="store_true")
    run_parser.add_argument("--zero-shot-lengths", type=int, nargs="*",
                            default=list(ZERO_SHOT_LENGTHS),
                            help="corridor lengths, longer than the trained one, to play the "
                                 "finished agent in without training (recorded in its end line)")
    run_parser.add_argument("--redo", action="store_true",
                            help="train finished runs again, as new runs that supersede the old "
                                 "lines (a seeded run retraces its old training exactly on the same "
                                 "CPU and torch build)")
    run_parser.add_argument("--exploration-epsilon", default="auto", type=epsilon_setting,
                            help="LiquidSACDiscrete's exploration_epsilon: 'auto' is 1/(L+1), "
                                 "0 turns it off")
    run_parser.add_argument("--curriculum-from", type=int, default=None, metavar="L0",
                            help="train in a corridor of L0 (with L0's recipe) until it is "
                                 "solved, then in L; the budget counts both")
    run_parser.add_argument("--out", type=Path, default=RESULTS)
    run_parser.add_argument("--checkpoints", type=Path, default=CHECKPOINTS,
                            help="where cut runs are kept to continue (default runs/tmaze)")
    speed_parser = sub.add_parser("speed", help="update cost against the window length")
    speed_parser.add_argument("--lengths", type=int, nargs="+", default=[10, 25, 50, 100])
    speed_parser.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
    speed_parser.add_argument("--seq-len", type=int, default=None)
    speed_parser.add_argument("--burn-in", type=int, default=0)
    speed_parser.add_argument("--updates", type=int, default=10)
    speed_parser.add_argument("--threads", type=int, default=1)
    speed_parser.add_argument("--out", type=Path, default=SPEED_RESULTS)
    probe_parser = sub.add_parser("probe", help="how long a saved agent's state keeps the cue")
    probe_parser.add_argument("checkpoint", type=Path)
    probe_parser.add_argument("--length", type=int, required=True, help="corridor length L")
    probe_parser.add_argument("--eval-lengths", type=int, nargs="*", default=[],
                              help="also play both cues in corridors of these lengths")
    report_parser = sub.add_parser("report", help="print the memory-length table")
    report_parser.add_argument("--out", type=Path, default=RESULTS)
    report_parser.add_argument("--speed", type=Path, default=SPEED_RESULTS)
    report_parser.add_argument("--docs", type=Path, default=None,
                               help="also write the tables between the tmaze markers of this "
                                    "file (docs/benchmarks.md)")
    args = parser.parse_args(argv)
    if args.command in ("run", "speed"):
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
        (run if args.command == "run" else speed)(args)
    elif args.command == "probe":
        return probe(args)
    else:
        report(args)
    return None


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    main()
