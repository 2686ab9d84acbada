"""A/B rollout plan: the challenger's share of traffic, stage by stage.

Test stages are the stages where both variants serve. A stage at 100 % is not a test stage: moving
there is the promotion, decided while the champion still had traffic. ``holdback`` keeps that share
of traffic on the champion at every stage (a stage of 100 becomes ``100 - holdback``), so the test
goes on, as a last guard, at the largest share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftloop.errors import ConfigurationError, InvalidInputError

DEFAULT_STAGES = (10, 50, 100)


@dataclass(frozen=True)
class TrafficPlan:
    """Challenger traffic percentages per stage, strictly increasing, each in 1..100; ``holdback``
    percent of the traffic (0..99) stays with the champion at every stage.

    Parameters
    ----------
    stages
        The challenger's whole-number percentage of traffic at each stage.
    holdback
        Whole-number percentage of traffic the champion keeps at every stage.

    Example
    -------
    >>> from driftloop.traffic.stages import TrafficPlan
    >>> plan = TrafficPlan((10, 50, 100))
    >>> plan.test_stage_indices, plan.weights_for_stage(1)
    ((0, 1), {'champion': 50, 'challenger': 50})
    >>> TrafficPlan.parse("10%, 50%, 100%", holdback=5).to_dict()
    {'stages': [10, 50, 100], 'holdback': 5, 'test_stages': [10, 50, 95]}
    >>> TrafficPlan((50, 10))
    Traceback (most recent call last):
    ...
    driftloop.errors.ConfigurationError: stage weights must strictly increase, got [50, 10]
    """

    stages: tuple[int, ...] = DEFAULT_STAGES
    holdback: int = 0

    def __post_init__(self) -> None:
        stages = tuple(self.stages)
        object.__setattr__(self, "stages", stages)
        if not stages:
            raise ConfigurationError("a traffic plan needs at least one stage")
        for percent in stages:
            if isinstance(percent, bool) or not isinstance(percent, int):
                raise ConfigurationError(f"stage weights are whole percentages, got {percent!r}")
            if not 1 <= percent <= 100:
                raise ConfigurationError(f"stage weight {percent} is outside 1..100")
        if any(later <= earlier for earlier, later in zip(stages, stages[1:], strict=False)):
            raise ConfigurationError(f"stage weights must strictly increase, got {list(stages)}")
        if isinstance(self.holdback, bool) or not isinstance(self.holdback, int) or not 0 <= self.holdback < 100:
            raise ConfigurationError(f"holdback is a whole percentage in 0..99, got {self.holdback!r}")
        capped = [min(percent, 100 - self.holdback) for percent in stages]
        if len(set(capped)) < len(capped):
            raise ConfigurationError(
                f"a holdback of {self.holdback}% caps the challenger at {100 - self.holdback}%, so stages "
                f"{[p for p in stages if p >= 100 - self.holdback]} would be the same stage")
        if not self.test_stage_indices:
            raise ConfigurationError(
                f"stages {list(stages)} with holdback {self.holdback}% have no stage where both variants serve, "
                "so nothing can be compared: add a stage below 100 or a holdback")

    @classmethod
    def parse(cls, text: str, holdback: int = 0) -> TrafficPlan:
        """From ``"10,50,100"`` (spaces and an optional ``%`` per value are allowed)."""
        parts = [part.strip().removesuffix("%").strip() for part in text.split(",")]
        try:
            return cls(tuple(int(part) for part in parts), holdback)
        except ValueError as error:
            raise ConfigurationError(f"cannot read traffic stages from {text!r}: {error}") from error

    @property
    def last_stage_index(self) -> int:
        return len(self.stages) - 1

    def is_last(self, stage_index: int) -> bool:
        return self._checked(stage_index) == self.last_stage_index

    @property
    def test_stage_indices(self) -> tuple[int, ...]:
        """Stages where both variants serve: every stage but one at 100 % (without holdback)."""
        return tuple(index for index, percent in enumerate(self.stages) if min(percent, 100 - self.holdback) < 100)

    @property
    def last_test_stage_index(self) -> int:
        """The stage whose win is the promotion."""
        return self.test_stage_indices[-1]

    def challenger_percent(self, stage_index: int) -> int:
        return min(self.stages[self._checked(stage_index)], 100 - self.holdback)

    def weights_for_stage(
        self, stage_index: int, champion: str = "champion", challenger: str = "challenger"
    ) -> dict[str, int]:
        """Traffic percentages per variant at a stage; they always sum to 100."""
        if champion == challenger:
            raise ConfigurationError("champion and challenger must be different variants")
        share = self.challenger_percent(stage_index)
        return {champion: 100 - share, challenger: share}

    def to_dict(self) -> dict[str, Any]:
        return {"stages": list(self.stages), "holdback": self.holdback,
                "test_stages": [self.challenger_percent(index) for index in self.test_stage_indices]}

    def _checked(self, stage_index: int) -> int:
        if not 0 <= stage_index < len(self.stages):
            raise InvalidInputError(
                f"stage index {stage_index} is outside 0..{self.last_stage_index} of {list(self.stages)}"
            )
        return stage_index
