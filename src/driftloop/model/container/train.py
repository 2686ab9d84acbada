"""SageMaker script-mode entry point (``sagemaker_program``), shipped at the top of sourcedir.tar.gz."""

import sys

from driftloop.model.train import main

if __name__ == "__main__":
    sys.exit(main())
