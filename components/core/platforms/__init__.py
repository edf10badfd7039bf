"""Adaptors to the places a pipeline runs and serves: Google Cloud Storage and BigQuery, and
what every Google call shares (``gcp``), Vertex AI endpoints and batch jobs (``vertex``),
Kubernetes (``kube``), and the serving settings they share (``deploy_config``).
They take config objects and plain values (a registered version's name, its location) and
never import the orchestration (``steps``), the registry or the data layer."""
