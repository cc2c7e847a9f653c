"""Optuna studies of candidates: validation trials, search queues and workers, pruning runs, keys, resume
(``archsearch validate`` / ``search`` / ``worker`` / ``prune`` / ``results``)."""

from archsearch.study.proposals import ORIGINS, neighbours, propose
from archsearch.study.prune import record_prune
from archsearch.study.queue import SearchQueue, open_storage
from archsearch.study.search import SearchPlan, plan_search
from archsearch.study.storage import STORAGE_ENV, check_storage, mask_url, open_rdb
from archsearch.study.store import ValidationStudy, candidate_key, default_storage
from archsearch.study.validate import ROW_KEYS, load_results, run_location, validate_run
from archsearch.study.worker import WorkerSummary, run_worker, train_proposal

__all__ = [
    "ORIGINS", "ROW_KEYS", "STORAGE_ENV", "SearchPlan", "SearchQueue", "ValidationStudy", "WorkerSummary",
    "candidate_key", "check_storage", "default_storage", "load_results", "mask_url", "neighbours", "open_rdb",
    "open_storage", "plan_search", "propose", "record_prune", "run_location", "run_worker", "train_proposal",
    "validate_run",
]
