"""Mixture of experts: a feed-forward layer made of several small ones, a router picking k per token.

A dense Transformer runs every token through the same feed-forward layer. A mixture-of-experts
(MoE) layer holds ``num_experts`` feed-forward layers (the **experts**) and a **router**, a linear
layer scoring each expert for each token. Each token goes to its ``k`` best-scored experts only,
and their outputs are mixed with the router's probabilities renormalised over the chosen ones
(Shazeer et al. 2017; GShard, Lepikhin et al. 2020; Switch, Fedus et al. 2021)::

    router logits (tokens, E) -> softmax -> probs (tokens, E) -> top-k -> indices (tokens, k)
    gates = probs[indices] / probs[indices].sum()                              (tokens, k)
    y[t] = sum_j gates[t, j] * expert_{indices[t, j]}(x[t])

Parameters grow with ``E``, compute per token only with ``k``: with ``k = 2`` experts of width
``d_ff / 2``, a token costs what one dense feed-forward of width ``d_ff`` costs (equal **active**
parameters), while the layer holds ``E / 2`` times the parameters.

Left alone, the router tends to collapse onto a few experts (those it picked early train faster,
so it picks them more). The Switch/GShard **load-balancing loss** pushes back::

    aux = E * sum_i f_i * P_i

with ``f_i`` the fraction of the tokens' ``k`` choices that went to expert ``i`` and ``P_i`` the
mean router probability of expert ``i``. It is 1 when routing is uniform and up to ``E / k`` when
the router collapses (every token's probability on one expert, which then gets ``1 / k`` of the
choices: ``E`` for top-1); ``f`` is a count (no gradient), ``P`` carries the gradient.

    from course_lib import moe
    model = moe.MoEGPT(gpt_config, num_experts=4, top_k=2, expert_d_ff=256)
    out = moe.moe_lm_loss(model, batch, aux_weight=0.01)   # {"loss", "lm_loss", "aux_loss"}
    moe.expert_counts_of(model)                            # (layers, E) tokens routed per expert
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from course_lib import _validate as validate
from course_lib.gpt import GPT, GPTConfig
from course_lib.transformer import FeedForward

__all__ = [
    "top_k_routing",
    "load_balancing_loss",
    "expert_counts",
    "MoEFeedForward",
    "MoEGPT",
    "aux_loss_of",
    "expert_counts_of",
    "moe_lm_loss",
]


def top_k_routing(router_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Route each token to its ``k`` best experts.

    Args:
        router_logits: ``(tokens, num_experts)`` scores of the router (any leading dimensions are
            flattened into tokens: ``(..., num_experts)``).
        k: experts per token, ``1 <= k <= num_experts``.

    Returns:
        ``(gates, indices, probs)``: ``gates (tokens, k)`` the router probabilities of the chosen
        experts renormalised to sum to 1 per token (largest first); ``indices (tokens, k)`` the
        chosen experts (long); ``probs (tokens, num_experts)`` the softmax over all experts (what
        the load-balancing loss needs).
    """
    if not isinstance(router_logits, torch.Tensor) or not router_logits.is_floating_point():
        raise TypeError("top_k_routing expected router_logits as a float tensor (tokens, num_experts)")
    if router_logits.dim() < 1 or router_logits.shape[-1] == 0:
        raise ValueError(f"top_k_routing expected router_logits (tokens, num_experts), got {tuple(router_logits.shape)}")
    num_experts = router_logits.shape[-1]
    validate.positive_int(k, "k", "top_k_routing")
    if k > num_experts:
        raise ValueError(f"top_k_routing: k={k} is more than the {num_experts} experts")
    logits = router_logits.reshape(-1, num_experts)
    probs = logits.float().softmax(dim=-1)
    top, indices = probs.topk(k, dim=-1)
    gates = top / top.sum(dim=-1, keepdim=True)
    return gates.to(router_logits.dtype), indices, probs


