"""The model bundle's file names and format tags: one place, importable without torch or
pandas (the serving image has neither)."""

BUNDLE_JSON = "bundle.json"  # schema, classes, model config, training facts
PREPROCESSOR_JSON = "preprocessor.json"  # fitted preprocessing parameters, plain JSON
WEIGHTS = "model.safetensors"  # network weights; loading runs no code
FORMAT = "sigdeploy-bundle/v1"  # bundle.json "format"
PREPROCESSOR_KIND = "column-transformer/v1"  # preprocessor.json "kind"
