"""driftloop: keep a SageMaker product recommender fresh by reacting to drift."""

__version__ = "0.1.0"
