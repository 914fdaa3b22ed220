"""Crop-and-resize geometry: intrinsics and points follow OpenCV's resampling of the pixels."""

import cv2
import numpy as np
import pytest
import torch

from mvtrack.geometry import project
from mvtrack.geometry.crop import (
    center_crop_box,
    corner_to_center,
    corner_to_center_intrinsics,
    crop_intrinsics,
    crop_points,
    inside_image,
)


def blob_image(height, width, centre, sigma=1.5):
    """float32 (H, W) Gaussian blob centred at the pixel position ``centre = (x, y)`` (pixel centres at integers)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def centroid(image):
    """(x, y) intensity centroid of a float image, pixel centres at integers."""
    y, x = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    w = np.clip(image - 0.02 * image.max(), 0, None)
    return np.array([(w * x).sum() / w.sum(), (w * y).sum() / w.sum()])


@pytest.mark.parametrize("interpolation", [cv2.INTER_AREA, cv2.INTER_LINEAR])
@pytest.mark.parametrize("box,size", [((10, 0, 60, 90), (40, 60)), ((0, 17, 80, 48), (32, 24)),
                                      ((5, 20, 50, 50), (90, 90))])
def test_crop_points_land_on_the_same_content_after_opencv_resize(box, size, interpolation):
    source = blob_image(80, 100, (41.3, 33.7), sigma=3.0)
    y0, x0, h, w = box
    out = cv2.resize(np.ascontiguousarray(source[y0 : y0 + h, x0 : x0 + w]), (size[1], size[0]),
                     interpolation=interpolation)
    expected = crop_points(torch.tensor([41.3, 33.7], dtype=torch.float64), box, size).numpy()
    np.testing.assert_allclose(centroid(out), expected, atol=0.06)


def test_crop_intrinsics_agree_with_crop_points(two_cameras, random_points):
    w2c, K = two_cameras
    box, size = (7, 11, 70, 105), (48, 64)
    xy, _ = project(random_points, w2c[0], K[0])
    xy_cropped, _ = project(random_points, w2c[0], crop_intrinsics(K[0], box, size))
    torch.testing.assert_close(xy_cropped, crop_points(xy, box, size), atol=1e-9, rtol=0)


def test_center_crop_box_keeps_the_target_aspect_and_centre():
    assert center_crop_box((1280, 1280), (480, 832)) == (271, 0, 738, 1280)
    assert center_crop_box((720, 1280), (256, 256)) == (0, 280, 720, 720)
    assert center_crop_box((64, 96), (32, 48)) == (0, 0, 64, 96)
    with pytest.raises(ValueError, match="expected positive sizes"):
        center_crop_box((0, 10), (4, 4))


def test_inside_image_and_corner_convention():
    xy = torch.tensor([[-0.5, 0.0], [-0.51, 0.0], [31.49, 23.49], [31.5, 0.0]])
    assert inside_image(xy, (24, 32)).tolist() == [True, False, True, False]
    # the centre of the top-left pixel is (0.5, 0.5) from the corner and (0, 0) in mvtrack's convention
    assert corner_to_center(torch.tensor([0.5, 0.5])).tolist() == [0.0, 0.0]
    K = torch.tensor([[100.0, 0.0, 16.0], [0.0, 100.0, 12.0], [0.0, 0.0, 1.0]])
    assert corner_to_center_intrinsics(K)[:2, 2].tolist() == [15.5, 11.5]
