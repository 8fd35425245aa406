"""Real-versus-synthetic scores against two references, long-horizon facts and the report
(the facts themselves live in :mod:`synthfin.stats`)."""

from synthfin.evaluation.evaluate import Evaluation, evaluate, evaluate_windows

__all__ = ["Evaluation", "evaluate", "evaluate_windows"]
