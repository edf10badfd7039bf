"""The serving container's contract (Vertex AI custom containers): the port and routes the
server answers on unless told otherwise, and the variables that tell it.

The prediction server takes its defaults from here; the Vertex AI model version and batch
jobs (registry/vertex.py) and the kind pods (platforms/kube.py) declare the same values.
Importable without torch, pandas or Google libraries (the serving image has none of them).
"""

from __future__ import annotations

SERVING_PORT = 8080  # the HTTP port (the serving image EXPOSEs it)
HEALTH_ROUTE = "/health"  # GET: 200 once a model is loaded, 503 before
PREDICT_ROUTE = "/predict"  # POST {"instances": [...]} -> {"predictions": [...]}

PORT_ENV = "AIP_HTTP_PORT"  # overrides SERVING_PORT
HEALTH_ROUTE_ENV = "AIP_HEALTH_ROUTE"  # overrides HEALTH_ROUTE
PREDICT_ROUTE_ENV = "AIP_PREDICT_ROUTE"  # overrides PREDICT_ROUTE
STORAGE_URI_ENV = "AIP_STORAGE_URI"  # the bundle directory to serve (gs:// or a path)
