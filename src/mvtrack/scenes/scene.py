"""Scenes of the synthetic engine: the batched tensor container and the per-clip random sampler.

World frame: z up, ground plane z = 0, a textured sky dome of radius ``dome_radius`` around the origin.
Instances: 0 = dome, 1 = ground, 2... = objects (spheres, boxes, cylinders), padded per batch with NONE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from mvtrack.geometry import axis_angle_to_matrix, c2w_to_w2c, look_at, make_intrinsics, quaternion_to_matrix
from mvtrack.geometry import trajectories as traj

from .config import SynthConfig
from .photos import BOX_FACES, CYLINDRICAL, PLANE_XY, SPHERICAL
from .textures import BLOBS, NOISE, Textures, sample_texture

NONE, DOME, GROUND, SPHERE, BOX, CYLINDER = -1, 0, 1, 2, 3, 4
SHAPE_NAMES = {DOME: "dome", GROUND: "ground", SPHERE: "sphere", BOX: "box", CYLINDER: "cylinder"}
SCENE_RADIUS = 2.0  # object centres start within this disc
MAX_DISPLACEMENT = 1.0  # and move at most this far
MAX_BOUND = 0.95  # bounding radius of any object


@dataclass
class Scene:
    """A batch of B scenes with I instance slots, T frames and V cameras.

    shape: (B, I) long, instance kind (DOME, GROUND, SPHERE, BOX, CYLINDER or NONE for padding).
    size: (B, I, 3) sphere (r, r, r), box half extents, cylinder (r, r, half height), dome (R, R, R).
    rotation: (B, I, T, 3, 3) object-to-world rotation per frame; center: (B, I, T, 3) world position.
    textures: Textures with leading (B, I). light: (B, 3) unit direction towards the light; ambient: (B,).
    w2c: (B, V, T, 4, 4), K: (B, V, T, 3, 3) cameras of the H x W images.
    """

    shape: torch.Tensor
    size: torch.Tensor
    rotation: torch.Tensor
    center: torch.Tensor
    textures: Textures
    light: torch.Tensor
    ambient: torch.Tensor
    w2c: torch.Tensor
    K: torch.Tensor
    height: int
    width: int

    @property
    def batch_size(self) -> int:
        return self.shape.shape[0]

    @property
    def device(self) -> torch.device:
        return self.shape.device

    def to(self, device) -> "Scene":
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to(device) if hasattr(v, "to") else v
        return Scene(**out)

    @staticmethod
    def cat(scenes: list["Scene"]) -> "Scene":
        """Concatenate scenes along the batch, padding instance slots with NONE."""
        I = max(s.shape.shape[1] for s in scenes)
        if len({(s.height, s.width, s.w2c.shape[1:3]) for s in scenes}) != 1:
            raise ValueError("Scene.cat: scenes must share image size, views and frames")

        def pad(x: torch.Tensor, value=0.0):
            filler = torch.full((x.shape[0], I - x.shape[1], *x.shape[2:]), value, dtype=x.dtype, device=x.device)
            return torch.cat([x, filler], 1)

        def pad_rotation(R: torch.Tensor):
            eye = torch.eye(3, dtype=R.dtype, device=R.device)
            return torch.cat([R, eye.expand(R.shape[0], I - R.shape[1], *R.shape[2:]).clone()], 1)

        tex = Textures(**{k: torch.cat([pad(getattr(s.textures, k)) for s in scenes]) for k in vars(scenes[0].textures)})
        return Scene(
            shape=torch.cat([pad(s.shape, NONE) for s in scenes]),
            size=torch.cat([pad(s.size, 1.0) for s in scenes]),
            rotation=torch.cat([pad_rotation(s.rotation) for s in scenes]),
            center=torch.cat([pad(s.center) for s in scenes]),
            textures=tex,
            light=torch.cat([s.light for s in scenes]),
            ambient=torch.cat([s.ambient for s in scenes]),
            w2c=torch.cat([s.w2c for s in scenes]),
            K=torch.cat([s.K for s in scenes]),
            height=scenes[0].height,
            width=scenes[0].width,
        )


def _uniform(g: torch.Generator, lo: float, hi: float, *shape) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=g) if shape else lo + (hi - lo) * float(torch.rand((), generator=g))


def _random_rotation(g: torch.Generator) -> torch.Tensor:
    return quaternion_to_matrix(torch.randn(4, generator=g))  # uniform over rotations


def _sample_object(g: torch.Generator, frames: int, moving: bool, placed: list[tuple[torch.Tensor, float]]):
    kind = [SPHERE, BOX, CYLINDER][int(torch.randint(3, (1,), generator=g))]
    if kind == SPHERE:
        size = torch.full((3,), _uniform(g, 0.35, 0.9))
    elif kind == BOX:
        size = _uniform(g, 0.25, 0.65, 3)
    else:
        r, h = _uniform(g, 0.25, 0.6), _uniform(g, 0.3, 0.7)
        size = torch.tensor([r, r, h])
    bound = float(size.norm()) if kind == BOX else (float(size[0]) if kind == SPHERE else math.hypot(size[0], size[2]))
    size = size * min(1.0, MAX_BOUND / bound)
    bound = min(bound, MAX_BOUND)
    # Rejection sampling keeps starting positions apart; objects may still pass through each other later.
    for _ in range(30):
        r, phi = SCENE_RADIUS * math.sqrt(_uniform(g, 0, 1)), _uniform(g, 0, 2 * math.pi)
        xy = torch.tensor([r * math.cos(phi), r * math.sin(phi)])
        if all((xy - p).norm() > bound + b for p, b in placed):
            break
    placed.append((xy, bound))
    z0 = bound + _uniform(g, 0.0, 0.5)
    s = torch.linspace(0, 1, frames)[:, None]
    center = torch.cat([xy, torch.tensor([z0])]).expand(frames, 3).clone()
    R0 = _random_rotation(g)
    rotation = R0.expand(frames, 3, 3).clone()
    if moving:
        # Smooth path: a straight drift plus one sinusoidal sway, at most MAX_DISPLACEMENT in the plane.
        drift = torch.randn(3, generator=g) * torch.tensor([1.0, 1.0, 0.0])
        sway = torch.randn(3, generator=g) * torch.tensor([1.0, 1.0, 0.0])
        freq, phase = _uniform(g, 0.5, 1.5), _uniform(g, 0, 2 * math.pi)
        path = drift * s + sway * (torch.sin(2 * math.pi * freq * s + phase) - math.sin(phase))
        path = path * (MAX_DISPLACEMENT * _uniform(g, 0.3, 1.0) / path.norm(dim=-1).max().clamp_min(1e-6))
        hop = min(0.3, z0 - bound) * torch.sin(math.pi * s[:, 0] * _uniform(g, 0.5, 2.0)).abs()
        path[:, 2] = hop * (1 if _uniform(g, 0, 1) < 0.5 else 0)
        center = center + path
        axis = torch.randn(3, generator=g)
        angle = _uniform(g, -math.pi / 2, math.pi / 2) * s[:, 0]
        rotation = axis_angle_to_matrix(axis.expand(frames, 3), angle) @ R0
    return kind, size, rotation, center, bound


def _camera_trajectory(g: torch.Generator, cfg: SynthConfig, start: torch.Tensor, center: torch.Tensor, elevation: float):
    kind = cfg.camera_motions[int(torch.randint(len(cfg.camera_motions), (1,), generator=g))]
    sign = 1.0 if _uniform(g, 0, 1) < 0.5 else -1.0
    T = cfg.frames
    if kind == "orbit":
        return kind, traj.orbit(start, T, sign * _uniform(g, 10, 40), center=center, up=torch.tensor([0.0, 0.0, 1.0]))
    if kind == "arc":
        # Never below 5 degrees of elevation, so the camera stays above the ground.
        lo = -min(15.0, max(0.0, elevation - 5.0))
        return kind, traj.arc(start, T, _uniform(g, lo, 15.0), center=center)
    if kind == "dolly":
        return kind, traj.dolly(start, T, sign * _uniform(g, 0.5, 1.5))
    if kind == "pan":
        return kind, traj.pan(start, T, sign * _uniform(g, 5, 15))
    if kind == "tilt":
        return kind, traj.tilt(start, T, sign * _uniform(g, 3, 8))
    if kind == "random":
        return kind, traj.smooth_random(start, T, generator=g, max_translation=0.6, max_degrees=6.0)
    return kind, traj.static(start, T)


def sample_scene(cfg: SynthConfig, generator: torch.Generator) -> tuple[Scene, dict]:
    """One random scene (batch of 1) and its description, all drawn from ``generator`` (CPU).

    Options that draw extra random numbers (several layouts, photographs) draw them only when enabled, so the clips
    of a configuration without them stay what they were.
    """
    g, T, V = generator, cfg.frames, cfg.views
    if len(cfg.layouts) > 1 or cfg.layouts[0] != "objects":
        layout = cfg.layouts[int(torch.randint(len(cfg.layouts), (1,), generator=g))] if len(cfg.layouts) > 1 \
            else cfg.layouts[0]
        if layout == "room":
            from .rooms import sample_room

            return sample_room(cfg, g)

    def photo(mapping: int, size: torch.Tensor):
        return (mapping, size) if cfg.photo_prob > 0 and _uniform(g, 0, 1) < cfg.photo_prob else None

    dynamic = _uniform(g, 0, 1) < cfg.dynamic_prob
    num_objects = int(torch.randint(cfg.min_objects, cfg.max_objects + 1, (1,), generator=g))
    shapes = [DOME, GROUND]
    sizes = [torch.full((3,), cfg.dome_radius), torch.ones(3)]
    rotations = [torch.eye(3).expand(T, 3, 3)] * 2
    centers = [torch.zeros(T, 3)] * 2
    textures = [
        sample_texture(g, cfg.dome_radius * 0.5, kinds=(NOISE, BLOBS)),
        sample_texture(g, 4.0, z_offset=0.5, photo=photo(PLANE_XY, torch.ones(3))),
    ]
    placed: list = []
    objects = []
    for _ in range(num_objects):
        moving = dynamic and _uniform(g, 0, 1) < cfg.moving_prob
        kind, size, rot, ctr, bound = _sample_object(g, T, moving, placed)
        shapes.append(kind)
        sizes.append(size)
        rotations.append(rot)
        centers.append(ctr)
        mapping = {SPHERE: SPHERICAL, BOX: BOX_FACES, CYLINDER: CYLINDRICAL}[kind]
        textures.append(sample_texture(g, 2 * bound, photo=photo(mapping, size)))
        objects.append({"shape": SHAPE_NAMES[kind], "moving": moving})

    # Cameras: neighbouring views `step` degrees apart around a common target, each on its own trajectory.
    baseline = cfg.baseline if cfg.baseline != "mixed" else ("small" if _uniform(g, 0, 1) < 0.5 else "wide")
    step = _uniform(g, 3, 12) if baseline == "small" else _uniform(g, 25, 70)
    target = torch.tensor([0.0, 0.0, 0.6]) + 0.2 * torch.randn(3, generator=g)
    azimuth0 = _uniform(g, 0, 360)
    w2c, K, motions = [], [], []
    for v in range(V):
        azimuth = math.radians(azimuth0 + v * step + _uniform(g, -1, 1))
        elevation = _uniform(g, 8, 35)
        distance = _uniform(g, 6.5, 9.0)
        eye = target + distance * torch.tensor(
            [math.cos(azimuth) * math.cos(math.radians(elevation)), math.sin(azimuth) * math.cos(math.radians(elevation)),
             math.sin(math.radians(elevation))]
        )
        motion, c2w = _camera_trajectory(g, cfg, look_at(eye, target), target, elevation)
        motions.append(motion)
        w2c.append(c2w_to_w2c(c2w))
        fov = math.radians(_uniform(g, *cfg.fov_degrees))
        fx = cfg.width / 2 / math.tan(fov / 2)
        fy = fx * _uniform(g, 0.97, 1.03)
        cx = (cfg.width - 1) / 2 + 0.02 * cfg.width * float(torch.randn((), generator=g))
        cy = (cfg.height - 1) / 2 + 0.02 * cfg.height * float(torch.randn((), generator=g))
        K.append(make_intrinsics(fx, fy, cx, cy).expand(T, 3, 3))

    light = torch.tensor([_uniform(g, -1, 1), _uniform(g, -1, 1), _uniform(g, 0.6, 1.5)])
    scene = Scene(
        shape=torch.tensor([shapes]),
        size=torch.stack(sizes)[None],
        rotation=torch.stack(rotations)[None],
        center=torch.stack(centers)[None],
        textures=Textures(**{k: v[None] for k, v in vars(Textures.stack(textures)).items()}),
        light=(light / light.norm())[None],
        ambient=torch.tensor([_uniform(g, 0.3, 0.5)]),
        w2c=torch.stack(w2c)[None].float(),
        K=torch.stack(K)[None].float(),
        height=cfg.height,
        width=cfg.width,
    )
    info = {"layout": "objects", "dynamic": dynamic, "baseline": baseline, "view_step_degrees": step, "camera_motions": motions,
            "objects": objects}
    return scene, info
