"""What every step Lambda receives: the state machine's data and its context object (``$$``)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from driftloop.errors import InvalidInputError
from driftloop.pipeline.contracts import Contract, Evaluation, Merge, RunDescription, Training, problems

StepResult = TypeVar("StepResult", bound=Contract)


class ExecutionContext(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str = Field(alias="Id")
    name: str = Field(alias="Name", min_length=1, max_length=80)
    start_time: str = Field(alias="StartTime")
    input: Any = Field(alias="Input", default=None)


class StateContext(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: str = Field(alias="Name")
    entered_time: str = Field(alias="EnteredTime")
    retry_count: int = Field(alias="RetryCount", default=0, ge=0)


class ContextObject(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    execution: ExecutionContext = Field(alias="Execution")
    state: StateContext = Field(alias="State")


class StepInvocation(BaseModel):
    """``{"state.$": "$", "context.$": "$$"}`` as every Task of retrain.asl.json passes it. Earlier steps'
    results are read through their contracts (``invocation.merge.dataset_dir``)."""

    state: dict[str, Any]
    context: ContextObject

    @property
    def run(self) -> dict[str, Any]:
        """``$.admission.run`` as plain data, checked against ``RunDescription``."""
        admission = self.state.get("admission")
        run = admission.get("run") if isinstance(admission, dict) else None
        return self._earlier("admission.run", RunDescription, run).dump()

    @property
    def merge(self) -> Merge:
        return self._earlier("merge", Merge)

    @property
    def training(self) -> Training:
        return self._earlier("training", Training)

    @property
    def evaluation(self) -> Evaluation:
        return self._earlier("evaluation", Evaluation)

    def result(self, step: str) -> dict[str, Any]:
        """An earlier step's result (``$.<step>``) as plain data, empty when that step has not run: for the
        rollout's steps, which carry their own progress from one call to the next."""
        value = self.state.get(step)
        return value if isinstance(value, dict) else {}

    def _earlier(self, step: str, contract: type[StepResult], value: Any = None) -> StepResult:
        value = self.state.get(step) if value is None else value
        if value is None:
            raise InvalidInputError(f"$.{step} is missing: the step that writes it has not run before this one")
        try:
            return contract.model_validate(value)
        except ValidationError as error:
            raise InvalidInputError(f"$.{step} does not match its contract {contract.__name__}: "
                                    f"{problems(error)}") from error
