"""The model: the torch MLP (``mlp``), the same forward pass in numpy (``mlp_numpy``), the
bundle that carries it with its preprocessing (``bundle``) and batch scoring with a bundle
(``batch``)."""