def load_balancing_loss(router_probs: torch.Tensor, expert_indices: torch.Tensor, num_experts: int | None = None) -> torch.Tensor:
    """The Switch/GShard auxiliary loss ``num_experts * sum_i f_i * P_i``.

    ``f_i``: the fraction of all ``tokens * k`` routing choices that picked expert ``i`` (a count:
    no gradient). ``P_i``: the mean over tokens of the router probability of expert ``i`` (the
    gradient flows through it). Uniform routing gives exactly 1; a collapsed router (probability 1
    on one expert for every token) gives ``num_experts / k``, since that expert can hold at most
    ``1 / k`` of the choices: ``num_experts`` for top-1 routing.

    Args:
        router_probs: ``(tokens, num_experts)`` softmax probabilities (rows sum to 1).
        expert_indices: ``(tokens, k)`` (or ``(tokens,)`` for k = 1) chosen experts.
        num_experts: E (default: ``router_probs.shape[-1]``).

    Returns:
        A 0-dim tensor.
    """
    if not isinstance(router_probs, torch.Tensor) or router_probs.dim() != 2 or not router_probs.is_floating_point():
        shape = tuple(router_probs.shape) if isinstance(router_probs, torch.Tensor) else type(router_probs).__name__
        raise ValueError(f"load_balancing_loss expected router_probs as a float tensor (tokens, num_experts), got {shape}")
    tokens, width = router_probs.shape
    num_experts = width if num_experts is None else validate.positive_int(num_experts, "num_experts", "load_balancing_loss")
    if num_experts != width:
        raise ValueError(f"load_balancing_loss: router_probs has {width} experts, num_experts={num_experts}")
    if not isinstance(expert_indices, torch.Tensor) or expert_indices.is_floating_point():
        raise TypeError("load_balancing_loss expected expert_indices as an integer tensor (tokens, k)")
    if expert_indices.dim() == 1:
        expert_indices = expert_indices[:, None]
    if expert_indices.dim() != 2 or expert_indices.shape[0] != tokens:
        raise ValueError(
            f"load_balancing_loss expected expert_indices (tokens={tokens}, k), got {tuple(expert_indices.shape)}"
        )
    if tokens == 0:
        raise ValueError("load_balancing_loss got no tokens")
    f = expert_counts(expert_indices, num_experts).to(router_probs.dtype) / expert_indices.numel()
    p = router_probs.mean(dim=0)
    return num_experts * (f * p).sum()


def expert_counts(expert_indices: torch.Tensor, num_experts: int) -> torch.Tensor:
    """How many routing choices went to each expert: ``(num_experts,)`` long, from ``(tokens, k)`` indices."""
    if not isinstance(expert_indices, torch.Tensor) or expert_indices.is_floating_point():
        raise TypeError("expert_counts expected expert_indices as an integer tensor (tokens, k)")
    validate.positive_int(num_experts, "num_experts", "expert_counts")
    if expert_indices.numel() and (expert_indices.min() < 0 or expert_indices.max() >= num_experts):
        raise ValueError(
            f"expert_counts: expert indices must lie in [0, {num_experts}), got "
            f"{int(expert_indices.min())} to {int(expert_indices.max())}"
        )
    return torch.bincount(expert_indices.flatten().long(), minlength=num_experts)


class MoEFeedForward(nn.Module):
    """A mixture-of-experts feed-forward layer, a drop-in for ``course_lib.transformer.FeedForward``.

    ``x (batch, seq, d_model)`` -> same shape. After each forward pass, ``last_aux_loss`` holds the
    load-balancing loss of that call (0-dim, with gradient) and ``last_counts`` the ``(num_experts,)``
    routing counts.

    Args:
        d_model: the width of the tokens.
        num_experts: E, the number of experts (>= 1).
        top_k: experts per token (1 <= top_k <= E).
        d_ff: the hidden width of each expert.
        activation, dropout: as in ``FeedForward``.
    """

    def __init__(self, d_model: int, num_experts: int, top_k: int, d_ff: int, activation: str = "gelu_new",
                 dropout: float = 0.0) -> None:
        super().__init__()
        for name, value in (("d_model", d_model), ("num_experts", num_experts), ("top_k", top_k), ("d_ff", d_ff)):
            validate.positive_int(value, name, "MoEFeedForward")
        if top_k > num_experts:
            raise ValueError(f"MoEFeedForward: top_k={top_k} is more than num_experts={num_experts}")
        self.num_experts, self.top_k, self.d_model = num_experts, top_k, d_model
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(d_model, d_ff, dropout, activation) for _ in range(num_experts))
        self.last_aux_loss: torch.Tensor | None = None
        self.last_counts: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, top_k={self.top_k}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-1] != self.d_model:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"MoEFeedForward expected x of shape (..., d_model={self.d_model}), got {shape}")
        tokens = x.reshape(-1, self.d_model)                          # (N, d)
        gates, indices, probs = top_k_routing(self.router(tokens), self.top_k)  # (N, k) (N, k) (N, E)
        out = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            rows, slot = (indices == e).nonzero(as_tuple=True)         # tokens that chose e, and in which slot
            if rows.numel():
                out.index_add_(0, rows, gates[rows, slot, None] * expert(tokens[rows]))
        self.last_aux_loss = load_balancing_loss(probs, indices, self.num_experts)
        self.last_counts = expert_counts(indices, self.num_experts).detach()
        return out.reshape(x.shape)


