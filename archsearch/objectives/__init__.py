"""Objectives: architecture scores as pure functions of a spec (no torch)."""

from archsearch.objectives.deepmad import DEPTH_PENALTY_SCALE, DeepMADScore, deepmad_score, depth_penalty, madnas_score, stage_ends
from archsearch.objectives.nvit import block_profile, nvit_block_entropy, nvit_entropy
from archsearch.objectives.stvit import AttentionInteractions, attention_interactions
from archsearch.objectives.tinyvit import block_entropy, stage_entropy, tinyvit_capacity
from archsearch.objectives.mci import MCiScore, mci_score

__all__ = [
    "DEPTH_PENALTY_SCALE", "DeepMADScore", "deepmad_score", "depth_penalty", "madnas_score", "stage_ends", "block_profile",
    "nvit_block_entropy", "nvit_entropy", "AttentionInteractions", "attention_interactions", "block_entropy",
    "stage_entropy", "tinyvit_capacity", "MCiScore", "mci_score",
]
