"""The LSTM and GRU cells' updates, and their recurrences over a whole sequence with
backpropagation through time written out.

The update equations are those of :class:`torch.nn.LSTMCell` and :class:`torch.nn.GRUCell`
(gate blocks LSTM ``[i | f | g | o]``, GRU ``[r | z | n]``), written once here:
:func:`lstm_cell` and :func:`gru_cell` are what :class:`~velora.models.rnn.RNNEnsemble` runs
for one step, and what the recurrences below run on every step.

Why the recurrences exist: in sequence replay a head's cost is its per-step recurrence, and run
step by step under autograd every LSTM / GRU step records about ten graph nodes whose backward
passes dominate an update on a CPU (the T-maze's long windows: 202 steps in a row). The
derivative of a step's new state with respect to its pre-activations is linear in the incoming
gradient, with coefficients that depend only on the forward pass, so the backward here computes
those coefficients for every step at once and keeps in its loop only what is sequential: three
operations a step for the GRU, five for the LSTM (whose cell state is a second chain). Both
recurrences run the reference cell functions unchanged in the forward pass, so their states
equal the step-by-step loop's bit for bit; ``tests/test_rnn_recurrence.py`` checks their
gradients against autograd through that loop and against torch's own ``nn.LSTM`` / ``nn.GRU``
(float64 ``gradcheck`` included).

Layout (members first, then time, as :class:`~velora.models.rnn.RNNEnsemble` runs): ``x_proj``
``(members, time, batch, G * H)``, each step's input part ``W_ih x + b_ih`` (LSTM: plus
``b_hh``, both biases entering the gates' sum once); ``h0`` (and the LSTM's ``c0``)
``(members, batch, H)``; ``w_hh_t`` ``(members, H, G * H)``, the recurrent weight transposed;
the GRU's ``bias_hh`` ``(members, 1, 3 * H)`` (it sits inside the reset gate's product, so it
cannot join ``x_proj``); ``keep`` ``(time, batch, 1)``, 0 where an episode starts (the state is
zeroed before that step), or ``None``. The states after every step come back as
``(members, batch, time, H)``.
"""

from __future__ import annotations

import torch

__all__ = ["gru_cell", "gru_recurrence", "gru_slopes", "lstm_cell", "lstm_recurrence",
           "lstm_slopes"]


def lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from its pre-activations: ``gates`` ``(..., 4 H)`` (``W_ih x + W_hh h +``
    both biases), ``c`` ``(..., H)`` -> ``(h', c')`` with ``c' = f c + i g``, ``h' = o tanh(c')``."""
    n = c.shape[-1]
    # One sigmoid over all four blocks (the candidate's is unused): fewer operations per step,
    # which is what a small recurrent unroll's time is made of.
    i, f, _, o = torch.sigmoid(gates).split_with_sizes([n, n, n, n], dim=-1)
    c_new = torch.addcmul(f * c, i, torch.tanh(gates[..., 2 * n:3 * n]))
    return o * torch.tanh(c_new), c_new


def gru_cell(x_part: torch.Tensor, hidden_part: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU step: ``x_part`` ``W_ih x + b_ih`` and ``hidden_part`` ``W_hh h + b_hh``, both
    ``(..., 3 H)``, and ``h`` ``(..., H)`` -> ``h' = (1 - z) n + z h`` with ``r, z =
    sigmoid(x_part + hidden_part)`` and ``n = tanh(x_n + r hidden_n)``."""
    n = h.shape[-1]
    rz = torch.sigmoid(x_part[..., :2 * n] + hidden_part[..., :2 * n])
    r, z = rz.split_with_sizes([n, n], dim=-1)
    candidate = torch.tanh(torch.addcmul(x_part[..., 2 * n:], r, hidden_part[..., 2 * n:]))
    return torch.lerp(candidate, h, z)


# ---------------------------------------------------------------------------------- LSTM
def _lstm_run(x_proj: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_hh_t: torch.Tensor,
              keep: torch.Tensor | None, save: bool) -> tuple[torch.Tensor, ...]:
    """The forward recurrence: ``h`` and ``c`` after each step ``(members, batch, time, H)``
    and, with ``save``, each step's pre-activations ``(time, members, batch, 4 H)`` and the
    ``h`` and ``c`` it started from ``(time, members, batch, H)``."""
    h, c = h0, c0
    hs, cs, pres, h_ins, c_ins = [], [], [], [], []
    for t in range(x_proj.shape[1]):
        if keep is not None:
            h, c = h * keep[t], c * keep[t]
        gates = torch.baddbmm(x_proj[:, t], h, w_hh_t)
        if save:
            pres.append(gates)
            h_ins.append(h)
            c_ins.append(c)
        h, c = lstm_cell(gates, c)
        hs.append(h)
        cs.append(c)
    h_all, c_all = torch.stack(hs, dim=2), torch.stack(cs, dim=2)
    if not save:
        return h_all, c_all
    return h_all, c_all, torch.stack(pres), torch.stack(h_ins), torch.stack(c_ins)


def lstm_slopes(gates: torch.Tensor, c_in: torch.Tensor, c_new: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The derivatives of :func:`lstm_cell` that do not depend on the incoming gradient.

    With ``i, f, o = sigmoid(.)``, ``g = tanh(.)`` of the gate blocks and ``tc = tanh(c')``:
    returns ``h_to_c = o (1 - tc^2)`` (``dh'`` -> ``dc'``), ``slopes = [g i (1 - i) | c f (1 -
    f) | i (1 - g^2) | tc o (1 - o)]`` (``[dc' | dc' | dc' | dh']`` times this is the gradient of
    the pre-activations) and ``f`` (``dc'`` -> ``dc``)."""
    n = c_in.shape[-1]
    sig = torch.sigmoid(gates)
    i, f, _, o = sig.split_with_sizes([n, n, n, n], dim=-1)
    g = torch.tanh(gates[..., 2 * n:3 * n])
    tc = torch.tanh(c_new)
    slopes = torch.cat([g * i * (1 - i), c_in * f * (1 - f), i * (1 - g * g), tc * o * (1 - o)],
                       dim=-1)
    return o * (1 - tc * tc), slopes, f


class _LSTMRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_proj: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                w_hh_t: torch.Tensor, keep: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h_all, c_all, pre_all, h_in_all, c_in_all = _lstm_run(x_proj, h0, c0, w_hh_t, keep,
                                                               save=True)
        ctx.save_for_backward(pre_all, h_in_all, c_in_all, c_all, w_hh_t, keep)
        return h_all, c_all

    @staticmethod
    def backward(ctx, grad_h_all: torch.Tensor, grad_c_all: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, None]:
        pre_all, h_in_all, c_in_all, c_all, w_hh_t, keep = ctx.saved_tensors
        time = pre_all.shape[0]
        h_to_c, slopes, forget = lstm_slopes(pre_all, c_in_all, c_all.permute(2, 0, 1, 3))
        # the recurrent paths pass through the reset mask; the input projection's does not
        slopes_kept = slopes if keep is None else slopes * keep.unsqueeze(1)
        forget_kept = forget if keep is None else forget * keep.unsqueeze(1)
        w_hh = w_hh_t.transpose(1, 2)
        grad_h, grad_c_carry = grad_h_all[:, :, time - 1], grad_c_all[:, :, time - 1]
        grad_hs, grad_cs = [], []
        for t in range(time - 1, -1, -1):
            grad_c = torch.addcmul(grad_c_carry, grad_h, h_to_c[t])
            grad_hs.append(grad_h)
            grad_cs.append(grad_c)
            grad_gates_kept = torch.cat([grad_c, grad_c, grad_c, grad_h], dim=-1) * slopes_kept[t]
            if t == 0:
                grad_h = torch.bmm(grad_gates_kept, w_hh)
                grad_c_carry = grad_c * forget_kept[0]
            else:
                grad_h = torch.baddbmm(grad_h_all[:, :, t - 1], grad_gates_kept, w_hh)
                grad_c_carry = torch.addcmul(grad_c_all[:, :, t - 1], grad_c, forget_kept[t])
        grad_h_steps = torch.stack(grad_hs[::-1])  # (time, members, batch, H)
        grad_c_steps = torch.stack(grad_cs[::-1])
        grad_gates = torch.cat([grad_c_steps, grad_c_steps, grad_c_steps, grad_h_steps],
                               dim=-1) * slopes
        grad_w_t = torch.einsum("tmbh,tmbg->mhg", h_in_all, grad_gates)
        return grad_gates.transpose(0, 1), grad_h, grad_c_carry, grad_w_t, None


def lstm_recurrence(x_proj: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                    w_hh_t: torch.Tensor, keep: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``h`` and ``c`` after each step, ``(members, batch, time, H)`` each (layout in the module
    docstring), with gradients to ``x_proj``, ``h0``, ``c0`` and ``w_hh_t``."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x_proj, h0, c0, w_hh_t)):
        return _LSTMRecurrence.apply(x_proj, h0, c0, w_hh_t, keep)
    return _lstm_run(x_proj, h0, c0, w_hh_t, keep, save=False)


# ----------------------------------------------------------------------------------- GRU
def _gru_run(x_proj: torch.Tensor, h0: torch.Tensor, w_hh_t: torch.Tensor,
             bias_hh: torch.Tensor, keep: torch.Tensor | None, save: bool
             ) -> tuple[torch.Tensor, ...]:
    """The forward recurrence: ``h`` after each step ``(members, batch, time, H)`` and, with
    ``save``, each step's hidden part ``W_hh h + b_hh`` ``(time, members, batch, 3 H)`` and the
    state it started from ``(time, members, batch, H)``."""
    h, hs, hidden_parts, h_ins = h0, [], [], []
    for t in range(x_proj.shape[1]):
        if keep is not None:
            h = h * keep[t]
        hidden_part = torch.baddbmm(bias_hh, h, w_hh_t)
        if save:
            hidden_parts.append(hidden_part)
            h_ins.append(h)
        h = gru_cell(x_proj[:, t], hidden_part, h)
        hs.append(h)
    h_all = torch.stack(hs, dim=2)
    if not save:
        return (h_all,)
    return h_all, torch.stack(hidden_parts), torch.stack(h_ins)


def gru_slopes(x_part: torch.Tensor, hidden_part: torch.Tensor, h_in: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The derivatives of :func:`gru_cell` with respect to its inputs, per unit of the incoming
    gradient ``dh'`` (repeated over the three gate blocks).

    With ``r, z`` the gates, ``n`` the candidate and ``hn`` the hidden part's candidate block:
    ``k_r = (1 - z)(1 - n^2) hn r (1 - r)``, ``k_z = (h - n) z (1 - z)``, ``k_n = (1 - z)(1 -
    n^2)``; returns ``to_x = [k_r | k_z | k_n]`` (``x_part``), ``to_hidden = [k_r | k_z | k_n
    r]`` (``hidden_part``) and ``z`` (``h`` directly)."""
    n = h_in.shape[-1]
    r, z = torch.sigmoid(x_part[..., :2 * n] + hidden_part[..., :2 * n]).split_with_sizes(
        [n, n], dim=-1)
    hidden_n = hidden_part[..., 2 * n:]
    candidate = torch.tanh(torch.addcmul(x_part[..., 2 * n:], r, hidden_n))
    k_n = (1 - z) * (1 - candidate * candidate)
    k_r = k_n * hidden_n * r * (1 - r)
    k_z = (h_in - candidate) * z * (1 - z)
    return torch.cat([k_r, k_z, k_n], dim=-1), torch.cat([k_r, k_z, k_n * r], dim=-1), z


class _GRURecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_proj: torch.Tensor, h0: torch.Tensor, w_hh_t: torch.Tensor,
                bias_hh: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        h_all, hidden_all, h_in_all = _gru_run(x_proj, h0, w_hh_t, bias_hh, keep, save=True)
        ctx.save_for_backward(x_proj, hidden_all, h_in_all, w_hh_t, keep)
        return h_all

    @staticmethod
    def backward(ctx, grad_h_all: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, None]:
        x_proj, hidden_all, h_in_all, w_hh_t, keep = ctx.saved_tensors
        time, members, batch, n3 = hidden_all.shape
        to_x, to_hidden, direct = gru_slopes(x_proj.transpose(0, 1), hidden_all, h_in_all)
        # the recurrent paths pass through the reset mask; the input projection's does not
        to_hidden_kept = to_hidden if keep is None else to_hidden * keep.unsqueeze(1)
        direct_kept = direct if keep is None else direct * keep.unsqueeze(1)
        to_hidden_kept = to_hidden_kept.view(time, members, batch, 3, n3 // 3)
        w_hh = w_hh_t.transpose(1, 2)
        grad_h = grad_h_all[:, :, time - 1]
        grad_hs = []
        for t in range(time - 1, -1, -1):
            grad_hs.append(grad_h)
            grad_hidden_kept = (to_hidden_kept[t] * grad_h.unsqueeze(-2)).view(members, batch, n3)
            through_w = torch.bmm(grad_hidden_kept, w_hh) if t == 0 \
                else torch.baddbmm(grad_h_all[:, :, t - 1], grad_hidden_kept, w_hh)
            grad_h = torch.addcmul(through_w, grad_h, direct_kept[t])
        grad_h_steps = torch.stack(grad_hs[::-1]).repeat(1, 1, 1, 3)  # (time, members, batch, 3H)
        grad_hidden = to_hidden * grad_h_steps
        grad_w_t = torch.einsum("tmbh,tmbg->mhg", h_in_all, grad_hidden)
        grad_bias = grad_hidden.sum(dim=(0, 2)).unsqueeze(1)
        return (to_x * grad_h_steps).transpose(0, 1), grad_h, grad_w_t, grad_bias, None


def gru_recurrence(x_proj: torch.Tensor, h0: torch.Tensor, w_hh_t: torch.Tensor,
                   bias_hh: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """``h`` after each step, ``(members, batch, time, H)`` (layout in the module docstring),
    with gradients to ``x_proj``, ``h0``, ``w_hh_t`` and ``bias_hh``."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x_proj, h0, w_hh_t, bias_hh)):
        return _GRURecurrence.apply(x_proj, h0, w_hh_t, bias_hh, keep)
    return _gru_run(x_proj, h0, w_hh_t, bias_hh, keep, save=False)[0]
