"""Write the training pipeline's demo data: breast-cancer (scikit-learn's dataset) with its label and
the derived group column (see demo_data.py: derived from mean_texture, not a sensitive attribute).

  breast-cancer.csv          all 569 rows: the features, `target`, `derived_texture_group`
  breast-cancer-invalid.csv  the same with `mean_radius` emptied on 20 rows (a schema violation: nulls)
  breast-cancer-next.csv     a later extract: the first 500 rows (new data for the pipeline's new-data trigger)

usage: training_data.py OUT_DIR"""

import os
import sys

from demo_data import GROUP_COLUMN, derive_group, load_data


def main(out_dir):
    features, target = load_data()
    data = features.assign(target=target.values, **{GROUP_COLUMN: derive_group(features).values})
    os.makedirs(out_dir, exist_ok=True)
    data.to_csv(os.path.join(out_dir, "breast-cancer.csv"), index=False)
    invalid = data.copy()
    invalid.loc[invalid.index[:20], "mean_radius"] = None
    invalid.to_csv(os.path.join(out_dir, "breast-cancer-invalid.csv"), index=False)
    data.iloc[:500].to_csv(os.path.join(out_dir, "breast-cancer-next.csv"), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