class MoEGPT(GPT):
    """A ``course_lib.gpt.GPT`` whose blocks' feed-forward layers are ``MoEFeedForward`` layers.

    Everything else (embeddings, attention, LayerNorms, generation, ``evaluate_lm``) is the GPT's.
    ``model(ids)`` -> ``(batch, seq, vocab)`` logits; ``aux_loss_of(model)`` then sums the layers'
    load-balancing losses, ``expert_counts_of(model)`` stacks their routing counts.

    Args:
        config: the ``GPTConfig`` (its ``d_ff`` is not used by the experts).
        num_experts: experts per layer.
        top_k: experts per token.
        expert_d_ff: hidden width of each expert (default ``config.d_ff // top_k``: the
            same active feed-forward parameters per token as the dense GPT of ``config``).
    """

    def __init__(self, config: GPTConfig | Mapping[str, Any], num_experts: int = 4, top_k: int = 2,
                 expert_d_ff: int | None = None) -> None:
        super().__init__(config)
        c = self.config
        expert_d_ff = max(1, c.d_ff // top_k) if expert_d_ff is None else expert_d_ff
        for block in self.layers:
            block.feed_forward = MoEFeedForward(c.d_model, num_experts, top_k, expert_d_ff, c.activation, c.dropout)
        self.num_experts, self.top_k, self.expert_d_ff = num_experts, top_k, expert_d_ff
        std = 0.02
        for block in self.layers:
            for module in block.feed_forward.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, std=std)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
            for expert in block.feed_forward.experts:
                nn.init.normal_(expert.fc_out.weight, std=std / (2 * c.num_layers) ** 0.5)

    def active_parameters(self) -> int:
        """Parameters one token uses: all but the ``E - k`` experts it skips in every layer."""
        per_expert = sum(p.numel() for p in self.layers[0].feed_forward.experts[0].parameters())
        return self.num_parameters() - len(self.layers) * (self.num_experts - self.top_k) * per_expert

    def to_hf(self, *args, **kwargs):  # pragma: no cover - there is no HF GPT-2 with experts
        raise NotImplementedError("MoEGPT has no Hugging Face GPT-2 equivalent (its feed-forward layers are experts)")


def _moe_layers(model: nn.Module) -> list[MoEFeedForward]:
    layers = [m for m in model.modules() if isinstance(m, MoEFeedForward)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MoEFeedForward layer")
    return layers


def aux_loss_of(model: nn.Module) -> torch.Tensor:
    """The sum over the model's MoE layers of their last forward pass's load-balancing loss (0-dim)."""
    layers = _moe_layers(model)
    if any(layer.last_aux_loss is None for layer in layers):
        raise ValueError("aux_loss_of: run the model forward first (the loss comes from the last call)")
    return torch.stack([layer.last_aux_loss for layer in layers]).sum()


def expert_counts_of(model: nn.Module) -> torch.Tensor:
    """``(layers, num_experts)`` tokens each expert of each MoE layer got in the last forward pass."""
    layers = _moe_layers(model)
    if any(layer.last_counts is None for layer in layers):
        raise ValueError("expert_counts_of: run the model forward first")
    return torch.stack([layer.last_counts for layer in layers])


def moe_lm_loss(model: nn.Module, batch: torch.Tensor, *, aux_weight: float = 0.01) -> dict[str, torch.Tensor]:
    """Causal-LM loss plus ``aux_weight`` x the load-balancing loss, for ``course_lib.train.Trainer``.

    Args:
        model: a ``MoEGPT`` (or any model with ``MoEFeedForward`` layers) mapping ``(batch, seq)``
            ids to ``(batch, seq, vocab)`` logits.
        batch: ``(batch, seq)`` token ids.
        aux_weight: weight of the balancing loss (0: logged, but it does not train the router).

    Returns:
        ``{"loss", "lm_loss", "aux_loss"}`` 0-dim tensors (the last two detached).
    """
    from course_lib.objectives import causal_lm_loss

    aux_weight = validate.number(aux_weight, "aux_weight", "moe_lm_loss", low=0)
    lm = causal_lm_loss(model(batch), batch)
    aux = aux_loss_of(model) / len(_moe_layers(model))   # mean over layers: 1 when balanced
    loss = lm + aux_weight * aux if aux_weight else lm
    return {"loss": loss, "lm_loss": lm.detach(), "aux_loss": aux.detach()}

