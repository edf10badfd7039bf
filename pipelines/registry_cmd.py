"""`sigdeploy registry show | history | rollback`: what the registry holds, and undoing a deploy.

The same three commands work on a local registry directory (what `sigdeploy run` and
`sigdeploy serve` use) and on Vertex AI Model Registry (``vertex://PROJECT/REGION?...``).
A rollback moves the champion back atomically and writes who came before and why into the
history; the next pipeline run then has to beat the restored champion.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from components.core.errors import ConfigError
from components.core.platforms.deploy_config import DeployConfig

_D = DeployConfig()

HISTORY_DEFAULT = 20  # entries `history` prints unless --last says otherwise
REASON_WIDTH = 110  # characters of a decision's reason on one history line


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pipelines.spec import add_registry_options

    p = sub.add_parser("registry", help="show the champion, the history, or roll back")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    def common(verb: argparse.ArgumentParser) -> None:
        add_registry_options(verb)
        verb.add_argument("--json", action="store_true", help="print one JSON document")

    show = verbs.add_parser("show", help="the champion and every version with its gate result")
    common(show)
    show.set_defaults(func=run_show)

    history = verbs.add_parser("history", help="every decision and rollback, newest last")
    common(history)
    history.add_argument(
        "--last",
        type=int,
        default=HISTORY_DEFAULT,
        help=f"entries to print, 0 = all (default: {HISTORY_DEFAULT})",
    )
    history.set_defaults(func=run_history)

    rollback = verbs.add_parser("rollback", help="make an earlier version the champion again")
    common(rollback)
    rollback.add_argument(
        "--to",
        default=None,
        metavar="VERSION",
        help="version to restore (default: the champion before the current one)",
    )
    rollback.add_argument("--reason", required=True, help="why, kept in the history")
    rollback.add_argument(
        "--endpoint",
        default="",
        help="Vertex: also serve the restored version with all the traffic on this endpoint "
        "(default: none, the endpoint stays as it is)",
    )
    rollback.add_argument(
        "--machine-type",
        default=None,
        help=f"Vertex endpoint machine type (default: {_D.machine_type})",
    )
    rollback.add_argument(
        "--min-replicas", type=int, default=None, help=f"(default: {_D.min_replicas})"
    )
    rollback.add_argument(
        "--max-replicas", type=int, default=None, help=f"(default: {_D.max_replicas})"
    )
    rollback.set_defaults(func=run_rollback)


def _open(args: argparse.Namespace) -> Any:
    from components.core.registry import open_registry

    return open_registry(args.registry, args.model_name, existing=True)


def when(seconds: float | None) -> str:
    if not seconds:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def gate_summary(decision: dict[str, Any]) -> str:
    """'p=6.3e-96 (level 0.025); accuracy 0.958 vs 0.095 (majority-class baseline)' from a
    decision (one made before levels were recorded has none)."""
    from components.core.evaluation.alpha import level_text
    from components.core.evaluation.gate import p_text

    if not decision:
        return ""
    parts = []
    p = decision.get("p_value")
    level = decision.get("level")
    if isinstance(p, int | float):
        at = f" (level {level_text(float(level))})" if isinstance(level, int | float) else ""
        parts.append(p_text(float(p)).replace("p = ", "p=") + at)
    metrics = decision.get("metrics", {})
    ours = metrics.get("challenger", {}).get("accuracy")
    theirs = metrics.get("champion", {}).get("accuracy")
    if isinstance(ours, int | float) and isinstance(theirs, int | float):
        against = decision.get("champion") or "champion"
        parts.append(f"accuracy {ours:.3f} vs {theirs:.3f} ({against})")
    return "; ".join(parts)


def training_summary(decision: dict[str, Any]) -> str:
    """'1,082 rows, 17 epochs, cpu fp32' from the training facts a decision carries."""
    facts = decision.get("challenger_training") or {}
    if not facts:
        return ""
    parts = []
    if isinstance(facts.get("rows"), int):
        parts.append(f"{facts['rows']:,} rows")
    if isinstance(facts.get("epochs_run"), int):
        parts.append(f"{facts['epochs_run']} epochs")
    device = " ".join(str(facts[k]) for k in ("device", "precision") if facts.get(k))
    if device:
        parts.append(device)
    return ", ".join(parts)


def history_line(entry: dict[str, Any]) -> str:
    event = entry.get("event", "?")
    decision = entry.get("decision") or {}
    if event == "deployed":
        was = entry.get("previous")
        what = f"v{entry.get('version')} (over {f'v{was}' if was else 'the baseline'})"
    elif event == "rolled_back":
        what = f"v{entry.get('version')} (was v{entry.get('previous')})"
    else:
        # a deploy refused because the champion moved names the champion it kept
        champion = entry.get("champion", decision.get("champion_version"))
        what = f"champion v{champion} stays" if champion else "nothing deployed"
    # a rollback's reason, or why a deploy was refused, is the entry's own; else the gate's
    text = entry.get("reason") or ("" if event == "rolled_back" else decision.get("reason", ""))
    text = str(text or "")
    if len(text) > REASON_WIDTH:
        text = text[: REASON_WIDTH - 3] + "..."
    summary = gate_summary(decision)
    tail = "  ".join(part for part in (summary, f'"{text}"' if text else "") if part)
    return f"{when(entry.get('time'))}  {event.replace('_', ' '):<11}  {what:<26}  {tail}".rstrip()


def run_show(args: argparse.Namespace) -> int:
    from components.core.io import dumps

    registry = _open(args)
    infos = registry.version_infos()
    champion = next((v for v in infos if v.champion), None)
    if args.json:
        print(
            dumps(
                {
                    "model_name": args.model_name,
                    "registry": args.registry,
                    "champion": champion.version if champion else None,
                    "versions": [
                        {
                            "version": v.version,
                            "created": v.created,
                            "champion": v.champion,
                            "uri": v.uri,
                            "p_value": v.decision.get("p_value"),
                            "level": v.decision.get("level"),
                            "metrics": v.decision.get("metrics", {}).get("challenger", {}),
                            "training": v.decision.get("challenger_training", {}),
                        }
                        for v in infos
                    ],
                }
            )
        )
        return 0
    print(f"model {args.model_name} in {args.registry}")
    if champion is None:
        print("champion: none (no version deployed yet)" if not infos else "champion: none")
    else:
        print(f"champion: version {champion.version}  {champion.uri}")
    if infos:
        print(f"  {'version':>7}  {'registered':<20}  gate result when deployed")
        for v in infos:
            mark = "*" if v.champion else " "
            summary = gate_summary(v.decision) or "(no decision recorded)"
            trained = training_summary(v.decision)
            summary += f"  [trained: {trained}]" if trained else ""
            print(f"{mark} {v.version:>7}  {when(v.created):<20}  {summary}")
    return 0


def run_history(args: argparse.Namespace) -> int:
    from components.core.io import dumps

    if args.last < 0:
        raise ConfigError(f"--last {args.last}: give a count >= 0 (0 = all)")
    entries = _open(args).history()
    if args.last:
        entries = entries[-args.last :]
    if args.json:
        print(dumps(entries))
        return 0
    if not entries:
        print(f"no decisions recorded for {args.model_name} in {args.registry}")
    for entry in entries:
        print(history_line(entry))
    if line := not_better_line(entries):
        print(line)
    return 0


def not_better_line(entries: list[dict[str, Any]]) -> str:
    """How often these deploys were not better, by empirical Bayes over the recorded
    decisions (evaluation.bayes.history_not_better); "" below its minimum history."""
    from components.core.evaluation.bayes import history_not_better

    decisions = [e["decision"] for e in entries if isinstance(e.get("decision"), dict)]
    found = history_not_better(decisions)
    if found is None:
        return ""
    return (
        f"estimated share of these {found['deploys']} deploys that were not better: "
        f"{found['share_of_deploys_not_better']:.2f} (empirical Bayes over "
        f"{found['decisions']} decisions, assuming a normal spread of true gains; "
        "an estimate, not a guarantee)"
    )


def run_rollback(args: argparse.Namespace) -> int:
    import sys

    from components.core.io import dumps
    from components.core.registry import LocalRegistry

    if not args.reason.strip():
        raise ConfigError("--reason is empty: say why, it is kept in the history")
    registry = _open(args)
    local = isinstance(registry, LocalRegistry)
    if local and args.endpoint:
        raise ConfigError(
            "--endpoint is for Vertex AI registries; a local `sigdeploy serve --registry DIR` "
            "follows the champion by itself"
        )
    config = None
    if args.endpoint:  # checked before anything moves
        from components.core.platforms.deploy_config import DeployConfig

        given = {
            "machine_type": args.machine_type,
            "min_replicas": args.min_replicas,
            "max_replicas": args.max_replicas,
        }
        config = DeployConfig(
            endpoint_name=args.endpoint,
            canary_percent=100,
            **{k: v for k, v in given.items() if v is not None},
        )
    previous = registry.champion()
    champion = registry.rollback(args.to, args.reason.strip())
    result: dict[str, Any] = {
        "model_name": args.model_name,
        "champion": champion.version,
        "previous": previous.version if previous else None,
        "uri": champion.uri,
    }
    if config is not None:
        from components.core.platforms import vertex

        result["endpoint"] = vertex.serve(args.model_name, champion.version, champion.uri, config)
    if args.json:
        print(dumps(result))
        return 0
    print(f"champion of {args.model_name}: version {champion.version} (was {result['previous']})")
    if local:
        print(
            "a running `sigdeploy serve` on this registry switches to it at its next poll",
            file=sys.stderr,
        )
    elif args.endpoint:
        print(f"endpoint {args.endpoint}: all traffic on version {champion.version}")
    else:
        print(
            "the endpoint still serves what it served: pass --endpoint NAME to move the traffic",
            file=sys.stderr,
        )
    return 0
