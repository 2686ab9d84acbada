"""The steps of the retraining state machine: one module per Lambda, each ``run(invocation, services)``."""
