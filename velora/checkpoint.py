"""Checkpoints: an agent's whole run state in one file, and the checks made before loading.

:func:`save_agent` / :func:`restore_agent` write and read what an agent is (networks,
optimisers, counters, RNG states, the loop's observation and hidden states, optionally the
replay buffer); :func:`check_checkpoint_sizes` vets a header before anything is built from it.

The file: tensors in safetensors, everything else as JSON in its header.

A checkpoint is ONE ``.safetensors`` file, so a save is a single atomic rename: the data goes
to a temporary file in the same folder, is flushed to disk, then replaces the target. A crash
at any moment leaves either the old file or the new one, never a half-written one. Loading
parses only tensors and JSON — nothing in the file can run code.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from velora._io import atomic_write
from velora.buffers import ReplayBuffer
from velora.envs import capture_env_state, restore_env_state
from velora.spaces import describe_action_space, describe_space

FORMAT = "velora-checkpoint"
VERSION = 1
METADATA_KEY = "velora"


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor],
                    metadata: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-able ``metadata`` to ``path`` atomically."""
    header = {"format": FORMAT, "version": VERSION, **metadata}
    blob = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    text = json.dumps(header)
    return atomic_write(Path(path), lambda tmp: save_file(blob, str(tmp),
                                                          metadata={METADATA_KEY: text}))


def _read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header of ``path`` (tensor entries and ``__metadata__``), read
    without touching the tensor data; ``ValueError`` if it is not one."""
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if size <= 0 or size > 100_000_000 or size + 8 > path.stat().st_size:
                raise ValueError("bad header length")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (ValueError, UnicodeDecodeError) as err:
        raise _not_a_checkpoint(path, err) from err
    return header


def _not_a_checkpoint(path: Path, err: Exception) -> ValueError:
    return ValueError(f"{str(path)!r} is not a velora checkpoint (a safetensors file with a "
                      f"velora header): it may be truncated, corrupted or of another "
                      f"format ({err})")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON header of a velora checkpoint, validated; ``ValueError`` if it is not one."""
    path = Path(path)
    header = _read_header(path)
    try:
        text = header["__metadata__"][METADATA_KEY]
        meta = json.loads(text)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise _not_a_checkpoint(path, err) from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a velora checkpoint (format "
                         f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint {str(path)!r} has format version {meta.get('version')!r}; "
                         f"this velora reads version {VERSION}")
    return meta


def read_tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of a checkpoint, from its header alone: what the file holds
    can be checked before anything is loaded or built."""
    path = Path(path)
    shapes = {}
    for name, entry in _read_header(path).items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise _not_a_checkpoint(path, ValueError(f"tensor {name!r} has no valid shape"))
        shapes[name] = tuple(shape)
    return shapes


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(tensors, metadata)``."""
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"checkpoint {str(path)!r} is truncated or corrupted: {err}") from err
    return tensors, meta


# ------------------------------------------------------------------ header checks
# Sane upper bounds for sizes read from a checkpoint's header, far above anything velora
# trains (its benchmarks use circuits of at most 64 neurons and a few envs): an edited or
# corrupted header must fail with a message, not make the loader allocate until it is killed.
MAX_CHECKPOINT_SIZES = {"neurons": 1 << 12, "num_envs": 1 << 16, "buffer_size": 1 << 32,
                        "seq_len": 1 << 20, "observation_size": 1 << 24, "threads": 1 << 10}
# Which circuit-size field of the config each saved network's neuron count must equal.
_NEURON_FIELDS = (("actor", "n_neurons"), ("critic", "critic_neurons"))


