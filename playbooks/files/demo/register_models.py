"""Train and register the demo's three versions of `breast-cancer` (scikit-learn's dataset), each
with a signature and drift/reference_profile.json, and write the evaluation and traffic data.

  v1 good:        StandardScaler + LogisticRegression                    (passes the gate)
  v2 weak:        the same, regularised to near-constant predictions    (fails the accuracy and fairness thresholds)
  v3 unportable:  v1 wrapped in a pyfunc whose class is not packaged     (passes the gate, fails /ready)

The evaluation data (eval.csv) carries one more column, `derived_texture_group`, for the gate's
fairness check. The dataset has no sensitive attribute (no sex, age or origin of the patient), so
this group is DERIVED from a feature: `low` where mean_texture is at or below the dataset's median,
`high` above. It stands in for a real sensitive column to show the check; it means nothing about
patients. The models never see it (it is not in their signature).

With DEMO_TRAINER set (the training pipeline's MLflow account), that account gets EDIT on the model,
so the pipeline's candidates become versions of it (the admin created the model; MLflow gives other
users its default permission, READ).

Idempotent: versions are found by their `demo.variant` tag, and only missing ones are logged.
Prints one JSON line: {"changed": bool, "versions": {"good": "1", ...}}. Connection from MLFLOW_*.
usage: register_models.py MODEL_NAME DATA_DIR"""

import json
import os
import sys

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import cli as drift_cli
from ansible_collections.runlocalai.mlops.plugins.module_utils.drift import engine as drift_engine

import demo_features
from demo_data import GROUP_COLUMN, GROUP_FEATURE, derive_group, load_data  # noqa: F401  (GROUP_FEATURE: re-exported for the tests)

VARIANTS = ("good", "weak", "unportable")


def write_data(data_dir, features, target):
    """Training half, holdout (the gate's evaluation data, with the label and the derived group) and a drifted batch."""
    os.makedirs(data_dir, exist_ok=True)
    train, holdout = features.iloc[::2], features.iloc[1::2]
    group = derive_group(features).iloc[1::2].values
    holdout.assign(target=target.iloc[1::2].values, **{GROUP_COLUMN: group}).to_csv(os.path.join(data_dir, "eval.csv"), index=False)
    holdout.to_csv(os.path.join(data_dir, "traffic.csv"), index=False)
    drifted = holdout.copy()
    for column in ("mean_radius", "mean_texture", "worst_area", "mean_concavity"):
        drifted[column] = drifted[column] * 1.6
    drifted.to_csv(os.path.join(data_dir, "traffic-drifted.csv"), index=False)
    train.to_csv(os.path.join(data_dir, "train.csv"), index=False)
    return train, target.iloc[::2]


def existing_versions(client, name):
    found = {}
    for version in client.search_model_versions("name='%s'" % name):
        variant = version.tags.get("demo.variant")
        if variant in VARIANTS and variant not in found:
            found[variant] = str(version.version)
    return found


def train_variant(variant, train, target):
    """The scikit-learn pipeline of a variant (v3 wraps the good one when it is logged)."""
    if variant == "weak":
        return make_pipeline(StandardScaler(), LogisticRegression(C=1e-5, max_iter=1000)).fit(train, target)
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(train, target)


def log_variant(client, name, variant, train, target, profile):
    model = train_variant(variant, train, target)
    signature = infer_signature(train, model.predict(train))
    with mlflow.start_run(run_name="demo-%s" % variant) as run:
        mlflow.set_tag("demo.variant", variant)
        if variant == "unportable":
            info = mlflow.pyfunc.log_model(name="model", python_model=demo_features.ClippedProbabilityModel(model),
                                           signature=signature, registered_model_name=name,
                                           pip_requirements=["scikit-learn==%s" % sklearn.__version__])
        else:
            info = mlflow.sklearn.log_model(model, name="model", signature=signature, registered_model_name=name,
                                            pip_requirements=["scikit-learn==%s" % sklearn.__version__])
        drift_cli.write_profile_artifact(profile, run_id=run.info.run_id, client=client)
    version = str(info.registered_model_version)
    client.set_model_version_tag(name, version, "demo.variant", variant)
    client.set_model_version_tag(name, version, "governance.owner", "demo")
    return version


def grant_edit(name, username):
    """EDIT on model `name` for `username` unless it has it (or more) already; True when granted."""
    from mlflow.server.auth.client import AuthServiceClient
    auth = AuthServiceClient(mlflow.get_tracking_uri())
    if auth.get_user_permission(username, "registered_model", name).permission in ("EDIT", "MANAGE"):
        return False
    auth.grant_user_permission(username, "registered_model", name, "EDIT")
    return True


def main(name, data_dir):
    features, target = load_data()
    train, train_target = write_data(data_dir, features, target)
    client = MlflowClient()
    found = existing_versions(client, name)
    changed = False
    if len(found) < len(VARIANTS):
        profile, _built = drift_engine.read_reference(os.path.join(data_dir, "train.csv"), None, drift_engine.make_options())
        mlflow.set_experiment("demo-breast-cancer")
        for variant in VARIANTS:
            if variant not in found:
                found[variant] = log_variant(client, name, variant, train, train_target, profile)
                changed = True
    if os.environ.get("DEMO_TRAINER"):
        changed = grant_edit(name, os.environ["DEMO_TRAINER"]) or changed
    print(json.dumps({"changed": changed, "versions": found}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
