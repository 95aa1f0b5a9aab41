"""Register the molecule demo model: breast-cancer data, StandardScaler + LogisticRegression,
logged with a signature and drift/reference_profile.json (the collection's drift profile writer),
as versions 1 and 2 of NAME, alias production -> 1; then, for each further name given (e.g. a
canary), that name's version 1 from NAME's version 1 (same logged model and run). Registers only
the names that do not exist yet. Prints {"changed": bool, "versions": [...]}. Tracking URI and
credentials from MLFLOW_* variables."""

import json
import os
import sys
import tempfile

import mlflow
import mlflow.sklearn
import sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ansible_collections.runlocalai.mlops.plugins.module_utils import drift_cli, drift_engine


def exists(client, name):
    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def main(name, *others):
    client = MlflowClient()
    versions = [] if exists(client, name) else register(client, name)
    for other in others:
        if not exists(client, other):
            source = client.get_model_version(name, "1").source
            versions.append("%s/%s" % (other, mlflow.register_model(source, other).version))
    print(json.dumps({"changed": bool(versions), "versions": versions}))
    return 0


def register(client, name):
    data = load_breast_cancer(as_frame=True)
    features = data.data.copy()
    features.columns = [c.replace(" ", "_") for c in features.columns]
    train = features.iloc[::2]
    target = data.target.iloc[::2]
    tmp = tempfile.mkdtemp(prefix="molecule-model-")
    reference = os.path.join(tmp, "train.csv")
    train.to_csv(reference, index=False)
    profile, _built = drift_engine.read_reference(reference, None, drift_engine.make_options())
    mlflow.set_experiment("molecule-model-server")
    versions = []
    for c_value in (1.0, 0.05):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c_value, max_iter=1000)).fit(train, target)
        with mlflow.start_run() as run:
            mlflow.log_param("C", c_value)
            info = mlflow.sklearn.log_model(pipe, name="model", registered_model_name=name,
                                            signature=infer_signature(train, pipe.predict(train)),
                                            pip_requirements=["scikit-learn==%s" % sklearn.__version__])
            drift_cli.write_profile_artifact(profile, run_id=run.info.run_id, client=client)
        versions.append(str(info.registered_model_version))
    client.set_registered_model_alias(name, "production", versions[0])
    return ["%s/%s" % (name, v) for v in versions]


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