def check_checkpoint_sizes(path: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Check every size in a checkpoint's header against the tensors it stores and against
    :data:`MAX_CHECKPOINT_SIZES`, reading only the file's header: ``ValueError`` naming the
    field, its value and what was expected. Call it before building anything from the header.
    """
    meta = read_metadata(path) if meta is None else meta
    shapes = read_tensor_shapes(path)

    def fail(field: str, value: Any, expected: str) -> ValueError:
        return ValueError(f"checkpoint {str(path)!r}: header field {field} is {value!r}, but "
                          f"{expected}")

    def size(field: str, value: Any, limit: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
            raise fail(field, value, f"expected an integer in [1, {limit}]")
        return value

    config = meta.get("config")
    if not isinstance(config, dict):
        raise fail("'config'", config, "expected a JSON object of hyperparameters")
    networks: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, shape in shapes.items():
        kind, _, rest = key.partition("/")
        if kind == "net":
            name, _, param = rest.partition("/")
            networks.setdefault(name, {})[param] = shape
    # A network's circuit: inter neurons (rows of the inter weight) + command neurons (columns
    # of the recurrent weight); LiquidNCPNetwork and LiquidNCPEnsemble ((members, ...)) alike.
    circuits: dict[str, tuple[int, int, int]] = {}  # name -> (inter, command, in_features)
    for name, params in networks.items():
        inter = params.get("inter.weight") or params.get("inter_weight")
        recurrent = params.get("command.recurrent_weight") or params.get("recurrent_weight")
        if inter and recurrent and len(inter) >= 2:
            circuits[name] = (inter[-2], recurrent[-1], inter[-1])
    for prefix, field in _NEURON_FIELDS:
        if field not in config:
            continue
        value = size(f"config.{field}", config[field], MAX_CHECKPOINT_SIZES["neurons"])
        # (a subclass's network of another kind has only the limit to meet)
        saved = {name: c for name, c in circuits.items() if name.startswith(prefix)}
        for name, (inter, command, _) in saved.items():
            if inter + command != value:
                raise fail(f"config.{field}", value, f"the stored network {name!r} has "
                           f"{inter + command} neurons ({inter} inter + {command} command)")
    observation_shape = meta.get("observation_shape")
    obs_size = 1
    for d in observation_shape if isinstance(observation_shape, list) else [None]:
        obs_size *= d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else 0
        if not 0 < obs_size <= MAX_CHECKPOINT_SIZES["observation_size"]:
            raise fail("observation_shape", observation_shape, f"expected a list of positive "
                       f"sizes, {MAX_CHECKPOINT_SIZES['observation_size']} values in all at most")
    if "actor" in circuits and circuits["actor"][2] != obs_size:
        raise fail("observation_shape", observation_shape, f"the stored actor reads "
                   f"{circuits['actor'][2]} inputs")
    hidden_sizes = meta.get("hidden_sizes")
    if not isinstance(hidden_sizes, dict):
        raise fail("hidden_sizes", hidden_sizes, "expected a JSON object of state sizes")
    for head, value in hidden_sizes.items():
        value = size(f"hidden_sizes.{head}", value, MAX_CHECKPOINT_SIZES["neurons"])
        stored = shapes.get(f"loop/hidden/{head}")
        if stored is not None and stored[-1:] != (value,):
            raise fail(f"hidden_sizes.{head}", value,
                       f"the stored state 'loop/hidden/{head}' has shape {list(stored)}")
    if config.get("threads") is not None:  # torch would start that many threads in learn
        size("config.threads", config["threads"], MAX_CHECKPOINT_SIZES["threads"])
    if "num_envs" in config:  # copies of an env id to make (a vector env passed in is 1)
        size("config.num_envs", config["num_envs"], MAX_CHECKPOINT_SIZES["num_envs"])
    if "buffer_size" in config:
        buffer_size = size("config.buffer_size", config["buffer_size"],
                           MAX_CHECKPOINT_SIZES["buffer_size"])
        if config.get("batch_size") is not None:
            size("config.batch_size", config["batch_size"], buffer_size)
    for field in ("seq_len", "burn_in"):
        if config.get(field):  # burn_in may be 0
            size(f"config.{field}", config[field], MAX_CHECKPOINT_SIZES["seq_len"])


# ------------------------------------------------------------------ an agent's run state
def save_agent(agent: Any, path: str | Path, *, include_buffer: bool = False) -> Path:
    """Write ``agent`` (a :class:`~velora.agents.OffPolicyAgent`) to one ``.safetensors`` file,
    atomically (temp file, then rename).

    Saved: every network (wiring masks included), optimiser states, the entropy
    coefficient, step/update/episode counters, RNG states (torch, numpy, the env's where
    it can be captured), the loop's current observation and hidden states, and the
    configuration. With ``include_buffer`` the replay buffer goes to
    ``<path>.buffer-<step>.npz`` (also atomic), which ``agent.learn(..., resume=)`` needs for an
    exact continuation. Nothing is pickled; loading cannot run code.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in agent.networks().items():
        for key, value in module.state_dict().items():
            tensors[f"net/{name}/{key}"] = value
    optim_meta = {}
    for name, optimizer in agent.optimizers().items():
        state = optimizer.state_dict()
        optim_meta[name] = state["param_groups"]
        for index, slots in state["state"].items():
            for key, value in slots.items():
                tensors[f"optim/{name}/{index}/{key}"] = torch.as_tensor(value)
    for key, value in agent.extra_state().items():
        tensors[f"extra/{key}"] = value
    tensors["rng/torch"] = torch.get_rng_state()
    if agent._last_obs is not None and agent._last_hidden is not None:
        tensors["loop/obs"] = torch.as_tensor(np.asarray(agent._last_obs, dtype=np.float64))
        for key, value in agent._last_hidden.items():
            tensors[f"loop/hidden/{key}"] = value
    tensors["loop/episode_return"] = torch.as_tensor(agent._episode_return)
    tensors["loop/episode_length"] = torch.as_tensor(agent._episode_length)

    buffer_file = None
    if include_buffer and agent.buffer is not None:
        # The buffer file is named by step so that the checkpoint keeps pointing at the
        # buffer it was saved with even if a crash lands between the two writes.
        buffer_file = f"{path.name}.buffer-{agent.num_timesteps}.npz"
        agent.buffer.save(path.parent / buffer_file)
    meta = {
        "agent": type(agent).__name__,
        "algorithm": agent.algorithm,
        "config": agent.config,
        "env_id": agent.env_id,
        "observation_shape": list(agent.observation_space.shape),
        "observation_space": describe_space(agent.env_observation_space),
        "observation_space_repr": str(agent.env_observation_space),
        "action": describe_action_space(agent.action_space),
        "hidden_sizes": agent.hidden_sizes,
        "counters": {"num_timesteps": agent.num_timesteps, "num_updates": agent.num_updates,
                     "num_episodes": agent.num_episodes},
        "episode_returns": agent.episode_returns,
        "numpy_rng": agent.rng.bit_generator.state,
        "optimizers": optim_meta,
        "env_state": capture_env_state(agent.env) if agent._last_obs is not None else None,
        "buffer_file": buffer_file,
        "log_dir": str(agent.log_dir) if getattr(agent, "log_dir", None) else None,
    }
    meta["extra_json"] = agent.extra_json_state()
    save_checkpoint(path, tensors, meta)
    for old in path.parent.glob(f"{path.name}.buffer-*.npz"):  # superseded buffers
        if old.name != buffer_file:
            old.unlink(missing_ok=True)
    return path


def restore_agent(agent: Any, path: str | Path, *, training: bool) -> None:
    """Make ``agent`` take over the networks (and with ``training``, the whole run state: RNGs,
    counters, replay buffer, the env's state, the loop's observation and hidden states) saved
    in ``path`` by :func:`save_agent`. ``ValueError`` if the checkpoint does not fit the agent."""
    tensors, meta = load_checkpoint(path)
    if meta["agent"] != type(agent).__name__:
        raise ValueError(f"checkpoint {str(path)!r} holds a {meta['agent']}, not a "
                         f"{type(agent).__name__}")
    # Encoded (non-Box) observation spaces must match exactly; two Boxes go to the shape
    # check below. Older checkpoints have no "observation_space".
    saved_space, space = meta.get("observation_space"), describe_space(agent.env_observation_space)
    if saved_space is not None and saved_space != space and \
            (saved_space.get("type"), space["type"]) != ("Box", "Box"):
        raise ValueError(
            f"checkpoint {str(path)!r} was trained on observation space "
            f"{meta.get('observation_space_repr', saved_space)}, but this env observes "
            f"{agent.env_observation_space}")
    if list(meta["observation_shape"]) != list(agent.observation_space.shape) or \
            meta["action"] != describe_action_space(agent.action_space):
        raise ValueError(
            f"checkpoint {str(path)!r} was trained on observations {meta['observation_shape']} "
            f"and actions {meta['action']}, but this env has observations "
            f"{list(agent.observation_space.shape)} and actions "
            f"{describe_action_space(agent.action_space)}")
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        kind, _, rest = key.partition("/")
        groups.setdefault(kind, {})[rest] = value
    try:
        for name, module in agent.networks().items():
            prefix = name + "/"
            module.load_state_dict({k[len(prefix):]: v for k, v in groups.get("net", {}).items()
                                    if k.startswith(prefix)})
    except RuntimeError as err:
        raise ValueError(f"checkpoint {str(path)!r} does not fit this agent's networks "
                         f"(another n_neurons, seed-independent shape or wiring?): {err}"
                         ) from err
    agent.load_extra_state(groups.get("extra", {}))
    for name, optimizer in agent.optimizers().items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in groups.get("optim", {}).items():
            owner, index, slot = key.split("/")
            if owner == name:
                state.setdefault(int(index), {})[slot] = value
        try:
            optimizer.load_state_dict({"state": state,
                                       "param_groups": meta["optimizers"][name]})
        except (KeyError, ValueError) as err:
            raise ValueError(f"checkpoint {str(path)!r}: optimiser {name!r} does not fit: "
                             f"{err}") from err
    counters = meta["counters"]
    agent.num_timesteps = int(counters["num_timesteps"])
    agent.num_updates = int(counters["num_updates"])
    agent.num_episodes = int(counters["num_episodes"])
    agent._episode_returns = [float(r) for r in meta["episode_returns"]]
    if not training:
        return
    torch.set_rng_state(groups["rng"]["torch"])
    agent.rng.bit_generator.state = meta["numpy_rng"]
    agent.load_extra_json_state(meta.get("extra_json", {}))
    agent._episode_return = groups["loop"]["episode_return"].numpy().copy()
    agent._episode_length = groups["loop"]["episode_length"].numpy().copy()
    if meta.get("log_dir"):
        agent.log_dir = Path(meta["log_dir"])
    if meta.get("buffer_file"):
        agent.buffer = ReplayBuffer.load(Path(path).parent / meta["buffer_file"],
                                        device=agent.device)
    else:
        warnings.warn(f"checkpoint {str(path)!r} has no replay buffer: training resumes "
                      f"with an empty one", stacklevel=4)
        agent.buffer = None
    if "obs" in groups["loop"] and meta.get("env_state") is not None:
        try:
            restore_env_state(agent.env, meta["env_state"])
        except ValueError as err:
            warnings.warn(f"the env state could not be restored ({err}); new episodes "
                          f"start now", stacklevel=4)
        else:
            agent._last_obs = groups["loop"]["obs"].numpy().astype(
                agent.observation_space.dtype)
            agent._last_hidden = {k[len("hidden/"):]: v.to(agent.device) for k, v in
                                 groups["loop"].items() if k.startswith("hidden/")}
            return
    else:
        warnings.warn("the env's state could not be saved with this checkpoint (opaque env "
                      "state or an async vector env): new episodes start now", stacklevel=4)
    agent._last_obs, agent._last_hidden = None, None
    agent._episode_return[:] = 0.0
    agent._episode_length[:] = 0
