"""Objectives: architecture scores as pure functions of a spec (no torch)."""

from archsearch.objectives.deepmad import DEPTH_PENALTY_SCALE, DeepMADScore, deepmad_score, depth_penalty, stage_ends
from archsearch.objectives.mci import MCiScore, mci_score

__all__ = ["DEPTH_PENALTY_SCALE", "DeepMADScore", "MCiScore", "deepmad_score", "depth_penalty", "mci_score", "stage_ends"]
