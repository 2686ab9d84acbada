"""What every step Lambda receives: the state machine's data and its context object (``$$``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    """``{"state.$": "$", "context.$": "$$"}`` as every Task of retrain.asl.json passes it."""

    state: dict[str, Any]
    context: ContextObject

    @property
    def run(self) -> dict[str, Any]:
        return self.state["admission"]["run"]

    def result(self, step: str) -> dict[str, Any]:
        """An earlier step's result (``$.<step>``), empty when that step has not run."""
        value = self.state.get(step)
        return value if isinstance(value, dict) else {}
