"""Evaluation and the gate: metrics, the statistical tests (``stats``), the deploy decision
(``gate``) and the report a person reads (``report``)."""
