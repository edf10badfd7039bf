"""Adaptors to the places a pipeline runs and serves: Google Cloud Storage and BigQuery
(``gcp``), Kubernetes (``kube``), and the serving settings they share (``deploy_config``).
They take config objects and never import the orchestration (``steps``)."""
