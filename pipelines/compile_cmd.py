"""`sigdeploy compile` (and compile.py): write the pipeline IR for a target."""

from __future__ import annotations

import argparse
import sys

from pipelines.targets import TARGETS, VERTEX_DEFAULT_ACCELERATOR


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile the pipeline to KFP IR (JSON, or YAML for kind)")
    p.add_argument(
        "--target", choices=TARGETS, default="local", help="where it runs (default: local)"
    )
    p.add_argument(
        "--output",
        default=None,
        help="output file (default pipeline.json; pipeline-kind.yaml for kind)",
    )
    p.add_argument(
        "--image",
        default=None,
        help="component image URI (default: $SIGDEPLOY_COMPONENT_IMAGE or the built-in)",
    )
    p.add_argument(
        "--accelerator-type",
        default=None,
        help="train accelerator, e.g. NVIDIA_TESLA_T4, NVIDIA_L4, NVIDIA_H100_80GB "
        f"(default: {VERTEX_DEFAULT_ACCELERATOR} on vertex, none elsewhere)",
    )
    p.add_argument(
        "--accelerator-count",
        type=int,
        default=None,
        help="GPUs for train, 0 = CPU (default: 1 on vertex, 0 elsewhere)",
    )
    p.add_argument("--gpu", action="store_true", help="kind: request nvidia.com/gpu for train")
    p.add_argument("--cpu-limit", default="", help="train CPU limit, e.g. 8 (default: none)")
    p.add_argument(
        "--memory-limit", default="", help="train memory limit, e.g. 32G (default: none)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.spec import compile_pipeline

    output = args.output or ("pipeline-kind.yaml" if args.target == "kind" else "pipeline.json")
    path = compile_pipeline(
        args.target,
        output,
        image=args.image,
        accelerator_type=args.accelerator_type,
        accelerator_count=args.accelerator_count,
        gpu=args.gpu,
        cpu_limit=args.cpu_limit,
        memory_limit=args.memory_limit,
    )
    print(f"compiled target={args.target} -> {path}", file=sys.stderr)
    return 0
