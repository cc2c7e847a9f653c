"""Optuna studies of validated candidates: trials, keys, resume (``archsearch validate`` / ``results``)."""

from archsearch.study.prune import record_prune
from archsearch.study.store import ValidationStudy, candidate_key, default_storage
from archsearch.study.validate import ROW_KEYS, load_results, run_location, validate_run

__all__ = ["ROW_KEYS", "ValidationStudy", "candidate_key", "default_storage", "load_results", "record_prune", "run_location",
           "validate_run"]
