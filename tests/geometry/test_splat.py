import torch

from mvtrack.geometry import bilinear_sample, bilinear_splat, zbuffer_visible


def test_sample_is_exact_at_pixel_centres_and_linear_between():
    image = torch.arange(2 * 4 * 5, dtype=torch.float64).reshape(1, 2, 4, 5)
    xy = torch.tensor([[[0.0, 0.0], [4.0, 3.0], [2.0, 1.0]]], dtype=torch.float64)
    out = bilinear_sample(image, xy)  # (1, 3, 2)
    assert torch.equal(out[0, :, 0], image[0, 0, [0, 3, 1], [0, 4, 2]])
    ramp = torch.arange(5, dtype=torch.float64).expand(1, 1, 4, 5)  # value = x
    assert torch.allclose(bilinear_sample(ramp, torch.tensor([[[1.25, 2.5]]], dtype=torch.float64)), torch.tensor(1.25,
                          dtype=torch.float64))
    assert bilinear_sample(ramp, torch.tensor([[[-3.0, 1.0]]], dtype=torch.float64)).item() == 0  # outside: zero


def test_sample_then_splat_at_the_same_positions_returns_the_samples():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 6, 7, generator=g)
    xy = torch.stack(torch.meshgrid(torch.arange(7.0), torch.arange(6.0), indexing="xy"), -1).reshape(1, -1, 2)
    values = bilinear_sample(image, xy)
    total, mass = bilinear_splat(values, xy, torch.ones(1, xy.shape[1]), (6, 7))
    assert torch.allclose(mass, torch.ones_like(mass))
    assert torch.allclose(total / mass, image, atol=1e-6)


def test_splat_spreads_bilinear_weights_and_drops_weightless_or_outside_points():
    values = torch.tensor([[[2.0], [5.0], [7.0]]])
    xy = torch.tensor([[[1.25, 2.5], [3.0, 1.0], [-4.0, 0.0]]])
    total, mass = bilinear_splat(values, xy, torch.tensor([[1.0, 0.0, 1.0]]), (4, 4))
    assert torch.isclose(mass.sum(), torch.tensor(1.0))  # the weightless and the outside point add nothing
    assert torch.isclose(mass[0, 0, 2, 1], torch.tensor(0.75 * 0.5)) and torch.isclose(mass[0, 0, 3, 2], torch.tensor(0.25 * 0.5))
    assert torch.allclose(total, 2.0 * mass)


def test_zbuffer_keeps_the_nearest_point_of_a_cell():
    xy = torch.tensor([[[2.0, 2.0], [2.2, 1.9], [5.0, 5.0], [9.0, 1.0], [1.0, 1.0]]])
    depth = torch.tensor([[3.0, 1.0, 2.0, 1.0, -1.0]])
    visible = zbuffer_visible(xy, depth, torch.ones(1, 5, dtype=torch.bool), (8, 8), cell=1)
    # behind the nearer point of its pixel; alone; nearest; outside the image; behind the camera
    assert visible.tolist() == [[False, True, True, False, False]]
    both = zbuffer_visible(xy, torch.tensor([[1.0, 1.01, 2.0, 1.0, 1.0]]), torch.tensor([[True, True, True, True, False]]),
                           (8, 8), cell=1)
    assert both.tolist() == [[True, True, True, False, False]]  # same surface (within rtol); invalid point ignored


def test_fill_holes_keeps_known_pixels_and_fills_holes_from_their_surroundings():
    """Push-pull: known pixels unchanged; a hole inside a flat region takes its value; a hole between two regions
    takes values between theirs, rising from one side to the other; nothing known: unchanged."""
    from mvtrack.geometry import fill_holes

    image = torch.zeros(2, 3, 16, 20)
    image[:, :, :, :10] = 0.2
    image[:, :, :, 10:] = 0.8
    known = torch.ones(2, 1, 16, 20, dtype=torch.bool)
    known[0, :, 4:8, 2:6] = False  # inside the 0.2 half
    known[1, :, :, 8:12] = False  # a band across the edge
    holes = torch.where(known, image, torch.full_like(image, 5.0))  # garbage under the holes
    out = fill_holes(holes, known)
    torch.testing.assert_close(out[known.expand_as(out)], image[known.expand_as(image)])
    torch.testing.assert_close(out[0, :, 4:8, 2:6], torch.full((3, 4, 4), 0.2))
    band = out[1, 0, 8, 8:12]
    assert ((band >= 0.2) & (band <= 0.8)).all() and band[0] < band[-1] and (band.diff() >= 0).all()
    nothing = torch.zeros(1, 1, 16, 20, dtype=torch.bool)
    assert torch.equal(fill_holes(holes[:1], nothing), holes[:1])
