"""MPII joint order, flip pairs, limbs and the PCKh table columns.

One place for the 16-joint MPII conventions so data, metrics and drawing agree.
"""

JOINT_NAMES: tuple[str, ...] = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)

# Left/right partners swapped by a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

# Bones for drawing: (parent, child).
LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 6), (5, 4), (4, 3), (3, 6), (6, 7), (7, 8), (8, 9),
    (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
)

# Columns of the standard MPII PCKh table: name -> joints averaged (left/right).
PCKH_COLUMNS: dict[str, tuple[int, ...]] = {
    "Head": (9,),
    "Shoulder": (12, 13),
    "Elbow": (11, 14),
    "Wrist": (10, 15),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ankle": (0, 5),
}
# Joints in the official Mean: all but pelvis (6) and thorax (7).
MEAN_JOINTS: tuple[int, ...] = tuple(j for j in range(NUM_JOINTS) if j not in (6, 7))


def flip_permutation() -> list[int]:
    """Index permutation that maps joint j to its mirror partner (identity for centre joints)."""
    perm = list(range(NUM_JOINTS))
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm
