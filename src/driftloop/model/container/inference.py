"""SageMaker inference script (``SAGEMAKER_PROGRAM``), shipped at the top of sourcedir.tar.gz."""

from driftloop.model.inference import input_fn, model_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
