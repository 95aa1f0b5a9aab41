"""The example training entry point of the pipeline (training_pipelines: entrypoint breast_cancer:train).

The pipeline (runlocalai.mlops's training flow) fetches and validates the data, splits off the
evaluation rows, and calls train(features, target, params) with the training rows; it logs, evaluates
and registers what this returns. Replace it with your own: any module of this directory, any
function with this signature that returns a fitted scikit-learn estimator."""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train(features, target, params):
    """Standard scaling and a logistic regression (the demo's v1 recipe); params: C, max_iter."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 1000))))
    return model.fit(features, target)
