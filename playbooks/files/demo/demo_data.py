"""The demo's data: breast-cancer (scikit-learn's dataset), and the derived group column of the gate's
fairness check. The dataset has no sensitive attribute (no sex, age or origin of the patient), so
this group is DERIVED from a feature: `low` where mean_texture is at or below the dataset's median,
`high` above. It stands in for a real sensitive column to show the check; it means nothing about
patients. Used by register_models.py (the demo's versions) and training_data.py (the pipeline's data)."""

from sklearn.datasets import load_breast_cancer

# The gate's fairness group: derived (see above), and named so.
GROUP_COLUMN = "derived_texture_group"
GROUP_FEATURE = "mean_texture"


def load_data():
    data = load_breast_cancer(as_frame=True)
    features = data.data.copy()
    features.columns = [c.replace(" ", "_") for c in features.columns]
    return features, data.target


def derive_group(features):
    """The derived group of each row: `low` where GROUP_FEATURE is at or below its median over the whole
    dataset (569 rows), `high` above. Not a sensitive attribute of the patients: a stand-in for one."""
    median = features[GROUP_FEATURE].median()
    return features[GROUP_FEATURE].gt(median).map({True: "high", False: "low"})
