"""Training the MLP: its settings (``config``), the trainer (``trainer``) and one process per
GPU (``distributed``)."""
