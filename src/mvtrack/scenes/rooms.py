"""RealEstate10K-like scenes for the engine: a room (floor, four walls, ceiling), furniture-like boxes on the floor,
panels on the walls (pictures, doors, windows), a few free-standing objects; photographic or procedural textures;
a camera walking through it as RealEstate10K's do (forward, turning, sideways, slow arcs) at eye height.

The views of a room clip are the same walk seen at other instants (the scene is static, so any instant is a view):
``interleaved`` between the source's frames (what RealEstate10K's held-out frames are, ``near``), ``ahead`` further
along the walk (``far``), or ``offset`` on a parallel walk a little aside (a second camera). World frame: z up,
floor z = 0; metres.
"""

from __future__ import annotations

import math

import torch

from mvtrack.geometry import c2w_to_w2c, make_intrinsics
from mvtrack.geometry.rotations import axis_angle_to_matrix

from .photos import BOX_FACES, CYLINDRICAL, PLANE_XY, SPHERICAL
from .scene import BOX, CYLINDER, DOME, GROUND, SHAPE_NAMES, SPHERE, Scene, _sample_object, _uniform
from .textures import BLOBS, NOISE, Textures, sample_texture

ROOM_MOTIONS = ("walk", "turn", "sideways", "arc")
ROOM_VIEWS = ("interleaved", "ahead", "offset")
WALL = 0.05  # half thickness of walls, ceiling and panels (m)


def _texture(g, cfg, extent: float, mapping: int, size: torch.Tensor, kinds=range(4)) -> Textures:
    photo = (mapping, size) if _uniform(g, 0, 1) < cfg.photo_prob else None
    return sample_texture(g, extent, kinds=kinds, photo=photo)


def _plain(g, extent: float) -> Textures:
    """A painted wall: low-contrast noise around one pale colour (real walls are nearly textureless)."""
    texture = sample_texture(g, extent, kinds=(NOISE,))
    base = 0.6 + 0.35 * torch.rand(3, generator=g)
    texture.colors = torch.stack([base, (base * (0.9 + 0.08 * torch.rand(3, generator=g))).clamp(0, 1)])
    return texture


def _walk(g: torch.Generator, motion: str, width: float, depth: float):
    """A walk ``c2w(s)`` through the room for s in [0, 2] (the source covers [0, 1]; ``ahead`` views go on):
    returns a function of a (T,) tensor of s giving (T, 4, 4) OpenCV camera-to-world poses."""
    margin = 0.6
    x0 = _uniform(g, -width / 2 + margin, width / 2 - margin)
    y0 = _uniform(g, -depth / 2 + margin, depth / 2 - margin)
    eye_height = _uniform(g, 1.2, 1.7)
    heading = math.atan2(-y0, -x0) + _uniform(g, -0.6, 0.6)  # roughly towards the room's middle
    pitch = math.radians(_uniform(g, -10, 5))
    length = _uniform(g, 0.4, 1.4)  # metres over the source's span (half of s in [0, 2])
    turn = math.radians(_uniform(g, 10, 40)) * (1 if _uniform(g, 0, 1) < 0.5 else -1)
    radius = _uniform(g, 1.5, 3.0)

    def pose(s: torch.Tensor) -> torch.Tensor:
        s = s.double()
        yaw = torch.full_like(s, heading)
        forward = torch.stack([torch.cos(yaw), torch.sin(yaw), torch.zeros_like(s)], -1)
        side = torch.stack([torch.sin(yaw), -torch.cos(yaw), torch.zeros_like(s)], -1)  # the camera's right
        start = torch.tensor([x0, y0, eye_height], dtype=torch.float64)
        if motion == "walk":
            centre = start + length * s[:, None] * forward
        elif motion == "turn":  # walking while turning, as most RealEstate10K clips do
            yaw = heading + turn * s
            centre = start + 0.5 * length * s[:, None] * forward
        elif motion == "sideways":
            centre = start + length * s[:, None] * side
            yaw = heading + 0.3 * turn * s
        else:  # arc: around a point ahead
            ang = turn * s
            pivot = start + radius * forward[0]
            yaw = heading + ang
            centre = pivot - radius * torch.stack([torch.cos(yaw), torch.sin(yaw), torch.zeros_like(s)], -1)
        z = torch.stack([torch.cos(yaw) * math.cos(pitch), torch.sin(yaw) * math.cos(pitch),
                         torch.full_like(s, math.sin(pitch))], -1)  # optical axis
        x = torch.stack([torch.sin(yaw), -torch.cos(yaw), torch.zeros_like(s)], -1)  # right, horizontal
        y = torch.linalg.cross(z, x)  # down
        c2w = torch.zeros(len(s), 4, 4, dtype=torch.float64)
        c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = x, y, z, centre
        c2w[:, 3, 3] = 1
        return c2w

    return pose


