"""Treatment plans and decision support on a twin's whole posterior (see ``docs/decision.md``).

Compare plans (``compare_plans``) by the probability of reaching a target and of crossing a danger
threshold, each with its Monte Carlo error and with common random numbers across plans; choose a regimen on a
grid (``optimize_regimen``) or with a continuous dose by gradient (``optimize_dose``), see when the choice
differs from one made on a point estimate, and document the choice (``Recommendation``, stored and audited
through a ``TwinStore``).

Examples
--------
>>> from bayestwin.decision import Plan
>>> Plan.repeat(dose=100.0, interval=8.0, count=3).name
'100 mg q8h x3'
"""

from bayestwin.decision.compare import compare_plans
from bayestwin.decision.draws import PosteriorDraws
from bayestwin.decision.gradient import DoseOptimum, optimize_dose
from bayestwin.decision.kernel import trace_count
from bayestwin.decision.optimize import Constraint, RegimenChoice, choose, optimize_regimen, regimen_grid
from bayestwin.decision.plans import Intervention, Plan, ReactiveRule, Titration
from bayestwin.decision.recommendation import (
    RECOMMENDATION_SCHEMA,
    Recommendation,
    RecordSink,
    record_recommendation,
    record_recommendation_html,
)
from bayestwin.decision.result import PlanComparison
from bayestwin.decision.targets import Exceeds, InWindow, Target, TimeInRange, TimeToThreshold

__all__ = ["RECOMMENDATION_SCHEMA", "Constraint", "DoseOptimum", "Exceeds", "InWindow", "Intervention", "Plan",
           "PlanComparison", "PosteriorDraws", "ReactiveRule", "Recommendation", "RecordSink", "RegimenChoice",
           "Target", "TimeInRange", "TimeToThreshold", "Titration", "choose", "compare_plans", "optimize_dose",
           "optimize_regimen", "record_recommendation", "record_recommendation_html", "regimen_grid", "trace_count"]
