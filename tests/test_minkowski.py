"""The real MinkowskiEngine build: sparse convolution against a dense computation."""

import itertools

import MinkowskiEngine as ME
import numpy as np
import pytest
import torch
import torch.nn.functional as F


def kernel_offsets(kernel_size: int) -> list[tuple[int, int, int]]:
    """ME's order of the kernel's weight slices: the first axis varies fastest."""
    r = range(-(kernel_size // 2), kernel_size // 2 + 1)
    return [(x, y, z) for z, y, x in itertools.product(r, r, r)]


@pytest.mark.parametrize("cin,cout", [(1, 1), (3, 5)])
def test_sparse_conv_matches_dense_forward_and_backward(cin, cout):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    size = 6
    occupied = np.argwhere(rng.random((size, size, size)) < 0.3)  # tiny random grid
    coords = torch.from_numpy(np.c_[np.zeros(len(occupied)), occupied]).int().contiguous()
    feats = torch.randn(len(occupied), cin, dtype=torch.float64, requires_grad=True)
    conv = ME.MinkowskiConvolution(cin, cout, kernel_size=3, dimension=3, bias=False).double()
    out = conv(ME.SparseTensor(feats, coords))

    # Dense reference: zero-filled grid, conv3d with the same weights, read at active sites.
    dense_in = torch.zeros(1, cin, size, size, size, dtype=torch.float64)
    idx = torch.from_numpy(occupied).long()
    dense_in[0, :, idx[:, 0], idx[:, 1], idx[:, 2]] = feats.t()
    w = torch.zeros(cout, cin, 3, 3, 3, dtype=torch.float64)
    for k, (dx, dy, dz) in enumerate(kernel_offsets(3)):
        w[:, :, dx + 1, dy + 1, dz + 1] = conv.kernel[k].t()  # conv3d is a correlation
    dense_out = F.conv3d(dense_in, w, padding=1)
    out_idx = out.C[:, 1:].long()
    expected = dense_out[0, :, out_idx[:, 0], out_idx[:, 1], out_idx[:, 2]].t()
    assert out.F.shape == (len(occupied), cout)
    torch.testing.assert_close(out.F, expected, rtol=1e-10, atol=1e-10)

    # Backward: gradient w.r.t. input features and kernel equal the dense ones.
    g = torch.randn_like(out.F)
    (out.F * g).sum().backward()
    feats_d = feats.detach().clone().requires_grad_(True)
    w_d = w.detach().clone().requires_grad_(True)
    dense_in2 = torch.zeros(1, cin, size, size, size, dtype=torch.float64)
    dense_in2[0, :, idx[:, 0], idx[:, 1], idx[:, 2]] = feats_d.t()
    dense_out2 = F.conv3d(dense_in2, w_d, padding=1)
    # gradient flows only through active outputs
    sel = dense_out2[0, :, out_idx[:, 0], out_idx[:, 1], out_idx[:, 2]].t()
    (sel * g).sum().backward()
    torch.testing.assert_close(feats.grad, feats_d.grad, rtol=1e-10, atol=1e-10)
    grad_kernel = torch.stack([w_d.grad[:, :, dx + 1, dy + 1, dz + 1].t()
                               for dx, dy, dz in kernel_offsets(3)])
    torch.testing.assert_close(conv.kernel.grad, grad_kernel, rtol=1e-10, atol=1e-10)


def test_strided_conv_then_transpose_restores_coordinates():
    coords = torch.IntTensor([[0, 0, 0, 0], [0, 1, 0, 0], [0, 5, 5, 5], [1, 2, 3, 4]])
    x = ME.SparseTensor(torch.ones(4, 2), coords)
    down = ME.MinkowskiConvolution(2, 2, kernel_size=2, stride=2, dimension=3)(x)
    # voxels (0,0,0) and (1,0,0) of scene 0 merge; 3 coarse voxels remain
    assert down.F.shape[0] == 3
    up = ME.MinkowskiConvolutionTranspose(2, 2, kernel_size=2, stride=2, dimension=3)(down)
    assert set(map(tuple, x.C.tolist())) <= set(map(tuple, up.C.tolist()))
