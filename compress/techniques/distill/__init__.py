"""Distillation and architecture swaps: the ``distill`` and ``swap`` ops.

Modules: ``params`` (``DistillOpParams``, shared by both ops), ``op`` (``distill``: FPD on every student
stack against the teacher's last, optional feature adapters), ``swap`` (a student from the current
config with fields replaced), ``transplant`` (copying weights, pairing blocks, function-preserving
starts) and ``blockwise`` (new blocks imitate the blocks they replace). Losses, the pair check and the
adapters live in the core (``compress.distill``, ``compress.train``) for any technique that trains.
"""
from compress.techniques.distill.blockwise import block_mse, blockwise_init
from compress.techniques.distill.op import distill
from compress.techniques.distill.params import DistillOpParams, FeatureLayerParams
from compress.techniques.distill.swap import SwapParams, build_student, student_config, swap
from compress.techniques.distill.transplant import BlockPlan, copy_matching, plan_blocks, preserve_function

__all__ = ["BlockPlan", "DistillOpParams", "FeatureLayerParams", "SwapParams", "block_mse", "blockwise_init",
           "build_student", "copy_matching", "distill", "plan_blocks", "preserve_function", "student_config",
           "swap"]
