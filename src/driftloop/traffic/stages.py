"""A/B rollout plan: the challenger's share of traffic, stage by stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftloop.errors import ConfigurationError, InvalidInputError

DEFAULT_STAGES = (10, 50, 100)


@dataclass(frozen=True)
class TrafficPlan:
    """Challenger traffic percentages per stage, strictly increasing, each in 1..100."""

    stages: tuple[int, ...] = DEFAULT_STAGES

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

    @classmethod
    def parse(cls, text: str) -> TrafficPlan:
        """From ``"10,50,100"`` (spaces and an optional ``%`` per value are allowed)."""
        parts = [part.strip().removesuffix("%").strip() for part in text.split(",")]
        try:
            return cls(tuple(int(part) for part in parts))
        except ValueError as error:
            raise ConfigurationError(f"cannot read traffic stages from {text!r}: {error}") from error

    @property
    def last_stage_index(self) -> int:
        return len(self.stages) - 1

    def is_last(self, stage_index: int) -> bool:
        return self._checked(stage_index) == self.last_stage_index

    def challenger_percent(self, stage_index: int) -> int:
        return self.stages[self._checked(stage_index)]

    def weights_for_stage(
        self, stage_index: int, champion: str = "champion", challenger: str = "challenger"
    ) -> dict[str, int]:
        """Traffic percentages per variant at a stage; they always sum to 100."""
        if champion == challenger:
            raise ConfigurationError("champion and challenger must be different variants")
        share = self.challenger_percent(stage_index)
        return {champion: 100 - share, challenger: share}

    def to_dict(self) -> dict[str, Any]:
        return {"stages": list(self.stages)}

    def _checked(self, stage_index: int) -> int:
        if not 0 <= stage_index < len(self.stages):
            raise InvalidInputError(
                f"stage index {stage_index} is outside 0..{self.last_stage_index} of {list(self.stages)}"
            )
        return stage_index
