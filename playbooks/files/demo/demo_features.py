"""The demo's v3: a pyfunc wrapper around the breast-cancer pipeline whose class lives in this
module. It is logged without `code_paths`, so the model pickles a reference to `demo_features`:
it loads wherever this file is importable (the controller, where the gate runs) and nowhere else
(the serving hosts) - the classic "worked in CI" model that only a health check catches."""

import mlflow.pyfunc


class ClippedProbabilityModel(mlflow.pyfunc.PythonModel):
    """Predicts like the wrapped pipeline."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def predict(self, context, model_input, params=None):  # pylint: disable=unused-argument
        return self.pipeline.predict(model_input)
