"""Replayed experience as time windows: what an agent's ``update`` reads.

:func:`sample_window` draws one batch from a :class:`~velora.buffers.ReplayBuffer` in the
agent's replay mode and lays it out as a :class:`Window`; :func:`merge_time` and
:func:`states_before_each_step` are the two reshapes every recurrent loss needs.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from velora.buffers.replay import ReplayBuffer

Hidden = dict[str, torch.Tensor]


@dataclass
class Window:
    """A batch of replayed experience as time windows, ``(batch, time, ...)`` each.

    One-step ("stored_state") batches are windows of length 1. ``hiddens`` holds each
    recurrent head's state *before* the window's first step; ``resets[b, t]`` is True where an
    episode starts at step ``t`` (the state is zeroed before it); ``valid`` is False for
    padding, which every loss must ignore.

    ``resets`` is ``None`` when no state needs zeroing: a one-step window starts from the
    stored states, and the training loop stores a zero state at every episode start.
    """

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    resets: torch.Tensor | None
    valid: torch.Tensor
    hiddens: Hidden
    all_valid: bool = False  # True when no step is padding (one-step batches): a plain mean

    @property
    def batch_size(self) -> int:
        return self.observations.shape[0]

    @property
    def length(self) -> int:
        return self.observations.shape[1]

    def slice(self, start: int, stop: int | None = None) -> Window:
        """Steps ``start:stop`` of every window (``hiddens`` is left as it is)."""
        if start == 0 and stop is None:
            return self  # the whole window (a dataclass of views would be the same data)
        parts = {f.name: getattr(self, f.name)[:, start:stop] for f in fields(self)
                 if f.name not in ("hiddens", "all_valid") and getattr(self, f.name) is not None}
        return replace(self, **parts)

    def masked_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of ``(batch, time)`` values over the valid (non-padded) steps."""
        if self.all_valid:
            return values.mean()
        weights = self.valid.to(values.dtype)
        return (values * weights).sum() / weights.sum().clamp(min=1.0)


def merge_time(x: torch.Tensor) -> torch.Tensor:
    """``(batch, time, ...) -> (batch * time, ...)``."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def states_before_each_step(h0: torch.Tensor, h_seq: torch.Tensor,
                            resets: torch.Tensor | None) -> torch.Tensor:
    """The state each step *started* from: ``h0`` then ``h_seq`` shifted by one step, zeroed
    at resets.

    ``h0`` ``(..., batch, hidden)``, ``h_seq`` ``(..., batch, time, hidden)`` (state after each
    step; leading dims such as ensemble members are kept), ``resets`` ``(batch, time)`` or
    ``None`` (nothing zeroed).
    """
    if h_seq.shape[-2] == 1:
        before = h0.unsqueeze(-2)
    else:
        before = torch.cat([h0.unsqueeze(-2), h_seq[..., :-1, :]], dim=-2)
    if resets is None:
        return before
    return before * (~resets).unsqueeze(-1).to(before.dtype)


def sample_window(buffer: ReplayBuffer, batch_size: int, seq_len: int, burn_in: int,
                  replay: str) -> Window:
    """One replay batch in replay mode ``replay`` as ``batch_size`` windows of
    ``burn_in + window length`` steps, the window length being ``seq_len`` in ``"sequence"``
    mode and 1 in ``"stored_state"`` mode; the first ``burn_in`` steps only refresh the
    stored states (no gradient).
    """
    if burn_in > 0 or replay == "sequence":
        window_length = seq_len if replay == "sequence" else 1
        b = buffer.sample_sequences(batch_size, window_length, burn_in)
        return Window(b.observations, b.actions, b.rewards, b.next_observations,
                      b.terminated, b.resets, b.valid, dict(b.hiddens))
    # One-step windows without burn-in straight from the sampled arrays: (batch, ...) ->
    # (batch, 1, ...) as numpy views, cheaper than a torch unsqueeze per field. No resets:
    # each window starts from its stored state, which is zero where an episode starts.
    a = buffer.sample_arrays(batch_size)
    tensor = buffer.as_tensor
    one = lambda x: tensor(x[:, None])  # noqa: E731
    terminated = one(a["terminated"])
    return Window(one(a["observations"]), one(a["actions"]), one(a["rewards"]),
                  one(a["next_observations"]), terminated, None,
                  torch.ones_like(terminated), {k: tensor(h) for k, h in a["hiddens"].items()},
                  all_valid=True)
