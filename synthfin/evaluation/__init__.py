"""Stylized facts, real-versus-synthetic scores and the report."""

from synthfin.evaluation.evaluate import Evaluation, evaluate, evaluate_windows

__all__ = ["Evaluation", "evaluate", "evaluate_windows"]
