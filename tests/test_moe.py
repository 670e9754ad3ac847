"""The mixture-of-experts layer: routing, the load-balancing loss, counts, the MoE GPT."""

import pytest
import torch

from course_lib import gpt, moe


def test_top_k_routing_shapes_renormalised_gates_and_the_best_experts():
    torch.manual_seed(0)
    logits = torch.randn(10, 6)
    gates, indices, probs = moe.top_k_routing(logits, 2)
    assert gates.shape == (10, 2) and indices.shape == (10, 2) and probs.shape == (10, 6)
    torch.testing.assert_close(gates.sum(-1), torch.ones(10))
    torch.testing.assert_close(probs.sum(-1), torch.ones(10))
    assert torch.equal(indices, logits.topk(2, dim=-1).indices)
    assert (gates[:, 0] >= gates[:, 1]).all()
    # renormalised softmax of the chosen = softmax over the chosen logits
    torch.testing.assert_close(gates, logits.gather(-1, indices).softmax(-1))


def test_top_k_routing_flattens_leading_dimensions_and_k_equal_1_gives_gate_1():
    gates, indices, _ = moe.top_k_routing(torch.randn(2, 5, 4), 1)
    assert gates.shape == (10, 1) and torch.equal(gates, torch.ones(10, 1))


@pytest.mark.parametrize("k,match", [(0, "positive int k"), (5, "more than the 4 experts"), (1.5, "int")])
def test_top_k_routing_refuses_bad_k(k, match):
    with pytest.raises(ValueError, match=match):
        moe.top_k_routing(torch.randn(3, 4), k)


def test_top_k_routing_refuses_integer_logits():
    with pytest.raises(TypeError, match="float tensor"):
        moe.top_k_routing(torch.ones(3, 4, dtype=torch.long), 1)


def test_the_load_balancing_loss_equals_a_hand_computation():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]])
    indices = torch.tensor([[0], [0], [2], [0]])
    f = torch.tensor([3 / 4, 0.0, 1 / 4])
    p = torch.tensor([1.9 / 4, 1.0 / 4, 1.1 / 4])
    expected = 3 * (f * p).sum()
    torch.testing.assert_close(moe.load_balancing_loss(probs, indices, 3), expected)
    # top-2: f counts the tokens' 2 choices each, over 2 * tokens choices
    indices2 = torch.tensor([[0, 1], [0, 1], [2, 0], [0, 1]])
    f2 = torch.tensor([4 / 8, 3 / 8, 1 / 8])
    torch.testing.assert_close(moe.load_balancing_loss(probs, indices2), 3 * (f2 * p).sum())


def test_the_load_balancing_loss_is_1_for_uniform_routing_and_grows_with_imbalance():
    E = 4
    uniform = torch.full((8, E), 1 / E)
    balanced = torch.arange(8)[:, None] % E
    torch.testing.assert_close(moe.load_balancing_loss(uniform, balanced, E), torch.tensor(1.0))
    collapsed_probs = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(8, 1)
    collapsed = moe.load_balancing_loss(collapsed_probs, torch.zeros(8, 1, dtype=torch.long), E)
    assert collapsed > 3.8
    torch.manual_seed(0)
    for _ in range(5):  # random routings stay above the uniform minimum
        _, idx, probs = moe.top_k_routing(torch.randn(64, E) * 3, 1)
        assert moe.load_balancing_loss(probs, idx, E) >= 1.0 - 1e-6


def test_the_gradient_flows_through_the_probabilities_only():
    logits = torch.randn(16, 4, requires_grad=True)
    _, idx, probs = moe.top_k_routing(logits, 2)
    moe.load_balancing_loss(probs, idx).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("probs,indices,E,error,match", [
    (torch.rand(4), torch.zeros(4, 1, dtype=torch.long), None, ValueError, "tokens, num_experts"),
    (torch.rand(4, 3), torch.zeros(4, 1), None, TypeError, "integer tensor"),
    (torch.rand(4, 3), torch.zeros(5, 1, dtype=torch.long), None, ValueError, "tokens=4"),
    (torch.rand(4, 3), torch.zeros(4, 1, dtype=torch.long), 5, ValueError, "num_experts=5"),
])
def test_the_load_balancing_loss_refuses_bad_input(probs, indices, E, error, match):
    with pytest.raises(error, match=match):
        moe.load_balancing_loss(probs, indices, E)


def test_expert_counts():
    counts = moe.expert_counts(torch.tensor([[0, 2], [2, 1], [2, 0]]), 4)
    assert counts.tolist() == [2, 1, 3, 0]
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        moe.expert_counts(torch.tensor([[0, 2]]), 2)


def test_the_moe_layer_mixes_the_chosen_experts_with_their_gates():
    torch.manual_seed(0)
    layer = moe.MoEFeedForward(8, num_experts=3, top_k=2, d_ff=16)
    x = torch.randn(2, 5, 8)
    y = layer(x)
    assert y.shape == x.shape
    tokens = x.reshape(-1, 8)
    gates, idx, _ = moe.top_k_routing(layer.router(tokens), 2)
    by_hand = torch.stack([
        sum(gates[t, j] * layer.experts[int(idx[t, j])](tokens[t]) for j in range(2)) for t in range(10)
    ])
    torch.testing.assert_close(y.reshape(-1, 8), by_hand)
    assert layer.last_counts.sum() == 20 and layer.last_aux_loss.dim() == 0
    with pytest.raises(ValueError, match="d_model=8"):
        layer(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="top_k=4 is more than num_experts=3"):
        moe.MoEFeedForward(8, 3, 4, 16)


def test_the_moe_gpt_has_the_dense_models_active_parameters_and_trains():
    config = gpt.GPTConfig(vocab_size=64, max_len=16, d_model=16, num_layers=2, num_heads=2)
    torch.manual_seed(0)
    dense = gpt.GPT(config)
    model = moe.MoEGPT(config, num_experts=4, top_k=2)
    router, second_bias = 2 * 16 * 4, 2 * 16   # per layer: the router, and the 2nd expert's output bias
    assert model.active_parameters() - router - second_bias == dense.num_parameters()
    assert model.num_parameters() > dense.num_parameters()
    ids = torch.randint(0, 64, (3, 16))
    out = moe.moe_lm_loss(model, ids, aux_weight=0.01)
    assert set(out) == {"loss", "lm_loss", "aux_loss"} and out["aux_loss"] >= 1.0 - 1e-6
    out["loss"].backward()
    assert model.layers[0].feed_forward.router.weight.grad.abs().sum() > 0
    assert moe.expert_counts_of(model).shape == (2, 4)
    assert moe.expert_counts_of(model).sum(1).tolist() == [3 * 16 * 2] * 2
    assert gpt.generate(model, ids[0, :4], 4).shape == (8,)
    with pytest.raises(ValueError, match="no MoEFeedForward"):
        moe.aux_loss_of(dense)
    with pytest.raises(ValueError, match="aux_weight"):
        moe.moe_lm_loss(model, ids, aux_weight=-1)


def test_a_collapsed_router_costs_e_over_k():
    """All probability on expert 0: it holds 1/k of the top-k choices, so the loss is E / k."""
    E = 8
    probs = torch.zeros(16, E)
    probs[:, 0] = 1.0
    for k in (1, 2, 4):
        chosen = torch.arange(k).repeat(16, 1)  # every token picks experts 0..k-1
        assert moe.load_balancing_loss(probs, chosen, E).item() == pytest.approx(E / k)
