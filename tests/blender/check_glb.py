"""Blender, as a real glTF client, reads an exported avatar GLB (run with Blender's Python:
``python check_glb.py GLB BONE OUT.json [RENDER_DIR]``; bpy from the package index, or
``blender -b --python check_glb.py -- GLB BONE OUT.json``).

Imports the GLB with Blender's own glTF importer and writes what it found as JSON: the
armatures, bones, meshes, vertex groups, per-vertex weight sums; the vertices that move
when BONE is turned by 90 degrees (with the clip switched off), against the weights of
BONE's subtree; how far vertices move between two frames of the baked clip. With
RENDER_DIR it also renders those two frames (Workbench, CPU) to PNG.
"""

import json
import math
import sys

import bpy
import numpy as np

argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else sys.argv[1:]
glb, bone_name, out = argv[0], argv[1], argv[2]
render_dir = argv[3] if len(argv) > 3 else None

bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=glb)
armatures = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
report = {
    "armatures": len(armatures),
    "meshes": len(meshes),
    "bones": [len(a.data.bones) for a in armatures],
    "actions": [a.name for a in bpy.data.actions],
}
skinned = [m for m in meshes if any(mod.type == "ARMATURE" for mod in m.modifiers)]
report["skinned_meshes"] = len(skinned)  # the importer may add bone-shape meshes too
arm, mesh = armatures[0], skinned[0]
groups = {g.index: g.name for g in mesh.vertex_groups}
report["vertex_groups"] = len(groups)
n = len(mesh.data.vertices)
bones = {b.name for b in arm.data.bones}
report["groups_are_bones"] = set(groups.values()) <= bones
weights = np.zeros((n, max(len(groups), 1)))
for v in mesh.data.vertices:
    for g in v.groups:
        weights[v.index, g.group] = g.weight
report["weight_sum_min"] = float(weights.sum(1).min())
report["weight_sum_max"] = float(weights.sum(1).max())
report["vertices"] = n


def evaluated() -> np.ndarray:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    m = mesh.evaluated_get(depsgraph).to_mesh()
    co = np.empty(len(m.vertices) * 3)
    m.vertices.foreach_get("co", co)
    mesh.evaluated_get(depsgraph).to_mesh_clear()
    return (np.array(mesh.matrix_world) @ np.c_[co.reshape(-1, 3), np.ones(n)].T).T[:, :3]


scene = bpy.context.scene
action = arm.animation_data.action if arm.animation_data else None
if action is not None:
    start, end = (int(round(f)) for f in action.frame_range)
    report["frame_range"] = [start, end]
    a, b = start, start + max(1, (end - start) // 2)
    scene.frame_set(a)
    first = evaluated()
    scene.frame_set(b)
    second = evaluated()
    report["clip_max_move"] = float(np.linalg.norm(second - first, axis=1).max())
    report["clip_frames"] = [a, b]
    if render_dir:
        lo, hi = np.minimum(first.min(0), second.min(0)), np.maximum(first.max(0), second.max(0))
        centre = (lo + hi) / 2
        cam_data = bpy.data.cameras.new("cam")
        cam_data.lens_unit = "FOV"
        cam_data.angle = math.radians(35)
        cam = bpy.data.objects.new("cam", cam_data)
        scene.collection.objects.link(cam)
        # The avatar faces glTF's +z, which Blender's importer turns into -y: look from -y.
        dist = float(hi[2] - lo[2]) * 1.9
        cam.location = (centre[0], centre[1] - dist, centre[2])
        cam.rotation_euler = (math.radians(90), 0, 0)
        scene.camera = cam
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.display.shading.light = "FLAT"
        scene.display.shading.color_type = "TEXTURE"
        scene.render.resolution_x, scene.render.resolution_y = 360, 480
        scene.render.film_transparent = False
        for frame in (a, b):
            scene.frame_set(frame)
            scene.render.filepath = f"{render_dir}/blender_frame_{frame:03d}.png"
            bpy.ops.render.render(write_still=True)
    arm.animation_data.action = None

# Rest pose, then the bone turned by 90 degrees.
for pb in arm.pose.bones:
    pb.rotation_mode = "QUATERNION"
    pb.rotation_quaternion = (1, 0, 0, 0)
    pb.location = (0, 0, 0)
scene.frame_set(scene.frame_current)
rest = evaluated()
pose_bone = arm.pose.bones[bone_name]
pose_bone.rotation_quaternion = (math.cos(math.pi / 4), math.sin(math.pi / 4), 0, 0)  # 90 degrees
bpy.context.view_layer.update()
turned = evaluated()
moved = np.linalg.norm(turned - rest, axis=1) > 1e-4
subtree = {bone_name} | {c.name for c in arm.data.bones[bone_name].children_recursive}
columns = [i for i, name in groups.items() if name in subtree]
subtree_weight = weights[:, columns].sum(1)
report["bone_moved"] = int(moved.sum())
report["bone_moved_outside_subtree"] = int((moved & (subtree_weight == 0)).sum())
report["bone_subtree_vertices"] = int((subtree_weight > 0).sum())
report["bone_subtree_full_not_moved"] = int(((subtree_weight > 0.99) & ~moved).sum())
mirror = (
    bone_name.replace(".L", ".R")
    if bone_name.endswith(".L")
    else bone_name.replace("left", "right")
)
by_name = {name: i for i, name in groups.items()}
for key, name in (("head_moved", "head"), ("other_arm_moved", mirror)):
    owned = weights[:, by_name[name]] > 0.5 if name in by_name else np.zeros(n, bool)
    report[key] = int((moved & owned).sum())
    report[key.replace("moved", "vertices")] = int(owned.sum())
report["rest_height"] = float(rest[:, 2].max() - rest[:, 2].min())
with open(out, "w") as f:
    json.dump(report, f)
