"""Pure statistics of returns (the ground floor: NumPy and SciPy only, no models, no I/O).

:mod:`synthfin.stats.facts` holds the estimators of the stylized facts; :mod:`synthfin.stats.
catalogue` names them once (:data:`FACTS`, :data:`LONG_FACTS`) for scores, reports and model
selection; :mod:`synthfin.stats.reducers` holds their streaming forms.
"""

from synthfin.stats.catalogue import (
                                      FACTS,
                                      FACTS_BY_NAME,
                                      LONG_FACTS,
                                      Fact,
                                      fact_statistics,
                                      stylized_facts,
)

__all__ = ["FACTS", "FACTS_BY_NAME", "LONG_FACTS", "Fact", "fact_statistics", "stylized_facts"]
