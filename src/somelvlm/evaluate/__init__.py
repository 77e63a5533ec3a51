"""Scoring: registered metrics, the evaluation harness and its reports."""
