"""The training pipeline: its stages as plain functions (pipeline), what a candidate records about
where it came from (provenance), the pipeline's Prometheus series (metrics), a small client of
Prefect's REST API (prefect_api) and the deployment spec compared with the server's (deployment).
flow.py wraps the stages as a Prefect flow; it is the only file that imports Prefect."""
