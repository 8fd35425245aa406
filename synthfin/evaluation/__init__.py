"""Stylized facts, real-versus-synthetic scores and the report."""

from synthfin.evaluation.evaluate import Evaluation, evaluate

__all__ = ["Evaluation", "evaluate"]
