"""Compile the training pipeline to KFP IR JSON.

python compile.py [--target local|vertex|kind] [--output pipeline.json] [--image URI]
"""

from pipelines.cli import compile_main

if __name__ == "__main__":
    raise SystemExit(compile_main())