def sample_room(cfg, generator: torch.Generator) -> tuple[Scene, dict]:
    """One random room clip (batch of 1) and its description, all drawn from ``generator`` (see the module
    docstring)."""
    g, T, V = generator, cfg.frames, cfg.views
    width, depth, height = _uniform(g, 3.5, 7.0), _uniform(g, 3.5, 8.0), _uniform(g, 2.4, 3.0)
    shapes = [DOME, GROUND]
    sizes = [torch.full((3,), cfg.dome_radius), torch.ones(3)]
    textures = [sample_texture(g, cfg.dome_radius * 0.5, kinds=(NOISE, BLOBS)),
                _texture(g, cfg, 2.0, PLANE_XY, torch.ones(3))]
    centres = [torch.zeros(3), torch.zeros(3)]
    rotations = [torch.eye(3), torch.eye(3)]

    def box(centre, half, extent, plain=False):
        shapes.append(BOX)
        sizes.append(torch.as_tensor(half, dtype=torch.float32))
        centres.append(torch.as_tensor(centre, dtype=torch.float32))
        rotations.append(torch.eye(3))
        textures.append(_plain(g, extent) if plain else _texture(g, cfg, extent, BOX_FACES, sizes[-1]))

    # 1. Walls and ceiling: thin boxes just outside the room's extent, most often painted
    plain = _uniform(g, 0, 1) < 0.6
    for sign in (-1, 1):
        box([sign * (width / 2 + WALL), 0, height / 2], [WALL, depth / 2 + 2 * WALL, height / 2], 2.5, plain)
        box([0, sign * (depth / 2 + WALL), height / 2], [width / 2 + 2 * WALL, WALL, height / 2], 2.5, plain)
    box([0, 0, height + WALL], [width / 2 + 2 * WALL, depth / 2 + 2 * WALL, WALL], 3.0, plain)
    # 2. Furniture against the walls, panels on them
    objects = []
    for _ in range(int(torch.randint(2, 6, (1,), generator=g))):
        w, d, h = _uniform(g, 0.3, 1.0), _uniform(g, 0.25, 0.6), _uniform(g, 0.25, 0.9)
        along, side = _uniform(g, -1, 1), (1 if _uniform(g, 0, 1) < 0.5 else -1)
        if _uniform(g, 0, 1) < 0.5:  # against a long wall, or a short one (turned)
            box([along * (width / 2 - w), side * (depth / 2 - d), h], [w, d, h], 1.0)
        else:
            box([side * (width / 2 - d), along * (depth / 2 - w), h], [d, w, h], 1.0)
        objects.append({"shape": "box", "role": "furniture", "moving": False})
    for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
        w, h = _uniform(g, 0.25, 0.7), _uniform(g, 0.3, 0.9)
        z = _uniform(g, h + 0.1, height - h - 0.1) if height - 2 * h > 0.3 else height / 2
        if _uniform(g, 0, 1) < 0.5:
            y = math.copysign(depth / 2 - WALL, _uniform(g, -1, 1))
            box([_uniform(g, -width / 2 + w, width / 2 - w), y, z], [w, WALL, h], 1.0)
        else:
            x = math.copysign(width / 2 - WALL, _uniform(g, -1, 1))
            box([x, _uniform(g, -depth / 2 + w, depth / 2 - w), z], [WALL, w, h], 1.0)
        objects.append({"shape": "box", "role": "panel", "moving": False})
    # 3. Free-standing objects (moving in a dynamic clip), placed around the room's middle
    dynamic = _uniform(g, 0, 1) < cfg.dynamic_prob
    placed: list = []
    per_frame = []
    for _ in range(int(torch.randint(0, 3, (1,), generator=g))):
        moving = dynamic and _uniform(g, 0, 1) < cfg.moving_prob
        kind, size, rot, ctr, bound = _sample_object(g, T, moving, placed)
        mapping = {SPHERE: SPHERICAL, BOX: BOX_FACES, CYLINDER: CYLINDRICAL}[kind]
        shapes.append(kind)
        sizes.append(size)
        centres.append(torch.zeros(3))  # replaced by the per-frame path below
        rotations.append(torch.eye(3))
        textures.append(_texture(g, cfg, 2 * bound, mapping, size))
        per_frame.append((len(shapes) - 1, rot, ctr))
        objects.append({"shape": SHAPE_NAMES[kind], "role": "object", "moving": moving})
    rotation = torch.stack(rotations)[:, None].expand(-1, T, 3, 3).clone()  # (I, T, 3, 3)
    center = torch.stack(centres)[:, None].expand(-1, T, 3).clone()
    for i, rot, ctr in per_frame:
        rotation[i], center[i] = rot, ctr * torch.tensor([0.6, 0.6, 1.0])  # nearer the middle, clear of furniture

    # 4. The walk and its views
    motion = ROOM_MOTIONS[int(torch.randint(len(ROOM_MOTIONS), (1,), generator=g))]
    pose = _walk(g, motion, width, depth)
    s = torch.linspace(0, 1, T)
    step = 1 / max(T - 1, 1)
    w2c, K, kinds = [], [], []
    fov = math.radians(_uniform(g, *cfg.fov_degrees))
    fx = cfg.width / 2 / math.tan(fov / 2)
    for v in range(V):
        kind = "source" if v == 0 else cfg.room_views[int(torch.randint(len(cfg.room_views), (1,), generator=g))]
        if kind in ("source", "offset"):
            c2w = pose(s)
            if kind == "offset":  # a parallel walk, a little aside and turned
                shift = torch.tensor([_uniform(g, -0.3, 0.3), _uniform(g, -0.15, 0.15), _uniform(g, 0.05, 0.3)])
                turn = axis_angle_to_matrix(torch.tensor([0.0, 1.0, 0.0]), torch.tensor(math.radians(_uniform(g, -8, 8))))
                c2w[:, :3, 3] += (c2w[:, :3, :3] @ shift.double())
                c2w[:, :3, :3] = c2w[:, :3, :3] @ turn.double()
        elif kind == "interleaved":
            c2w = pose(s + step * _uniform(g, 0.3, 0.7))
        else:  # ahead
            c2w = pose(s + _uniform(g, 0.5, 1.0))
        kinds.append(kind)
        w2c.append(c2w_to_w2c(c2w).float())
        K.append(make_intrinsics(fx, fx, (cfg.width - 1) / 2, (cfg.height - 1) / 2).expand(T, 3, 3))
    light = torch.tensor([_uniform(g, -1, 1), _uniform(g, -1, 1), _uniform(g, 0.6, 1.5)])
    scene = Scene(
        shape=torch.tensor([shapes]),
        size=torch.stack(sizes)[None],
        rotation=rotation[None],
        center=center[None],
        textures=Textures(**{k: v[None] for k, v in vars(Textures.stack(textures)).items()}),
        light=(light / light.norm())[None],
        ambient=torch.tensor([_uniform(g, 0.45, 0.7)]),  # indoor light is soft
        w2c=torch.stack(w2c)[None],
        K=torch.stack(K)[None].float(),
        height=cfg.height,
        width=cfg.width,
    )
    info = {"layout": "room", "dynamic": dynamic, "room": [width, depth, height], "camera_motions": [motion] * V,
            "views": kinds, "objects": objects}
    return scene, info
