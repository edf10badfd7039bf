"""sigdeploy core library: data, split, features, model, training, bundle, metrics, stats,
gate and registry. Pure Python and PyTorch; it never imports kfp, so it is tested without a
cluster and imported by the serving app."""
