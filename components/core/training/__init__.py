"""Training the MLP. Modules in the order they build on one another: ``config`` (the settings),
``runtime`` (device, precision, threads), ``schedule`` (learning rate), ``rows`` (data on the
device, batch order), ``step`` (one optimiser step, CUDA graph), ``checkpoint`` (save and
resume), ``loop`` (``fit``: the epochs of one process), ``distributed`` (one process per GPU)
and ``train`` (``train_mlp``: one process or several)."""
