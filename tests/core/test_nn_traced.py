"""TracedNetwork: the traced graph gives the eager network's outputs, sees weight updates and steps aside for
autograd and training mode."""

import torch

from polydiff.core.nn import TracedNetwork, UNet1D


def _unet_and_inputs():
    torch.manual_seed(0)
    unet = UNet1D(2, channels=(8, 16), cond_dim=3).eval()
    x, t, cond = torch.randn(1, 2, 8), torch.full((1,), 0.3), torch.randn(1, 3)
    return unet, x, t, cond


def test_the_traced_graph_matches_the_network_and_sees_weight_updates():
    unet, x, t, cond = _unet_and_inputs()
    traced = TracedNetwork(unet)
    with torch.no_grad():
        torch.testing.assert_close(traced(x, t, cond), unet(x, t, cond=cond), atol=1e-6, rtol=0)
        assert len(traced._traces) == 1
        for parameter in unet.parameters():
            parameter.mul_(1.1)
        torch.testing.assert_close(traced(x, t, cond), unet(x, t, cond=cond), atol=1e-6, rtol=0)
        # an expanded (stride-0) time runs the same graph
        torch.testing.assert_close(traced(x, torch.tensor(0.3).expand(1), cond), unet(x, t, cond=cond), atol=1e-6, rtol=0)
        assert len(traced._traces) == 1


def test_gradients_and_training_mode_run_the_eager_network():
    unet, x, t, cond = _unet_and_inputs()
    traced = TracedNetwork(unet)
    out = traced(x, t, cond)  # gradients enabled: eager, differentiable
    assert out.requires_grad and not traced._traces
    unet.train()
    with torch.no_grad():
        traced(x, t, cond)
    assert not traced._traces
