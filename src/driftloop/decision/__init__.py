"""The cost-aware retrain decision: signals measured at a trigger, money on both sides, and the rule.

Pure (no AWS): the pipeline's decision step and the backtest use the very same objects.
"""

from driftloop.decision.challenger import (
    ChallengerCut,
    ChallengerFitPlan,
    challenger_cut,
    plan_challenger_fit,
    sample_users,
)
from driftloop.decision.cost import NDCG_POINT, RetrainCostModel
from driftloop.decision.policy import (
    POLICIES,
    CostAwareRetrainPolicy,
    DriftRetrainPolicy,
    RetrainDecision,
    RetrainPolicy,
    ScheduleRetrainPolicy,
    make_policy,
)
from driftloop.decision.signals import (
    AccuracyEstimate,
    ChallengerGain,
    TriggerSignals,
    measure_accuracy,
    measure_challenger_gain,
    measure_signals,
)

__all__ = [
    "NDCG_POINT",
    "POLICIES",
    "AccuracyEstimate",
    "ChallengerCut",
    "ChallengerFitPlan",
    "ChallengerGain",
    "CostAwareRetrainPolicy",
    "DriftRetrainPolicy",
    "RetrainCostModel",
    "RetrainDecision",
    "RetrainPolicy",
    "ScheduleRetrainPolicy",
    "TriggerSignals",
    "challenger_cut",
    "make_policy",
    "measure_accuracy",
    "measure_challenger_gain",
    "measure_signals",
    "plan_challenger_fit",
    "sample_users",
]
