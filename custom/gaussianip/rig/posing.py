"""Linear blend skinning of 3D Gaussians: centres and orientations."""

from __future__ import annotations

from torch import Tensor

from gaussianip.rig.binding import Binding
from gaussianip.rig.rotations import matrix_to_quat, polar_rotation, quat_multiply


def pose_gaussians(
    params: dict[str, Tensor], binding: Binding, joint_transforms: Tensor
) -> dict[str, Tensor]:
    """Pose canonical Gaussians with linear blend skinning.

    Args:
        params: the Gaussians (gsplat names, pre-activation, as ``GaussianModel``):
            ``means`` [N, 3] and ``quats`` [N, 4] (wxyz) are posed; every other entry
            (``scales``, ``opacities``, ``sh0``, ``shN``) is returned unchanged, since
            a rigid motion changes neither size, opacity nor colour.
        binding: ``joint_indices`` / ``joint_weights`` [N, K] for the N Gaussians.
        joint_transforms: [..., J, 4, 4] canonical -> posed rigid transforms per joint
            (``Skeleton.joint_transforms``); leading dims (e.g. frames) batch the poses.

    Returns:
        A new dict: ``means`` [..., N, 3] = M x + t with the blended transform
        ``[M | t] = sum_k w_k T_{j_k}``; ``quats`` [..., N, 4] = q(R) * q, R the rotation
        of M's polar decomposition (exactly the limb's rotation where one joint owns the
        Gaussian), so the covariance becomes R Sigma R^T. The norm of each quaternion is
        kept (the rasterizer normalises).
    """
    idx, w = binding.joint_indices, binding.joint_weights.to(joint_transforms.dtype)
    per_gaussian = joint_transforms[..., idx, :3, :]  # [..., N, K, 3, 4]
    blended = (w[..., None, None] * per_gaussian).sum(-3)  # [..., N, 3, 4]
    means = params["means"]
    posed = dict(params)
    posed["means"] = (blended[..., :3] @ means[..., None].to(blended))[..., 0] + blended[..., 3]
    rotation = matrix_to_quat(polar_rotation(blended[..., :3]))
    posed["quats"] = quat_multiply(rotation, params["quats"].to(rotation))
    return posed
