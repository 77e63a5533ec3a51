"""Streaming, resumable batch runs over JSONL / CSV / Parquet files of posts."""
