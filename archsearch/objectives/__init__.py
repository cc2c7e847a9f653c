"""Objectives: architecture scores as pure functions of a spec (no torch)."""

from archsearch.objectives.deepmad import DEPTH_PENALTY_SCALE, DeepMADScore, deepmad_score, depth_penalty, stage_ends
from archsearch.objectives.tinyvit import block_entropy, stage_entropy, tinyvit_capacity

__all__ = [
    "DEPTH_PENALTY_SCALE", "DeepMADScore", "block_entropy", "deepmad_score", "depth_penalty", "stage_entropy", "stage_ends",
    "tinyvit_capacity",
]
