"""Evaluation: the category classifier behind prompt adherence (classify.py)."""
