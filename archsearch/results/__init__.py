"""Tables and Pareto data computed from solve results and studies (pandas; no torch, no matplotlib)."""

from archsearch.results.architecture import Unit, arch_units
from archsearch.results.formatting import duration, grouped, human
from archsearch.results.pareto import Direction, Front2D, front_2d, hypervolume_2d, non_dominated, pareto_ranks
from archsearch.results.references import REFERENCES, Reference, reference_frame
from archsearch.results.runs import COLUMNS, candidate_frame, load_run, merge_runs
from archsearch.results.summary import (
    COST_AXES, DESIGN_COLUMNS, KINDS, REFERENCE_DATASETS, ReportData, ValidatedFront, report_data, run_frame, validated_fronts,
)
from archsearch.results.validation import (
    COMPARABLE, Validation, aggregate_seeds, load_validation, training_groups, training_label, validated_frame,
)

__all__ = [
    "COLUMNS", "COMPARABLE", "COST_AXES", "DESIGN_COLUMNS", "KINDS", "REFERENCES", "REFERENCE_DATASETS", "Direction",
    "Front2D", "Reference", "ReportData", "Unit", "Validation", "ValidatedFront", "aggregate_seeds", "arch_units",
    "candidate_frame", "duration", "front_2d", "grouped", "human", "hypervolume_2d", "load_run", "load_validation",
    "merge_runs", "non_dominated", "pareto_ranks", "reference_frame", "report_data", "run_frame", "training_groups",
    "training_label", "validated_fronts", "validated_frame",
]
