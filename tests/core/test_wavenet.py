"""WaveNetDenoiser and interpolate_frames: exact interpolation, shapes, hop sizes, zero-initialised output, errors."""

import pytest
import torch

from polydiff.core.nn import WaveNetDenoiser, interpolate_frames


def test_interpolate_frames_is_linear_between_frame_centres():
    features = torch.tensor([[[0.0, 10.0, 20.0]]])
    out = interpolate_frames(features, 10, hop=4)
    expected = torch.tensor([0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0, 20.0])
    torch.testing.assert_close(out[0, 0], expected)


@pytest.mark.parametrize("hop", [1, 128, 256, 300])
def test_any_hop_gives_the_input_shape(hop):
    torch.manual_seed(0)
    net = WaveNetDenoiser(channels=2, residual_channels=8, layers=3, dilation_cycle=2, cond_channels=5, hop=hop,
                          cond_hidden=8, time_dim=8)
    length = 3 * hop
    x, cond = torch.randn(2, 2, length), torch.randn(2, 5, 4)
    out = net(x, torch.tensor([0.1, 0.9]), cond=cond)
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # zero-initialised output layer: a fresh network predicts 0
    out.sum().backward()
    assert net.out.weight.grad is not None and net.out.weight.grad.abs().sum() > 0


def test_rebuilds_from_config_with_identical_outputs():
    torch.manual_seed(1)
    net = WaveNetDenoiser(channels=1, residual_channels=8, layers=2, dilation_cycle=2, cond_channels=3, hop=4,
                          cond_hidden=8, time_dim=8)
    torch.nn.init.normal_(net.out.weight)
    clone = type(net)(**net.config)
    clone.load_state_dict(net.state_dict())
    x, cond = torch.randn(1, 1, 16), torch.randn(1, 3, 5)
    torch.testing.assert_close(net(x, torch.tensor([3.0]), cond=cond), clone(x, torch.tensor([3.0]), cond=cond),
                               rtol=0, atol=0)


def test_conditioning_changes_the_output_only_near_its_frame():
    torch.manual_seed(2)
    net = WaveNetDenoiser(channels=1, residual_channels=8, layers=2, dilation_cycle=1, kernel_size=3,
                          cond_channels=3, hop=4, cond_hidden=8, time_dim=8)
    net.cond_encoder = torch.nn.Identity()  # only the projection: frame k reaches samples 4(k-1) < n < 4(k+1)
    net.cond_projection = torch.nn.Conv1d(3, 2 * 8 * 2, 1)
    torch.nn.init.normal_(net.out.weight)
    x, cond = torch.randn(1, 1, 40), torch.randn(1, 3, 11)
    changed = cond.clone()
    changed[..., 5] += 1.0
    diff = (net(x, torch.tensor([1.0]), cond=cond) - net(x, torch.tensor([1.0]), cond=changed)).abs()[0, 0]
    assert diff[:14].max() == 0 and diff[27:].max() == 0  # receptive field: 2 layers of kernel 3 = +-2 samples
    assert diff[17:24].min() > 0


@pytest.mark.parametrize("kwargs, name", [({"kernel_size": 4}, "kernel_size"), ({"layers": 0}, "layers"),
                                          ({"cond_channels": -1}, "cond_channels"), ({"hop": 0}, "hop")])
def test_bad_constructor_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WaveNetDenoiser(**kwargs)


def test_bad_forward_inputs_name_themselves():
    net = WaveNetDenoiser(channels=1, residual_channels=4, layers=1, dilation_cycle=1, cond_channels=2, hop=4,
                          cond_hidden=4, time_dim=4)
    x = torch.randn(1, 1, 16)
    with pytest.raises(ValueError, match="cond"):
        net(x, torch.zeros(1))
    with pytest.raises(ValueError, match="cond"):
        net(x, torch.zeros(1), cond=torch.randn(1, 2, 3))  # 3 frames cover < 16 samples at hop 4
    with pytest.raises(ValueError, match="cond"):
        net(x, torch.zeros(1), cond=torch.randn(1, 3, 5))
    with pytest.raises(ValueError, match="x"):
        net(torch.randn(1, 2, 16), torch.zeros(1), cond=torch.randn(1, 2, 5))


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(3)
    net = WaveNetDenoiser(channels=1, residual_channels=4, layers=2, dilation_cycle=2, cond_channels=2, hop=4,
                          cond_hidden=4, time_dim=4)
    torch.nn.init.normal_(net.out.weight)
    net.save_pretrained(tmp_path / "net")
    loaded = WaveNetDenoiser.from_pretrained(tmp_path / "net")
    x, cond = torch.randn(1, 1, 8), torch.randn(1, 2, 3)
    torch.testing.assert_close(loaded(x, torch.ones(1), cond=cond), net(x, torch.ones(1), cond=cond), rtol=0, atol=0)
