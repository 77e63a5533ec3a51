"""Streaming, resumable batch runs over JSONL / CSV / Parquet files of posts.

``readers`` turns a user's file into rows (bad rows become ``RowError``s), ``output`` appends
records so that a kill loses and repeats nothing, and ``runner.run`` ties them to a model's
``predict``. This is what ``somelvlm analyze INPUT --out OUT`` runs.
"""

from somelvlm.batch.readers import Row, RowError, read_rows
from somelvlm.batch.runner import ModelFailing, RunConfig, RunSummary, run

__all__ = ["ModelFailing", "Row", "RowError", "RunConfig", "RunSummary", "read_rows", "run"]
