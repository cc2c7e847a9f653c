"""Objectives: architecture scores as pure functions of a spec (no torch)."""

from archsearch.objectives.deepmad import DEPTH_PENALTY_SCALE, DeepMADScore, deepmad_score, depth_penalty, stage_ends

__all__ = ["DEPTH_PENALTY_SCALE", "DeepMADScore", "deepmad_score", "depth_penalty", "stage_ends"]
